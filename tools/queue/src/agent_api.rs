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
use crate::wire::{
    AgentHello, Beat, LeaseAsk, LogAt, Orders, Received, Starting, TaskReport, Wait, Welcome,
};

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
/// The body ([`LeaseAsk`], optional) may carry the slot's previous report, recorded first
/// (even while the queue shuts down), and ask for the task to be started on hand-out.
pub async fn lease(
    State(state): State<AppState>,
    Path(agent): Path<i64>,
    Query(wait): Query<Wait>,
    body: Bytes,
) -> Result<Response, Problem> {
    let ask: LeaseAsk = if body.iter().all(u8::is_ascii_whitespace) {
        LeaseAsk::default()
    } else {
        let mut reader = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let field = e.path().to_string();
            Problem::bad_request(
                format!("the lease body is not valid: {field}: {}", e.inner()),
                Some(&field),
            )
        })?
    };
    if let Some(name) = &ask.start_as
        && (name.is_empty() || name.len() > 200)
    {
        return Err(Problem::bad_request(
            "start_as must be 1 to 200 characters",
            Some("start_as"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait.wait_ms).min(MAX_WAIT);
    let mut finished = ask.finished;
    let start_as = ask.start_as;
    loop {
        if state.draining.is_cancelled() {
            if let Some(done) = finished.take() {
                db(&state, move |s| {
                    s.finish_assignment(agent, done.assignment_id, &done.report)
                })
                .await?;
            }
            return Err(Problem::busy("the queue is shutting down"));
        }
        let notified = state.store.work.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let (done, name) = (finished.take(), start_as.clone());
        let leased = db(&state, move |s| {
            s.lease_with(agent, done.as_ref(), name.as_deref())
        })
        .await?;
        if let Some(assignment) = leased {
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
    // The list is fresh only on the first pass: later passes of the long poll do not judge
    // which assignments the agent knows.
    let mut reconcile = true;
    loop {
        let notified = state.store.control.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let ids = std::sync::Arc::clone(&running);
        let fresh = std::mem::replace(&mut reconcile, false);
        let cancel = db(&state, move |s| s.heartbeat(agent, &ids, fresh)).await?;
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
