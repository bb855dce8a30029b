//! An agent working for a queue that predates one call per task: such a queue ignores a
//! lease's body and hands tasks out unstarted, so the agent must confirm the start and
//! report with `finish`, or the result would be lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{AgentConfig, run};
use crate::placement::Capacity;

/// What the older queue was told, call by call.
#[derive(Default)]
struct Heard {
    leases: usize,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Heard>>;

async fn register() -> Response {
    let welcome = json!({"agent_id": 7, "heartbeat_ms": 200, "agent_timeout_ms": 5000});
    (StatusCode::CREATED, Json(welcome)).into_response()
}

async fn lease(State(heard): State<Shared>) -> Response {
    let first = {
        let mut heard = heard.lock().unwrap();
        heard.leases += 1;
        heard.leases == 1
    };
    if !first {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return StatusCode::NO_CONTENT.into_response();
    }
    // No `started`: this queue knows nothing of starting on hand-out.
    Json(json!({
        "assignment_id": 41, "job_id": "3", "task_index": 0, "attempt": 1, "try": 1,
        "request": {"name": "old", "commands": [["true"]]},
    }))
    .into_response()
}

async fn start(State(heard): State<Shared>) -> StatusCode {
    heard.lock().unwrap().calls.push("start".into());
    StatusCode::NO_CONTENT
}

async fn finish(State(heard): State<Shared>, Json(report): Json<Value>) -> StatusCode {
    heard.lock().unwrap().calls.push(format!(
        "finish {}",
        report["outcome"].as_str().unwrap_or("?")
    ));
    StatusCode::NO_CONTENT
}

async fn heartbeat() -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Json(json!({"cancel": []}))
}

#[tokio::test]
async fn a_queue_that_ignores_lease_reports_still_gets_the_result() {
    let heard: Shared = Arc::default();
    let app = Router::new()
        .route("/agent/v1/agents", post(register))
        .route(
            "/agent/v1/agents/7",
            axum::routing::delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/agent/v1/agents/7/lease", post(lease))
        .route("/agent/v1/agents/7/heartbeat", post(heartbeat))
        .route("/agent/v1/agents/7/assignments/41/start", post(start))
        .route("/agent/v1/agents/7/assignments/41/finish", post(finish))
        .with_state(Arc::clone(&heard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let work = tempfile::tempdir().unwrap();
    let config = AgentConfig {
        server: format!("http://{address}"),
        token: "agent-token".to_owned().into(),
        name: "compat".into(),
        work_dir: work.path().to_path_buf(),
        local: false,
        reconnect_timeout: Some(Duration::from_secs(5)),
        kill_grace: Duration::from_secs(1),
        capacity: Capacity {
            slots: 1,
            ..Default::default()
        },
    };
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(config, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !heard
        .lock()
        .unwrap()
        .calls
        .iter()
        .any(|c| c.starts_with("finish"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no report reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    agent.await.unwrap().unwrap();
    assert_eq!(heard.lock().unwrap().calls, ["start", "finish succeeded"]);
}
