//! The agent protocol (`docs/local-queue-agents.openapi.yaml`): registration, work leases
//! and heartbeats as long polls (so a submitted task reaches an idle agent at once and a stop
//! reaches a busy one at once), log uploads by byte offset, and task reports.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::problem::{Problem, db};
use crate::server::AppState;
use crate::wire::{AgentHello, Beat, LogAt, Orders, Received, Starting, TaskReport, Wait, Welcome};

/// The longest a long poll is held.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// `POST /agent/v1/agents`.
pub async fn register(
    State(state): State<AppState>,
    Json(hello): Json<AgentHello>,
) -> Result<Response, Problem> {
    if hello.name.is_empty() || hello.name.len() > 200 {
        return Err(Problem::bad_request(
            "name must be 1 to 200 characters",
            Some("name"),
        ));
    }
    let name = hello.name.clone();
    let agent_id = db(&state, move |s| s.register_agent(&hello)).await?;
    tracing::info!(agent = agent_id, %name, "agent registered");
    let welcome = Welcome {
        agent_id,
        heartbeat_ms: state.heartbeat.as_millis() as u64,
        agent_timeout_ms: state.agent_timeout.as_millis() as u64,
    };
    Ok((StatusCode::CREATED, Json(welcome)).into_response())
}

/// `DELETE /agent/v1/agents/{agent}`.
pub async fn deregister(
    State(state): State<AppState>,
    Path(agent): Path<i64>,
) -> Result<Response, Problem> {
    db(&state, move |s| s.deregister_agent(agent)).await?;
    tracing::info!(agent, "agent left");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /agent/v1/agents/{agent}/lease`: the next task, or 204 after `wait_ms` without one.
pub async fn lease(
    State(state): State<AppState>,
    Path(agent): Path<i64>,
    Query(wait): Query<Wait>,
) -> Result<Response, Problem> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait.wait_ms).min(MAX_WAIT);
    loop {
        if state.draining.is_cancelled() {
            return Err(Problem::busy("the queue is shutting down"));
        }
        let notified = state.store.work.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if let Some(assignment) = db(&state, move |s| s.lease(agent)).await? {
            return Ok(Json(assignment).into_response());
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            () = state.draining.cancelled() => return Err(Problem::busy("the queue is shutting down")),
        }
    }
}

/// `POST /agent/v1/agents/{agent}/heartbeat`: which running assignments to cancel, answered
/// at once when there are some, else after `wait_ms`.
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(agent): Path<i64>,
    Query(wait): Query<Wait>,
    Json(beat): Json<Beat>,
) -> Result<Response, Problem> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait.wait_ms).min(MAX_WAIT);
    state.store.note_load(agent, beat.load);
    let running = std::sync::Arc::new(beat.running);
    loop {
        let notified = state.store.control.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let ids = std::sync::Arc::clone(&running);
        let cancel = db(&state, move |s| s.heartbeat(agent, &ids)).await?;
        if !cancel.is_empty() {
            return Ok(Json(Orders { cancel }).into_response());
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => return Ok(Json(Orders::default()).into_response()),
        }
    }
}

/// `POST /agent/v1/agents/{agent}/assignments/{id}/start`: 204, or 410 when the task was
/// taken back and must not run.
pub async fn start(
    State(state): State<AppState>,
    Path((agent, assignment)): Path<(i64, i64)>,
    Json(starting): Json<Starting>,
) -> Result<Response, Problem> {
    db(&state, move |s| {
        s.start_assignment(agent, assignment, &starting.agent_name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /agent/v1/agents/{agent}/assignments/{id}/log?offset=N`: appends output.
pub async fn log(
    State(state): State<AppState>,
    Path((agent, assignment)): Path<(i64, i64)>,
    Query(at): Query<LogAt>,
    body: Bytes,
) -> Result<Response, Problem> {
    let received = db(&state, move |s| {
        s.append_log(agent, assignment, at.offset, &body)
    })
    .await?;
    Ok(Json(Received { received }).into_response())
}

/// `POST /agent/v1/agents/{agent}/assignments/{id}/finish`: how the task ended.
pub async fn finish(
    State(state): State<AppState>,
    Path((agent, assignment)): Path<(i64, i64)>,
    Json(report): Json<TaskReport>,
) -> Result<Response, Problem> {
    db(&state, move |s| {
        s.finish_assignment(agent, assignment, &report)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
