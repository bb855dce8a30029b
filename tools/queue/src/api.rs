//! The farm protocol (`docs/http-scheduler.openapi.yaml`): request parsing, validation, and
//! the one mapping from store outcomes to HTTP statuses and problem documents.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use farm_core::{Capabilities, FarmError, JobRequest, JobState, now_millis};
use serde_json::json;

use crate::auth;
use crate::problem::{Problem, db};
use crate::server::AppState;
use crate::state::TaskState;
use crate::store::{ListQuery, StoreError, TaskQuery};

fn note_activity(state: &AppState) {
    state.last_activity.store(now_millis(), Ordering::Relaxed);
}

/// `GET /v1/health`, optionally `?challenge=<hex>`: then the answer carries the proof that
/// this server holds the API token ([`crate::auth`]), which clients check before sending it.
pub async fn health(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let mut challenge = None;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if key == "challenge" {
            if challenge.is_some() || !auth::valid_challenge(&value) {
                return Err(Problem::bad_request(
                    "challenge must be given once, as 32 to 128 hexadecimal digits",
                    Some("challenge"),
                ));
            }
            challenge = Some(value.into_owned());
        }
    }
    let mut body = json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") });
    if let Some(challenge) = challenge {
        body["proof"] = json!(state.health_proof(&challenge));
    }
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the server supports. Staging is a client-side matter (the `local` adapter stages
/// into the data root), so the protocol itself does not offer it.
pub const SERVER_CAPABILITIES: Capabilities = Capabilities {
    stage_files: false,
    ..Capabilities::ALL
};

/// `GET /v1/capabilities`.
pub async fn capabilities() -> Response {
    Json(SERVER_CAPABILITIES).into_response()
}

/// Parses a request body: 400 when it is not JSON or has a wrong type, 422 when it is
/// well-formed but invalid, naming the field either way.
pub fn parse_request(body: &[u8]) -> Result<(JobRequest, String), Problem> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(format!("the body is not JSON: {e}"), Some("(document)"))
    })?;
    integral_floats_as_integers(&mut value);
    if !value.is_object() {
        return Err(Problem::bad_request(
            "the body must be a JSON object (a job request)",
            Some("(document)"),
        ));
    }
    let canonical = value.to_string();
    let request = JobRequest::from_json_str(&canonical).map_err(|e| match e {
        FarmError::InvalidRequest { field, problem } if problem.starts_with("invalid type") => {
            Problem::bad_request(format!("{field}: {problem}"), Some(&field))
        }
        FarmError::InvalidRequest { field, problem } => {
            StoreError::Invalid { field, problem }.into()
        }
        other => Problem::bad_request(other.to_string(), None),
    })?;
    request.validate().map_err(|e| match e {
        FarmError::InvalidRequest { field, problem } => {
            Problem::from(StoreError::Invalid { field, problem })
        }
        other => Problem::bad_request(other.to_string(), None),
    })?;
    Ok((request, canonical))
}

/// JSON Schema counts `2.0` as an integer; serde does not. Rewrite such numbers so a
/// request valid by the protocol's schema is read as its sender meant.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        Problem::bad_request(
            "Idempotency-Key must be visible ASCII",
            Some("Idempotency-Key"),
        )
    })?;
    if key.is_empty() || key.chars().count() > 200 {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1 to 200 characters",
            Some("Idempotency-Key"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// `POST /v1/jobs`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    note_activity(&state);
    let key = idempotency_key(&headers)?;
    let (request, canonical) = parse_request(&body)?;
    let (record, created) = db(&state, move |s| {
        s.submit(&request, key.as_deref(), &canonical)
    })
    .await?;
    let location = format!("/v1/jobs/{}", record.job.id);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(record)).into_response();
    if created && let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `POST /v1/jobs:check`: 200 with whether and where it could run, or 422 naming what no
/// agent has ("no agent has 1000 cpus (largest: 8)").
pub async fn check(State(state): State<AppState>, body: Bytes) -> Result<Response, Problem> {
    note_activity(&state);
    let (request, _) = parse_request(&body)?;
    let store = Arc::clone(&state.store);
    // Dependencies must name jobs of this queue, exactly as submit would check.
    for (i, dep) in request.depends_on.iter().enumerate() {
        let id = dep.to_string();
        let found = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.job(&id)).await
        };
        if !matches!(found, Ok(Ok(_))) {
            return Err(StoreError::Invalid {
                field: format!("depends_on[{i}]"),
                problem: format!("there is no job {dep} on this queue"),
            }
            .into());
        }
    }
    let placement = db(&state, move |s| s.placement(&request)).await?;
    Ok(Json(placement).into_response())
}

fn parse_int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, Problem> {
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Problem::bad_request(
            format!("{key} must be an integer from {min} to {max}, not {value:?}"),
            Some(key),
        )),
    }
}

/// Cursors are `<updated_at>.<id>` of the last job of the previous page.
fn parse_cursor(value: &str) -> Option<(i64, i64)> {
    let (at, id) = value.split_once('.')?;
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    (all_digits(at) && all_digits(id))
        .then(|| Some((at.parse().ok()?, id.parse().ok()?)))
        .flatten()
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, Problem> {
    let mut query = ListQuery {
        limit: 100,
        ..Default::default()
    };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "state" => {
                let state: JobState = value
                    .parse()
                    .map_err(|e| Problem::bad_request(format!("state: {e}"), Some("state")))?;
                if !query.states.contains(&state) {
                    query.states.push(state);
                }
            }
            "name" => {
                if value.chars().count() > 200 {
                    return Err(Problem::bad_request(
                        "name is longer than 200 characters",
                        Some("name"),
                    ));
                }
                query.name = Some(value.into_owned());
            }
            "tag" => {
                farm_core::request::check_tag(&value)
                    .map_err(|e| Problem::bad_request(format!("tag: {e}"), Some("tag")))?;
                query.tag = Some(value.into_owned());
            }
            "since" => query.since = Some(parse_int("since", &value, 0, i64::MAX)?),
            "updated_since" => {
                query.updated_since = Some(parse_int("updated_since", &value, 0, i64::MAX)?)
            }
            "cursor" => {
                query.after = Some(parse_cursor(&value).ok_or_else(|| {
                    Problem::bad_request(
                        "cursor is not a next_cursor this server returned",
                        Some("cursor"),
                    )
                })?);
            }
            "limit" => query.limit = parse_int("limit", &value, 1, 1000)? as u32,
            _ => {}
        }
    }
    Ok(query)
}

/// `GET /v1/jobs`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    note_activity(&state);
    let query = parse_list_query(raw.as_deref())?;
    let (jobs, next) = db(&state, move |s| s.list(&query)).await?;
    let next_cursor = next.map(|(at, id)| format!("{at}.{id}"));
    Ok(Json(json!({ "jobs": jobs, "next_cursor": next_cursor })).into_response())
}

/// `GET /v1/agents`: live agents and those that ended in the last hour, with what each
/// runs (for the web page and `farm`-side monitoring).
pub async fn agents(State(state): State<AppState>) -> Result<Response, Problem> {
    let since = now_millis() - 3_600_000;
    let agents = db(&state, move |s| s.agent_statuses(since)).await?;
    Ok(Json(json!({ "agents": agents })).into_response())
}

fn private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /web/v1/login-codes` (client token): a single-use code that logs the web page in
/// for [`auth::LOGIN_CODE_TTL`]; `farm queue url` puts it in the page's address instead of
/// the token, since addresses end up in the browser's history.
pub async fn issue_login_code(State(state): State<AppState>) -> Response {
    note_activity(&state);
    let code = state.login_codes.issue(std::time::Instant::now());
    private(
        (
            StatusCode::CREATED,
            Json(json!({
                "code": code,
                "expires_in_ms": auth::LOGIN_CODE_TTL.as_millis() as u64,
            })),
        )
            .into_response(),
    )
}

/// What the page sends to `POST /web/v1/session`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// A code from `POST /web/v1/login-codes`.
    pub code: String,
}

/// `POST /web/v1/session` (no token): exchanges a login code, once, for the client token.
/// JSON only, so a page of another site cannot send it without a CORS preflight (which
/// this server never grants).
pub async fn open_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "send the code as application/json: {\"code\": \"...\"}",
        ));
    }
    let request: SessionRequest = serde_json::from_slice(&body)
        .map_err(|_| Problem::bad_request("the body must be {\"code\": \"...\"}", Some("code")))?;
    match state
        .login_codes
        .redeem(&request.code, std::time::Instant::now())
    {
        Ok(()) => {
            note_activity(&state);
            tracing::info!("the web page logged in with a login code");
            Ok(private(
                Json(json!({ "token": state.api_token_text() })).into_response(),
            ))
        }
        Err(auth::Refusal::Invalid) => Err(Problem::unauthorized(
            "this login code is unknown, used or expired: run `farm queue url` again, or give the token",
        )),
        Err(auth::Refusal::TooManyFailures(wait)) => {
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "too many wrong login codes lately; wait a minute, or give the token",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
    }
}

/// `GET /v1/jobs/{id}`.
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    note_activity(&state);
    let record = db(&state, move |s| s.job(&id)).await?;
    Ok(Json(record).into_response())
}

/// `POST /v1/jobs/{id}:stop` and `POST /v1/jobs/{id}:start` (one path segment).
pub async fn job_action(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(segment): Path<String>,
) -> Result<Response, Problem> {
    note_activity(&state);
    let record = if let Some(id) = segment.strip_suffix(":stop") {
        let (id, by) = (id.to_owned(), stopper(&headers));
        db(&state, move |s| s.stop_by(&id, &by)).await?
    } else if let Some(id) = segment.strip_suffix(":start") {
        let id = id.to_owned();
        db(&state, move |s| s.start(&id)).await?
    } else if let Some(id) = segment.strip_suffix(":retry-failed") {
        let id = id.to_owned();
        db(&state, move |s| s.retry_failed(&id)).await?
    } else {
        // `POST /v1/jobs/{id}`: the resource takes GET, PATCH and DELETE (the Allow header says so).
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "POST to a job's :stop, :start or :retry-failed",
        ));
    };
    Ok(Json(record).into_response())
}

/// Who asks to stop a job, for its log: only holders of the token can, and the token is
/// the queue owner's, so the owner, with the client their request came from.
fn stopper(headers: &axum::http::HeaderMap) -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "the queue's owner".to_owned());
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let client = if agent.contains("Mozilla") {
        "the web page".to_owned()
    } else if agent.starts_with("farm") {
        format!("the farm command line or a program ({agent})")
    } else if agent.is_empty() {
        "an HTTP client".to_owned()
    } else {
        let agent: String = agent.chars().filter(|c| !c.is_control()).take(60).collect();
        format!("an HTTP client ({agent})")
    };
    format!("{user} from {client}")
}

/// `GET /v1/jobs/{id}/tasks`: a page of the job's tasks in index order.
pub async fn tasks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    note_activity(&state);
    let mut query = TaskQuery {
        limit: 100,
        ..Default::default()
    };
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "state" => {
                let task_state = TaskState::parse(&value).ok_or_else(|| {
                    Problem::bad_request(
                        format!("state: {value:?} is not a task state (blocked, queued, dispatched, running, done, failed, cancelled)"),
                        Some("state"),
                    )
                })?;
                if !query.states.contains(&task_state) {
                    query.states.push(task_state);
                }
            }
            "cursor" => {
                let valid = !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit());
                query.after = Some(
                    valid
                        .then(|| value.parse::<u32>().ok())
                        .flatten()
                        .ok_or_else(|| {
                            Problem::bad_request(
                                "cursor is not a next_cursor this server returned",
                                Some("cursor"),
                            )
                        })?,
                );
            }
            "limit" => query.limit = parse_int("limit", &value, 1, 1000)? as u32,
            _ => {}
        }
    }
    let (tasks, next) = db(&state, move |s| s.tasks(&id, &query)).await?;
    Ok(Json(json!({ "tasks": tasks, "next_cursor": next.map(|n| n.to_string()) })).into_response())
}

/// `GET /v1/jobs/{id}/log`.
pub async fn read_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    note_activity(&state);
    let mut offset = 0u64;
    let mut limit = 1usize << 20;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "offset" => offset = parse_int("offset", &value, 0, i64::MAX)? as u64,
            "limit" => limit = parse_int("limit", &value, 1, 16_777_216)? as usize,
            _ => {}
        }
    }
    let read = db(&state, move |s| s.read_log(&id, offset, limit)).await?;
    let text = String::from_utf8_lossy(&read.data).into_owned();
    let mut response = (StatusCode::OK, text).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("x-next-offset", HeaderValue::from(read.next_offset));
    headers.insert(
        "x-log-complete",
        HeaderValue::from_static(if read.complete { "true" } else { "false" }),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_are_400_and_invalid_ones_422_naming_the_field() {
        let status = |body: &str| parse_request(body.as_bytes()).unwrap_err().status;
        assert_eq!(status("{"), StatusCode::BAD_REQUEST);
        assert_eq!(status("[1]"), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(r#"{"name": 3, "commands": [["true"]]}"#),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(r#"{"name": "x", "commands": [["true"]], "colour": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let err = parse_request(br#"{"name": "x", "commands": [[]]}"#).unwrap_err();
        assert_eq!(
            (err.status, err.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("commands[0]"))
        );
        let (floats, _) = parse_request(br#"{"name": "x", "commands": [["true"]], "frames": 5.0, "chunk_size": 2.0, "priority": -7.0}"#).unwrap();
        assert_eq!(
            (floats.chunk_size, floats.priority),
            (2, -7),
            "2.0 is an integer in JSON Schema"
        );
        assert_eq!(
            status(r#"{"name": "x", "commands": [["true"]], "priority": 1.5}"#),
            StatusCode::BAD_REQUEST
        );
        let (ok, canonical) = parse_request(br#"{"name": "x", "commands": [["true"]]}"#).unwrap();
        assert_eq!(ok.name, "x");
        assert!(canonical.starts_with('{'));
    }

    #[test]
    fn list_parameters_are_checked() {
        let q = parse_list_query(Some(
            "state=Running&state=Failed&name=a%20b&limit=5&cursor=12.3&tag=x:y",
        ))
        .unwrap();
        assert_eq!(q.states, [JobState::Running, JobState::Failed]);
        assert_eq!(
            (q.name.as_deref(), q.limit, q.after, q.tag.as_deref()),
            (Some("a b"), 5, Some((12, 3)), Some("x:y"))
        );
        for bad in [
            "state=running",
            "limit=0",
            "limit=1001",
            "since=-1",
            "cursor=abc",
            "tag=a%20b",
            "updated_since=x",
        ] {
            assert_eq!(
                parse_list_query(Some(bad)).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
