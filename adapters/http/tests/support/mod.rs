//! Stateful wiremock emulations of the schedulers the shipped profiles describe, with fault
//! injection. Shared by the conformance suites, the fault tests and the benchmarks.
#![allow(dead_code)]

pub mod engine;
pub mod plugin_task;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_conformance::SchedulerControl;
use farm_core::{JobId, JobRequest, JobState};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use engine::{Engine, Record, Status, Submitted};

/// How long a stalled reply is held back (well past the adapters' test timeouts).
pub const STALL: Duration = Duration::from_secs(6);

/// Faults waiting to happen. Stalls and garbage apply to a logical call: every retry of it
/// (same `X-Request-Id`) is treated alike, so "the reply never comes" survives retries.
#[derive(Default)]
pub struct Faults {
    stall_calls: usize,
    stalled: HashSet<String>,
    garble_calls: usize,
    garbled: HashSet<String>,
    /// The next N exchanges (attempts) answer 503.
    pub fail_exchanges: usize,
    /// The next N submits are carried out but their answers are held back (lost).
    pub lose_submit_replies: usize,
    /// Raw body of the most recent submission the scheduler accepted for processing.
    pub last_submission: Option<String>,
    /// Exchanges seen, by `METHOD path`.
    pub exchanges: Vec<String>,
}

/// What to do with one exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Stall,
    Garble,
    Fail,
}

impl Faults {
    fn on_exchange(&mut self, request: &Request) -> Fault {
        let rid = request
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.exchanges
            .push(format!("{} {}", request.method, request.url.path()));
        if self.stalled.contains(&rid) {
            return Fault::Stall;
        }
        if self.garbled.contains(&rid) {
            return Fault::Garble;
        }
        if self.stall_calls > 0 {
            self.stall_calls -= 1;
            self.stalled.insert(rid);
            return Fault::Stall;
        }
        if self.garble_calls > 0 {
            self.garble_calls -= 1;
            self.garbled.insert(rid);
            return Fault::Garble;
        }
        if self.fail_exchanges > 0 {
            self.fail_exchanges -= 1;
            return Fault::Fail;
        }
        Fault::None
    }
}

/// Which API an emulation speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// docs/http-scheduler.openapi.yaml.
    FarmV1,
    /// Deadline's Web Service with the FarmBridge plug-in.
    Deadline,
    /// docs/http-scheduler.openapi.yaml from a scheduler that keeps no start or end times
    /// (records without `start_time`/`end_time`; its capabilities say `job_times: false`).
    FarmV1Untimed,
}

struct Shared {
    dialect: Dialect,
    engine: Engine,
    faults: Arc<Mutex<Faults>>,
    token: Option<String>,
    page_size: usize,
}

/// A running emulation.
pub struct Emulation {
    pub server: MockServer,
    pub engine: Engine,
    pub faults: Arc<Mutex<Faults>>,
    pub dir: tempfile::TempDir,
}

impl Emulation {
    /// Starts an emulation. `token`: the bearer token it demands, if any.
    pub async fn start(dialect: Dialect, token: Option<&str>) -> Emulation {
        let dir = tempfile::Builder::new()
            .prefix("farm-http-emu-")
            .tempdir()
            .expect("tempdir");
        let make_id: Box<dyn Fn(u64) -> String + Send + Sync> = match dialect {
            Dialect::FarmV1 | Dialect::FarmV1Untimed => {
                Box::new(|_| uuid::Uuid::new_v4().to_string())
            }
            Dialect::Deadline => {
                Box::new(|_| uuid::Uuid::new_v4().simple().to_string()[..24].to_owned())
            }
        };
        let mut engine = Engine::new(dir.path().join("logs"), make_id);
        engine.via_run_task = dialect == Dialect::Deadline;
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::new(Shared {
            dialect,
            engine: engine.clone(),
            faults: faults.clone(),
            token: token.map(str::to_owned),
            // Small pages, so every listing in the suite follows cursors.
            page_size: 4,
        });
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(any())
            .respond_with(Responder(shared))
            .mount(&server)
            .await;
        Emulation {
            server,
            engine,
            faults,
            dir,
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn control(&self) -> Arc<dyn SchedulerControl> {
        Arc::new(Control {
            engine: self.engine.clone(),
            faults: self.faults.clone(),
        })
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults poisoned")
    }
}

/// Fault injection for the conformance suite.
pub struct Control {
    engine: Engine,
    faults: Arc<Mutex<Faults>>,
}

#[async_trait]
impl SchedulerControl for Control {
    async fn forget(&self, id: &JobId) {
        self.engine.forget(id.as_str());
    }

    async fn garble_replies(&self, count: usize) {
        self.faults.lock().expect("poisoned").garble_calls += count;
    }

    async fn stall_replies(&self, count: usize) {
        self.faults.lock().expect("poisoned").stall_calls += count;
    }

    async fn last_submission(&self) -> Option<String> {
        self.faults
            .lock()
            .expect("poisoned")
            .last_submission
            .clone()
    }
}

struct Responder(Arc<Shared>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let s = &self.0;
        let fault = s.faults.lock().expect("poisoned").on_exchange(request);
        match fault {
            Fault::Stall => return ResponseTemplate::new(200).set_delay(STALL),
            Fault::Garble => {
                return ResponseTemplate::new(200)
                    .set_body_raw("<html>502 Bad Gateway \u{0} {\"ok\":", "application/json");
            }
            Fault::Fail => {
                return problem(503, "Service Unavailable", "overloaded, try again", None)
                    .insert_header("Retry-After", "0");
            }
            Fault::None => {}
        }
        let public = request.url.path().ends_with("/health");
        if let Some(token) = &s.token
            && !public
        {
            let sent = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if sent != Some(format!("Bearer {token}").as_str()) {
                return problem(401, "Unauthorized", "missing or wrong bearer token", None);
            }
        }
        match s.dialect {
            Dialect::FarmV1 | Dialect::FarmV1Untimed => farm_v1(s, request),
            Dialect::Deadline => deadline(s, request),
        }
    }
}

fn json_reply(status: u16, value: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(value.to_string(), "application/json")
}

fn problem(status: u16, title: &str, detail: &str, field: Option<&str>) -> ResponseTemplate {
    let mut body =
        json!({"type": "about:blank", "title": title, "status": status, "detail": detail});
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/problem+json")
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(request: &Request, name: &str) -> Vec<String> {
    request
        .url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses and validates a submitted request as a server would: 400 for non-JSON, 422 naming
/// the field otherwise.
fn accept(text: &str) -> Result<JobRequest, Box<ResponseTemplate>> {
    if serde_json::from_str::<Value>(text).is_err() {
        return Err(Box::new(problem(
            400,
            "Bad Request",
            "the body is not JSON",
            None,
        )));
    }
    let request = JobRequest::from_json_str(text).and_then(|r| r.validate().map(|()| r));
    request.map_err(|e| {
        Box::new(match e {
            farm_core::FarmError::InvalidRequest {
                field,
                problem: detail,
            } => problem(422, "Invalid request", &detail, Some(&field)),
            other => problem(422, "Invalid request", &other.to_string(), None),
        })
    })
}

// ------------------------------------------------------------------ our protocol

fn v1_state(status: Status) -> (JobState, &'static str) {
    match status {
        Status::Queued => (JobState::Waiting, "QUEUED"),
        Status::Blocked => (JobState::Waiting, "BLOCKED"),
        Status::Running => (JobState::Running, "RUNNING"),
        Status::Stopping => (JobState::Running, "STOPPING"),
        Status::Done => (JobState::Completed, "DONE"),
        Status::Error => (JobState::Failed, "ERROR"),
        Status::Killed => (JobState::Cancelled, "KILLED"),
    }
}

fn v1_record(s: &Shared, r: &Record) -> Value {
    let (state, native) = v1_state(r.status);
    let mut v = json!({
        "id": r.id,
        "name": r.request.name,
        "state": state,
        "native_state": native,
        "reason": r.reason,
        "attempt": r.attempt,
        "submit_time": r.submit_ms,
        "start_time": r.start_ms,
        "end_time": r.end_ms,
        "updated_at": r.updated_ms,
        "render_log_filename": r.log.display().to_string(),
        "render_context": r.request.render_context,
        "tags": r.request.tags,
        "progress": {"frames_done": r.frames_done, "frames_total": r.request.frame_count()},
    });
    if let Value::Object(map) = &mut v {
        map.retain(|_, v| !v.is_null());
        if s.dialect == Dialect::FarmV1Untimed {
            map.remove("start_time");
            map.remove("end_time");
        }
    }
    v
}

fn not_found(id: &str) -> ResponseTemplate {
    problem(404, "Not Found", &format!("no job {id}"), None)
}

fn farm_v1(s: &Shared, request: &Request) -> ResponseTemplate {
    let method = request.method.as_str();
    let path = request.url.path();
    let body = String::from_utf8_lossy(&request.body).into_owned();
    match (method, path) {
        ("GET", "/v1/health") => {
            return json_reply(200, &json!({"status": "ok", "version": "emulated"}));
        }
        ("GET", "/v1/capabilities") => {
            return json_reply(
                200,
                &serde_json::to_value(farm_core::Capabilities {
                    stage_files: false,
                    job_times: s.dialect != Dialect::FarmV1Untimed,
                    ..farm_core::Capabilities::ALL
                })
                .expect("caps"),
            );
        }
        ("POST", "/v1/jobs:check") => {
            return match accept(&body) {
                Ok(_) => ResponseTemplate::new(204),
                Err(reply) => *reply,
            };
        }
        ("POST", "/v1/jobs") => {
            let request_parsed = match accept(&body) {
                Ok(r) => r,
                Err(reply) => return *reply,
            };
            let key = header(request, "idempotency-key");
            let lose = {
                let mut f = s.faults.lock().expect("poisoned");
                f.last_submission = Some(body.clone());
                let lose = f.lose_submit_replies > 0;
                if lose {
                    f.lose_submit_replies -= 1;
                }
                lose
            };
            let reply = match s.engine.submit(request_parsed, body, key) {
                Submitted::Created(r) => json_reply(201, &v1_record(s, &r))
                    .insert_header("Location", format!("/v1/jobs/{}", r.id).as_str()),
                Submitted::Existing(r) => json_reply(200, &v1_record(s, &r)),
                Submitted::Conflict(r) => problem(
                    409,
                    "Conflict",
                    &format!(
                        "the idempotency key was used for job {} with a different request",
                        r.id
                    ),
                    Some("render_context"),
                ),
            };
            return if lose { reply.set_delay(STALL) } else { reply };
        }
        ("GET", "/v1/jobs") => return v1_list(s, request),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v1/jobs/") else {
        return problem(404, "Not Found", &format!("no route {method} {path}"), None);
    };
    if let Some(id) = rest.strip_suffix("/log") {
        let id = decode(id);
        if method != "GET" {
            return problem(405, "Method Not Allowed", "GET only", None);
        }
        let offset = query(request, "offset")
            .first()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        return match s.engine.read_log(&id, offset) {
            Some((text, next, complete)) => ResponseTemplate::new(200)
                .set_body_raw(text, "text/plain; charset=utf-8")
                .insert_header("X-Next-Offset", next.to_string().as_str())
                .insert_header("X-Log-Complete", if complete { "true" } else { "false" }),
            None => not_found(&id),
        };
    }
    let (id, action) = match rest.rsplit_once(':') {
        Some((id, action)) => (decode(id), Some(action)),
        None => (decode(rest), None),
    };
    match (method, action) {
        ("GET", None) => s
            .engine
            .get(&id)
            .map_or_else(|| not_found(&id), |r| json_reply(200, &v1_record(s, &r))),
        ("POST", Some("stop")) => s
            .engine
            .stop(&id)
            .map_or_else(|| not_found(&id), |r| json_reply(200, &v1_record(s, &r))),
        ("POST", Some("start")) => match s.engine.start(&id) {
            None => not_found(&id),
            Some(Ok(r)) => json_reply(200, &v1_record(s, &r)),
            Some(Err(r)) => problem(
                409,
                "Conflict",
                &format!("job {} is still stopping", r.id),
                None,
            ),
        },
        _ => problem(404, "Not Found", &format!("no route {method} {path}"), None),
    }
}

fn v1_list(s: &Shared, request: &Request) -> ResponseTemplate {
    let states: Vec<JobState> = query(request, "state")
        .iter()
        .filter_map(|w| w.parse().ok())
        .collect();
    let name = query(request, "name").into_iter().next();
    let tag = query(request, "tag").into_iter().next();
    let since: Option<i64> = query(request, "since").first().and_then(|v| v.parse().ok());
    let updated_since: Option<i64> = query(request, "updated_since")
        .first()
        .and_then(|v| v.parse().ok());
    let offset: usize = query(request, "cursor")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query(request, "limit")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let matching: Vec<Value> = s
        .engine
        .all()
        .iter()
        .filter(|r| states.is_empty() || states.contains(&v1_state(r.status).0))
        .filter(|r| name.as_ref().is_none_or(|n| *n == r.request.name))
        .filter(|r| tag.as_ref().is_none_or(|t| r.request.tags.contains(t)))
        .filter(|r| since.is_none_or(|t| r.submit_ms >= t))
        .filter(|r| updated_since.is_none_or(|t| r.updated_ms >= t))
        .map(|r| v1_record(s, r))
        .collect();
    let size = limit.min(s.page_size).max(1);
    let page: Vec<Value> = matching.iter().skip(offset).take(size).cloned().collect();
    let next = (offset + page.len() < matching.len()).then(|| (offset + page.len()).to_string());
    json_reply(200, &json!({"jobs": page, "next_cursor": next}))
}

// ------------------------------------------------------------------ Deadline Web Service

fn rfc3339(ms: Option<i64>) -> String {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn deadline_stat(status: Status) -> (u8, &'static str) {
    match status {
        Status::Queued | Status::Blocked | Status::Running | Status::Stopping => (1, "Active"),
        Status::Done => (3, "Completed"),
        Status::Error => (4, "Failed"),
        Status::Killed => (2, "Suspended"),
    }
}

fn deadline_record(r: &Record) -> Value {
    let (stat, _) = deadline_stat(r.status);
    let rendering = if matches!(r.status, Status::Running | Status::Stopping) {
        r.tasks_running.max(1)
    } else {
        0
    };
    let queued = r
        .tasks_total
        .saturating_sub(r.tasks_done + r.tasks_failed + rendering);
    json!({
        "_id": r.id,
        "Props": {
            "Name": r.request.name,
            "Batch": "",
            "User": "render",
            "Plug": "FarmBridge",
            "Frames": r.request.frames.as_ref().map_or("0".to_owned(), |f| f.to_string()),
            "Chunk": r.request.chunk_size,
            "Pri": (i64::from(r.request.priority) + 1000) * 100 / 2000,
            "Ex0": r.request.render_context,
            "Ex1": r.request.tags.join(","),
        },
        "Stat": stat,
        "Date": rfc3339(Some(r.submit_ms)),
        "DateStart": rfc3339(r.start_ms),
        "DateComp": rfc3339(r.end_ms),
        "Tasks": r.tasks_total,
        "CompletedChunks": r.tasks_done,
        "QueuedChunks": queued,
        "RenderingChunks": rendering,
        "FailedChunks": r.tasks_failed,
        "SuspendedChunks": if r.status == Status::Killed { queued } else { 0 },
        "PendingChunks": 0,
    })
}

fn text(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_owned(), "text/plain")
}

/// What reaches the FarmBridge plug-in: the request in `PluginInfo.Request` (one line of
/// JSON), which the emulated plug-in hands to `farm run-task`. Deadline chunks the job by
/// `JobInfo.Frames` and `ChunkSize`; they must match the request's, as `farm run-task
/// --frames` would otherwise refuse every task.
fn deadline_request(body: &Value) -> Result<JobRequest, String> {
    let ji = body.get("JobInfo").ok_or("no JobInfo")?;
    let pi = body.get("PluginInfo").ok_or("no PluginInfo")?;
    if ji.get("Plugin").and_then(Value::as_str) != Some("FarmBridge") {
        return Err("this repository only has the FarmBridge plug-in".into());
    }
    // Deadline keeps PluginInfo values as strings.
    let text = pi
        .get("Request")
        .and_then(Value::as_str)
        .ok_or("PluginInfo.Request is not a string")?;
    if text.contains('\n') || !text.is_ascii() {
        return Err("PluginInfo.Request is not one ASCII line".into());
    }
    let request = farm_core::run_task::parse_request(text).map_err(|e| e.to_string())?;
    let frames = request.frames.as_ref().map(|f| f.to_string());
    if ji.get("Frames").and_then(Value::as_str) != frames.as_deref()
        || (frames.is_some()
            && ji.get("ChunkSize").and_then(Value::as_u64) != Some(u64::from(request.chunk_size)))
    {
        return Err("JobInfo Frames/ChunkSize differ from the request's".into());
    }
    Ok(request)
}

fn deadline(s: &Shared, request: &Request) -> ResponseTemplate {
    let method = request.method.as_str();
    let path = request.url.path();
    let raw = String::from_utf8_lossy(&request.body).into_owned();
    match (method, path) {
        ("POST", "/api/jobs") => {
            let Ok(body) = serde_json::from_str::<Value>(&raw) else {
                return text(400, "Error: the message body is not JSON");
            };
            let job = match deadline_request(&body) {
                Ok(job) => job,
                Err(e) => return text(400, &format!("Error: {e}")),
            };
            let lose = {
                let mut f = s.faults.lock().expect("poisoned");
                f.last_submission = Some(raw.clone());
                let lose = f.lose_submit_replies > 0;
                if lose {
                    f.lose_submit_replies -= 1;
                }
                lose
            };
            let (Submitted::Created(r) | Submitted::Existing(r) | Submitted::Conflict(r)) =
                s.engine.submit(job, raw, None);
            let reply = if body.get("IdOnly") == Some(&Value::Bool(true)) {
                json_reply(200, &json!({"_id": r.id}))
            } else {
                json_reply(200, &deadline_record(&r))
            };
            if lose { reply.set_delay(STALL) } else { reply }
        }
        ("GET", "/api/jobs") => {
            if let Some(id) = query(request, "JobID").first() {
                let found: Vec<Value> = s.engine.get(id).iter().map(deadline_record).collect();
                return json_reply(200, &Value::Array(found));
            }
            let wanted: Vec<String> = query(request, "States")
                .first()
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let jobs: Vec<Value> = s
                .engine
                .all()
                .iter()
                .filter(|r| {
                    wanted.is_empty()
                        || wanted.iter().any(|w| {
                            w == deadline_stat(r.status).1
                                || (w == "Pending" && r.status == Status::Blocked)
                        })
                })
                .map(deadline_record)
                .collect();
            json_reply(200, &Value::Array(jobs))
        }
        ("PUT", "/api/jobs") => {
            let Ok(body) = serde_json::from_str::<Value>(&raw) else {
                return text(400, "Error: the message body is not JSON");
            };
            let Some(command) = body.get("Command").and_then(Value::as_str) else {
                return text(400, "Error: no command key");
            };
            let id = body
                .get("JobID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match command {
                "suspend" => match s.engine.stop(id) {
                    Some(_) => text(200, "Success"),
                    None => text(404, &format!("Error: Job {id} was not found")),
                },
                other => text(500, &format!("Error: invalid command {other}")),
            }
        }
        ("GET", "/api/jobreports") => {
            let id = query(request, "JobID")
                .into_iter()
                .next()
                .unwrap_or_default();
            match s.engine.get(&id) {
                None => text(
                    500,
                    "Error: The Job ID provided does not correspond to any Job in the Repository.",
                ),
                Some(r) if r.status == Status::Error => json_reply(
                    200,
                    &json!([{"Title": format!("FarmBridge: {}", r.reason.unwrap_or_default()), "Date": rfc3339(r.end_ms), "Job": r.id, "Task": 0}]),
                ),
                Some(_) => json_reply(200, &json!([])),
            }
        }
        _ => text(404, &format!("Error: no such endpoint {method} {path}")),
    }
}
