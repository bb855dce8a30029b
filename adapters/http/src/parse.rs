//! Responses -> `Job`, ids, log chunks and `FarmError`. Pure: tested on recorded payloads in
//! `fixtures/http/`.

use std::time::Duration;

use farm_core::{EpochMillis, FarmError, Job, JobId, LogChunk, Progress, Result};
use serde_json::Value;

use crate::profile::{ErrorMapping, JobMapping, Pointer, Profile, Source, TimeFormat};

/// Parses a JSON body; anything else is a `Scheduler` error quoting what came back.
pub fn json_body(what: &str, body: &str) -> Result<Value> {
    serde_json::from_str(body).map_err(|e| FarmError::Scheduler {
        message: format!(
            "{what}: the scheduler answered with something that is not JSON: {}",
            excerpt(body)
        ),
        source: Some(Box::new(e)),
    })
}

/// The first 200 characters of a body, for messages.
pub fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// Text of a scalar: strings as is, numbers and booleans as written.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn at(record: &Value, pointer: Option<&Pointer>) -> Option<Value> {
    pointer
        .and_then(|p| p.find(record))
        .filter(|v| !v.is_null())
        .cloned()
}

/// A time in milliseconds; `None` for absent or "not yet" values (before 1971).
pub fn time(value: &Value, format: TimeFormat) -> Option<EpochMillis> {
    let ms = match format {
        TimeFormat::EpochMs => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))?,
        TimeFormat::EpochS => value.as_f64().map(|f| (f * 1000.0) as i64)?,
        TimeFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(value.as_str()?)
            .ok()?
            .timestamp_millis(),
    };
    (ms >= 31_536_000_000).then_some(ms)
}

/// A job record -> `Job`. A record without an id or a state is garbage: a `Scheduler`
/// error, never a made-up state.
pub fn job(profile: &Profile, record: &Value) -> Result<Job> {
    let m: &JobMapping = &profile.job;
    let id = at(record, Some(&m.id))
        .and_then(|v| text(&v))
        .ok_or_else(|| {
            FarmError::scheduler(format!(
                "a job record has no id at {:?}: {}",
                m.id.0,
                excerpt(&record.to_string())
            ))
        })?;
    let native = at(record, Some(&m.state))
        .and_then(|v| text(&v))
        .ok_or_else(|| {
            FarmError::scheduler(format!(
                "job {id}: the record has no state at {:?}: {}",
                m.state.0,
                excerpt(&record.to_string())
            ))
        })?;
    let (state, label, default_reason) = profile.map_state(&native, record);
    let name = at(record, Some(&m.name))
        .and_then(|v| text(&v))
        .unwrap_or_default();
    let tags = match at(record, m.tags.as_ref()) {
        Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
        Some(Value::String(s)) => match &m.tags_separator {
            Some(sep) => s
                .split(sep.as_str())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            None if s.is_empty() => Vec::new(),
            None => vec![s],
        },
        _ => Vec::new(),
    };
    let times = |p: &Option<Pointer>| at(record, p.as_ref()).and_then(|v| time(&v, m.time_format));
    let progress = match (
        at(record, m.frames_done.as_ref()).and_then(|v| v.as_u64()),
        at(record, m.frames_total.as_ref()).and_then(|v| v.as_u64()),
    ) {
        (Some(frames_done), Some(frames_total)) => Some(Progress {
            frames_done,
            frames_total,
        }),
        _ => None,
    };
    Ok(Job {
        id: JobId::new(id),
        name,
        state,
        native_state: Some(
            at(record, m.native_state.as_ref())
                .and_then(|v| text(&v))
                .unwrap_or(label),
        ),
        reason: at(record, m.reason.as_ref())
            .and_then(|v| text(&v))
            .filter(|r| !r.is_empty())
            .or(default_reason),
        attempt: at(record, m.attempt.as_ref())
            .and_then(|v| v.as_u64())
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1)
            .max(1),
        submit_time: times(&m.submit_time),
        start_time: times(&m.start_time).filter(|_| {
            m.start_time_in
                .as_ref()
                .is_none_or(|states| states.contains(&state))
        }),
        end_time: times(&m.end_time),
        render_log_filename: at(record, m.render_log_filename.as_ref())
            .and_then(|v| text(&v))
            .filter(|s| !s.is_empty()),
        render_context: at(record, m.render_context.as_ref())
            .and_then(|v| text(&v))
            .and_then(|s| uuid::Uuid::parse_str(&s).ok()),
        tags,
        progress,
    })
}

/// The record in a `get` response, or `None` when the response says there is none (an
/// empty list, `null`, or nothing at the pointer).
pub fn record<'v>(body: &'v Value, pointer: Option<&Pointer>) -> Option<&'v Value> {
    let found = match pointer {
        Some(p) => p.find(body)?,
        None => body,
    };
    match found {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        other => Some(other),
    }
}

/// The id in a submit or start response: text or a number.
pub fn id(what: &str, body: &Value, pointer: &Pointer) -> Result<JobId> {
    pointer
        .find(body)
        .and_then(text)
        .filter(|s| !s.is_empty())
        .map(JobId::new)
        .ok_or_else(|| {
            FarmError::scheduler(format!(
                "{what}: no job id at {:?} in {}",
                pointer.0,
                excerpt(&body.to_string())
            ))
        })
}

/// A list page: records and the next cursor.
pub fn page(
    profile: &Profile,
    body: &Value,
    items: &Pointer,
    next: Option<&Pointer>,
) -> Result<(Vec<Job>, Option<String>)> {
    let records = items.find(body).and_then(Value::as_array).ok_or_else(|| {
        FarmError::scheduler(format!(
            "list: no array at {:?} in {}",
            items.0,
            excerpt(&body.to_string())
        ))
    })?;
    let jobs = records
        .iter()
        .map(|r| job(profile, r))
        .collect::<Result<Vec<_>>>()?;
    let cursor = next
        .and_then(|p| p.find(body))
        .and_then(text)
        .filter(|c| !c.is_empty());
    Ok((jobs, cursor))
}

/// A response as the log operation sees it.
pub struct LogReply<'a> {
    /// Body text.
    pub body: &'a str,
    /// A header by name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

/// The log chunk from a `log` response. Text comes from the body (or a pointer into it);
/// the next offset defaults to `offset` plus the bytes read.
pub fn log_chunk(
    text_src: Option<&Source>,
    next_src: Option<&Source>,
    complete_src: Option<&Source>,
    reply: &LogReply<'_>,
    offset: u64,
) -> Result<LogChunk> {
    let json = || json_body("log", reply.body);
    let get = |src: &Source| -> Result<Option<Value>> {
        if let Some(h) = &src.header {
            return Ok((reply.header)(h).map(Value::String));
        }
        if let Some(p) = &src.pointer {
            return Ok(p.find(&json()?).cloned());
        }
        Ok(Some(Value::String(reply.body.to_owned())))
    };
    let mut data = match text_src {
        Some(src) => get(src)?.and_then(|v| text(&v)).unwrap_or_default(),
        None => reply.body.to_owned(),
    };
    if text_src.is_some_and(|s| s.whole) {
        // The whole log came back: keep what follows the offset, cut on a character.
        let mut at = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        while !data.is_char_boundary(at) {
            at -= 1;
        }
        let whole = data.len() as u64;
        data = data.split_off(at);
        return Ok(LogChunk {
            data,
            next_offset: whole.max(offset),
            complete: complete_of(complete_src, &get)?,
        });
    }
    let next_offset = match next_src {
        Some(src) => {
            let raw = get(src)?.and_then(|v| text(&v));
            raw.as_deref()
                .map(|t| t.trim().parse::<u64>())
                .transpose()
                .map_err(|_| {
                    FarmError::scheduler(format!("log: next offset {raw:?} is not a number"))
                })?
                .unwrap_or(offset + data.len() as u64)
        }
        None => offset + data.len() as u64,
    };
    Ok(LogChunk {
        data,
        next_offset,
        complete: complete_of(complete_src, &get)?,
    })
}

fn complete_of(
    src: Option<&Source>,
    get: &dyn Fn(&Source) -> Result<Option<Value>>,
) -> Result<bool> {
    Ok(match src {
        Some(src) => {
            get(src)?.is_some_and(|v| v == Value::Bool(true) || text(&v).as_deref() == Some("true"))
        }
        None => false,
    })
}

/// What went wrong with one HTTP exchange, before it becomes a `FarmError`.
#[derive(Debug)]
pub enum Failure {
    /// No usable answer: connection refused, timeout, broken stream.
    Transport(reqwest::Error),
    /// An answer with a non-success status.
    Status {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
}

/// What the failed call was, for the message and for `JobNotFound`.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// The operation (`get`, `submit`).
    pub operation: &'a str,
    /// `GET /v1/jobs/42`.
    pub target: &'a str,
    /// The job the call was about, if any.
    pub job: Option<&'a JobId>,
}

/// The message and field an error body carries: RFC 9457 problem details (or the profile's
/// pointers), else the body text itself.
pub fn problem(errors: &ErrorMapping, body: &str) -> (String, Option<String>) {
    let trimmed = body.trim();
    if let Ok(value) = serde_json::from_str::<Value>(trimmed)
        && value.is_object()
    {
        let get = |p: &Pointer| p.find(&value).and_then(text).filter(|s| !s.is_empty());
        let message = get(&errors.message)
            .or_else(|| get(&errors.title))
            .unwrap_or_else(|| value.to_string());
        return (message, get(&errors.field));
    }
    (
        if trimmed.is_empty() {
            "(empty body)".to_owned()
        } else {
            trimmed.chars().take(2000).collect()
        },
        None,
    )
}

/// THE mapping from HTTP outcomes to `FarmError`: every failed exchange of this adapter
/// goes through here, and the scheduler's own words are kept in the message.
///
/// 404 -> `JobNotFound` (for calls about a job), 401/403 -> `PermissionDenied`,
/// 409 -> `Scheduler` (or `InvalidRequest` when the problem names a field), 400/422 ->
/// `InvalidRequest` with the problem's field, 408/429/5xx and transport errors ->
/// `Unavailable` (retryable).
pub fn farm_error(failure: Failure, call: CallInfo<'_>, errors: &ErrorMapping) -> FarmError {
    let CallInfo {
        operation,
        target,
        job,
    } = call;
    match failure {
        Failure::Transport(err) => {
            let what = if err.is_timeout() {
                "no answer in time"
            } else if err.is_connect() {
                "cannot connect"
            } else {
                "the exchange failed"
            };
            FarmError::Unavailable {
                message: format!("{operation}: {target}: {what}"),
                source: Some(Box::new(err)),
            }
        }
        Failure::Status { status, body, .. } => {
            let (detail, field) = problem(errors, &body);
            let message = format!("{operation}: {target}: HTTP {status}: {detail}");
            match status {
                // A 404 is "no such job" only when the scheduler says so. An empty body or
                // an HTML page comes from something else (a proxy, a wrong base URL), and
                // calling every job unknown would hide that.
                404 if body.trim().is_empty() || body.trim_start().starts_with('<') => {
                    FarmError::scheduler(format!(
                        "{operation}: {target}: HTTP 404 without an answer from the scheduler \
                         ({}): check the farm's url and the profile's paths",
                        if body.trim().is_empty() {
                            "empty body"
                        } else {
                            "an HTML page"
                        }
                    ))
                }
                404 => match job {
                    Some(id) => FarmError::job_not_found(id.clone()),
                    None => FarmError::scheduler(message),
                },
                401 | 403 => FarmError::permission_denied(message),
                400 | 409 | 422 => match field {
                    Some(field) => FarmError::invalid(field, detail),
                    None if status == 422 => FarmError::invalid("(request)", detail),
                    None => FarmError::scheduler(message),
                },
                408 | 429 | 500..=599 => FarmError::unavailable(message),
                _ => FarmError::scheduler(message),
            }
        }
    }
}

/// What a server said when it accepted a check: its optional JSON body
/// `{message, estimated_start (epoch ms), placement}` (our protocol's 200), else a sentence
/// naming the profile and the status (a 204 says nothing more).
pub fn check_report(profile: &str, reply: &crate::client::Reply) -> farm_core::CheckReport {
    let body: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
    let text = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    farm_core::CheckReport {
        message: text("message").unwrap_or_else(|| {
            format!(
                "the server ({profile}) accepts the request (HTTP {})",
                reply.status
            )
        }),
        estimated_start: body
            .as_ref()
            .and_then(|b| b.get("estimated_start"))
            .and_then(serde_json::Value::as_i64),
        placement: text("placement"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_core::{ErrorKind, JobState};

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/http")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn status(status: u16, body: &str) -> Failure {
        Failure::Status {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn a_404_that_is_not_from_the_scheduler_is_not_a_missing_job() {
        let id = JobId::new("42");
        let call = || CallInfo {
            operation: "get",
            target: "GET /v1/jobs/42",
            job: Some(&id),
        };
        let errors = ErrorMapping::default();
        for body in ["", "  ", "<html><body>Not Found</body></html>"] {
            let err = farm_error(status(404, body), call(), &errors);
            assert_eq!(err.kind(), ErrorKind::Scheduler, "{body:?}");
            assert!(err.to_string().contains("check the farm's url"), "{err}");
        }
        let err = farm_error(
            status(
                404,
                r#"{"title":"Not Found","status":404,"detail":"no job 42"}"#,
            ),
            call(),
            &errors,
        );
        assert_eq!(err.kind(), ErrorKind::JobNotFound);
    }

    #[test]
    fn statuses_map_to_errors_and_keep_the_native_message() {
        let id = JobId::new("42");
        let call = CallInfo {
            operation: "get",
            target: "GET /v1/jobs/42",
            job: Some(&id),
        };
        let e = ErrorMapping::default();
        let problem =
            r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no job 42"}"#;
        assert_eq!(
            farm_error(status(404, problem), call, &e).kind(),
            ErrorKind::JobNotFound
        );
        let denied = farm_error(
            status(
                401,
                r#"{"title":"Unauthorized","status":401,"detail":"bad token"}"#,
            ),
            call,
            &e,
        );
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        assert!(denied.to_string().contains("bad token"), "{denied}");
        match farm_error(
            status(
                422,
                r#"{"title":"x","status":422,"detail":"must not be empty","field":"commands[0]"}"#,
            ),
            call,
            &e,
        ) {
            FarmError::InvalidRequest { field, problem } => {
                assert_eq!(field, "commands[0]");
                assert_eq!(problem, "must not be empty");
            }
            other => panic!("{other:?}"),
        }
        let conflict = farm_error(
            status(
                409,
                r#"{"title":"Conflict","status":409,"detail":"job 42 is still stopping"}"#,
            ),
            call,
            &e,
        );
        assert_eq!(conflict.kind(), ErrorKind::Scheduler);
        assert!(conflict.to_string().contains("still stopping"));
        for code in [408, 429, 500, 502, 503] {
            assert!(
                farm_error(status(code, "busy"), call, &e).is_retryable(),
                "{code}"
            );
        }
        let text = farm_error(
            status(
                500,
                "Error: An exception occurred within the Deadline code.",
            ),
            call,
            &e,
        );
        assert!(
            text.to_string().contains("within the Deadline code"),
            "{text}"
        );
        let no_job = CallInfo {
            operation: "list",
            target: "GET /v1/jobs",
            job: None,
        };
        assert_eq!(
            farm_error(status(404, "no route"), no_job, &e).kind(),
            ErrorKind::Scheduler
        );
    }

    #[test]
    fn recorded_builtin_records_parse() {
        let p = Profile::builtin();
        let body = json_body("get", &fixture("farm-v1/job-failed.json")).unwrap();
        let job = job(&p, record(&body, None).unwrap()).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.native_state.as_deref(), Some("ERROR"));
        assert!(job.reason.as_deref().unwrap().contains("exit code 3"));
        assert_eq!(job.attempt, 2);
        assert_eq!(job.tags, ["show:abc", "conformance-run:1"]);
        assert!(job.start_time.unwrap() <= job.end_time.unwrap());
        assert_eq!(
            job.progress,
            Some(Progress {
                frames_done: 3,
                frames_total: 4
            })
        );
        let page_body = json_body("list", &fixture("farm-v1/job-page.json")).unwrap();
        let (jobs, cursor) = page(
            &p,
            &page_body,
            &Pointer("/jobs".into()),
            Some(&Pointer("/next_cursor".into())),
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(cursor.as_deref(), Some("2"));
    }

    #[test]
    fn recorded_deadline_records_parse() {
        let p = Profile::load("deadline-web-service").unwrap();
        let body = json_body("get", &fixture("deadline/job-rendering.json")).unwrap();
        let rec = record(&body, p.operations.get.record.as_ref()).unwrap();
        let job = job(&p, rec).unwrap();
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.native_state.as_deref(), Some("Rendering"));
        assert_eq!(job.tags, ["show:abc", "conformance-run:1"]);
        assert!(job.start_time.is_some());
        assert_eq!(job.end_time, None, "0001-01-01 means not yet");
        assert!(job.render_context.is_some());
        let empty = json_body("get", "[]").unwrap();
        assert!(record(&empty, p.operations.get.record.as_ref()).is_none());
    }

    #[test]
    fn garbage_is_an_error_never_a_state() {
        let p = Profile::builtin();
        assert_eq!(
            json_body("get", "<html>502 Bad Gateway")
                .unwrap_err()
                .kind(),
            ErrorKind::Scheduler
        );
        let no_state = serde_json::json!({"id": "1", "name": "x"});
        assert_eq!(job(&p, &no_state).unwrap_err().kind(), ErrorKind::Scheduler);
        let odd = serde_json::json!({"id": "1", "name": "x", "state": "Exploded"});
        let j = job(&p, &odd).unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert!(j.reason.unwrap().contains("unknown native state Exploded"));
    }

    #[test]
    fn log_offsets_come_from_headers_or_default_to_bytes_read() {
        let headers = |name: &str| match name {
            "X-Next-Offset" => Some("17".to_owned()),
            "X-Log-Complete" => Some("true".to_owned()),
            _ => None,
        };
        let reply = LogReply {
            body: "hello\n",
            header: &headers,
        };
        let src = |h: &str| Source {
            header: Some(h.into()),
            pointer: None,
            whole: false,
        };
        let c = log_chunk(
            None,
            Some(&src("X-Next-Offset")),
            Some(&src("X-Log-Complete")),
            &reply,
            11,
        )
        .unwrap();
        assert_eq!(
            (c.data.as_str(), c.next_offset, c.complete),
            ("hello\n", 17, true)
        );
        let c = log_chunk(None, None, None, &reply, 4).unwrap();
        assert_eq!((c.next_offset, c.complete), (10, false));
        let whole = Source {
            header: None,
            pointer: Some(Pointer("/logs".into())),
            whole: true,
        };
        let body = r#"{"logs": "preamble\nhé\nend\n"}"#;
        let reply = LogReply {
            body,
            header: &headers,
        };
        let c = log_chunk(Some(&whole), None, None, &reply, 13).unwrap();
        assert_eq!((c.data.as_str(), c.next_offset), ("end\n", 17));
        let c = log_chunk(Some(&whole), None, None, &reply, 11).unwrap();
        assert_eq!(c.data, "é\nend\n", "cut on a character boundary");
        let c = log_chunk(Some(&whole), None, None, &reply, 99).unwrap();
        assert_eq!((c.data.as_str(), c.next_offset), ("", 99));
    }

    #[test]
    fn times_before_1971_mean_not_yet() {
        assert_eq!(
            time(
                &Value::String("0001-01-01T00:00:00Z".into()),
                TimeFormat::Rfc3339
            ),
            None
        );
        assert_eq!(
            time(
                &Value::String("2024-05-01T10:00:00.250Z".into()),
                TimeFormat::Rfc3339
            ),
            Some(1_714_557_600_250)
        );
        assert_eq!(
            time(&serde_json::json!(1714557600), TimeFormat::EpochS),
            Some(1_714_557_600_000)
        );
        assert_eq!(time(&serde_json::json!(0), TimeFormat::EpochMs), None);
    }
}
