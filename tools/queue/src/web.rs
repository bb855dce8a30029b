//! The wrangler's calls (the farm protocol's `PATCH` and `DELETE /v1/jobs/{id}`, and
//! `POST /v1/agents/{id}:disable` / `:enable`), the web page's files, and the local
//! queue's own output-thumbnail calls (`/web/v1/jobs/{id}/outputs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::outputs;
use crate::problem::{Problem, db};
use crate::server::AppState;
use crate::store::StoreError;

fn method_not_allowed(detail: &'static str) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", detail)
}

fn note_activity(state: &AppState) {
    state.last_activity.store(
        farm_core::now_millis(),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// `PATCH /v1/jobs/{id}` with `{"priority": N}`: changes the job's priority.
pub async fn patch_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    note_activity(&state);
    if id.contains(':') {
        return Err(method_not_allowed("PATCH a job, not one of its actions"));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request(format!("the body is not JSON: {e}"), Some("(document)"))
    })?;
    let Some(fields) = value.as_object() else {
        return Err(Problem::bad_request(
            "the body must be a JSON object such as {\"priority\": 10}",
            Some("(document)"),
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != "priority") {
        return Err(StoreError::Invalid {
            field: other.clone(),
            problem: "only priority can be changed".into(),
        }
        .into());
    }
    let priority = match fields.get("priority") {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| Problem::bad_request("priority must be an integer", Some("priority")))?,
        Some(_) => {
            return Err(Problem::bad_request(
                "priority must be an integer",
                Some("priority"),
            ));
        }
        None => {
            return Err(StoreError::Invalid {
                field: "priority".into(),
                problem: "is required".into(),
            }
            .into());
        }
    };
    let record = db(&state, move |s| s.set_priority(&id, priority)).await?;
    Ok(Json(record).into_response())
}

/// `DELETE /v1/jobs/{id}`: deletes a finished job (409 while it waits or runs).
pub async fn delete_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    note_activity(&state);
    if id.contains(':') {
        return Err(method_not_allowed("DELETE a job, not one of its actions"));
    }
    db(&state, move |s| s.delete_job(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/agents/{id}:disable` and `:enable`.
pub async fn agent_action(
    State(state): State<AppState>,
    Path(segment): Path<String>,
) -> Result<Response, Problem> {
    note_activity(&state);
    let (id, disable) = if let Some(id) = segment.strip_suffix(":disable") {
        (id, true)
    } else if let Some(id) = segment.strip_suffix(":enable") {
        (id, false)
    } else {
        return Err(method_not_allowed("POST to an agent's :disable or :enable"));
    };
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "Agent not found",
            format!("there is no agent {id}"),
        )
    };
    let id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    match db(&state, move |s| s.set_agent_disabled(id, disable)).await {
        Ok(agent) => Ok(Json(agent).into_response()),
        Err(p) if p.status == StatusCode::GONE => Err(not_found()),
        Err(p) => Err(p),
    }
}

/// `GET /web/v1/jobs/{id}/outputs`: the job's declared output images.
pub async fn list_outputs(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let listed = db(&state, move |s| {
        let request = s.job_request(&id)?;
        Ok(outputs::list(&outputs::declared(&request)))
    })
    .await?;
    Ok(Json(json!({ "outputs": listed })).into_response())
}

/// `GET /web/v1/jobs/{id}/outputs/{name}`: a PNG thumbnail of one listed image.
pub async fn output_thumbnail(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let png = db(&state, move |s| {
        let request = s.job_request(&id)?;
        let found = outputs::list(&outputs::declared(&request))
            .into_iter()
            .find(|o| o.name == name);
        Ok(found.map(|o| outputs::thumbnail(&o)))
    })
    .await?;
    match png {
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "the job declares no such output image",
        )),
        Some(Err(e)) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not an image",
            e,
        )),
        Some(Ok(png)) => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-cache"),
                ),
            ],
            png,
        )
            .into_response()),
    }
}

const CSP: &str = "default-src 'self'; img-src 'self' blob:; connect-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the queue's web page. It holds no data itself: it calls the API with the token
/// the user gives it.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("web/index.html"))
}

/// `GET /app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("web/app.js"))
}

/// `GET /style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("web/style.css"))
}

/// `GET /favicon.svg` (also answered at `/favicon.ico`).
pub async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("web/favicon.svg"))
}
