//! A stateful slurmrestd v0.0.38 on wiremock: `job/submit`, `jobs`, `job/{id}` (GET and
//! DELETE), with the status codes, `errors[]` and bodies recorded from the real one.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::cli::env_map;
use super::engine::{Engine, Fault, JobSpec, meta};

pub const USER: &str = "farm-test";
pub const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.emulated.token";

struct Slurmrestd {
    engine: Engine,
}

fn reply(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_string(serde_json::to_string_pretty(&body).unwrap())
        .insert_header("Content-Type", "application/json")
}

fn invalid_job(id: &str, source: &str) -> ResponseTemplate {
    reply(
        500,
        json!({ "meta": meta(), "errors": [{ "description": format!("Unable to find JobId={id}"), "error_number": 2017, "error": "Invalid job id specified", "source": source }], "jobs": [] }),
    )
}

fn spec_from_body(body: &Value) -> Result<JobSpec, Box<ResponseTemplate>> {
    let job = &body["job"];
    if job["environment"].is_null() {
        return Err(Box::new(reply(
            400,
            json!({ "meta": meta(), "errors": [{ "error": "environment must be set", "error_code": 2127 }, { "error_code": 9001, "error": "Failure during parsing" }] }),
        )));
    }
    let s = |k: &str| job[k].as_str().unwrap_or_default().to_owned();
    let (array, limit) = match job["array"].as_str() {
        Some(a) => {
            let (list, limit) = a
                .split_once('%')
                .map_or((a, None), |(l, n)| (l, n.parse().ok()));
            (Some(farm_slurm::parse::parse_task_ranges(list)), limit)
        }
        None => (None, None),
    };
    let dependency = match job["dependency"].as_str() {
        Some(d) => d
            .trim_start_matches("afterok:")
            .split(':')
            .filter_map(|x| x.parse().ok())
            .collect(),
        None => vec![],
    };
    Ok(JobSpec {
        name: s("name"),
        comment: s("comment"),
        output: s("standard_output"),
        open_append: s("open_mode") == "append",
        array,
        array_limit: limit,
        time_limit: job["time_limit"]
            .as_u64()
            .map(|m| Duration::from_secs(m * 60)),
        dependency,
        kill_on_invalid_dep: job["kill_on_invalid_dependency"].as_bool().unwrap_or(false),
        cwd: s("current_working_directory"),
        env: env_map(&job["environment"]),
        script: body["script"].as_str().unwrap_or_default().to_owned(),
        nice: job["nice"].as_i64().unwrap_or(0),
        partition: s("partition"),
    })
}

impl Respond for Slurmrestd {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        if header("X-SLURM-USER-NAME") != USER || header("X-SLURM-USER-TOKEN") != TOKEN {
            return ResponseTemplate::new(401).set_body_string("Authentication failure");
        }
        match self.engine.take_fault() {
            Fault::Stall => return ResponseTemplate::new(200).set_delay(Duration::from_secs(3600)),
            Fault::Garble => {
                return ResponseTemplate::new(200)
                    .set_body_string("<html>502 Bad Gateway \u{0} {\"jobs\":");
            }
            Fault::ControllerDown => return controller_down(request),
            Fault::None => {}
        }
        let path = request.url.path().to_owned();
        let Some(rest) = path.strip_prefix("/slurm/v0.0.38/") else {
            return ResponseTemplate::new(404).set_body_string(
                "Unable find requested URL. Please view /openapi/v3 for API reference.",
            );
        };
        match (request.method.as_str(), rest) {
            ("POST", "job/submit") => {
                let raw = String::from_utf8_lossy(&request.body).into_owned();
                let Ok(body) = serde_json::from_str::<Value>(&raw) else {
                    return ResponseTemplate::new(400).set_body_string("Unable to parse query.");
                };
                match spec_from_body(&body) {
                    Ok(spec) => {
                        let id = self.engine.submit(spec, raw);
                        reply(
                            200,
                            json!({ "meta": meta(), "errors": [], "job_id": id, "step_id": "BATCH", "job_submit_user_msg": "" }),
                        )
                    }
                    Err(r) => *r,
                }
            }
            ("GET", "jobs") => reply(
                200,
                json!({ "meta": meta(), "errors": [], "jobs": self.engine.records(None) }),
            ),
            ("GET", p) if p.starts_with("job/") => {
                let id = &p[4..];
                match id.parse::<u64>() {
                    Ok(n) if self.engine.exists(n) => reply(
                        200,
                        json!({ "meta": meta(), "errors": [], "jobs": self.engine.records(Some(n)) }),
                    ),
                    _ => invalid_job(id, "slurm_load_job"),
                }
            }
            ("DELETE", p) if p.starts_with("job/") => {
                let id = &p[4..];
                match id.parse::<u64>() {
                    Ok(n) if self.engine.cancel(n) => {
                        reply(200, json!({ "meta": meta(), "errors": [] }))
                    }
                    _ => reply(
                        500,
                        json!({ "meta": meta(), "errors": [{ "description": format!("unable to kill JobId={id} with signal 9: Invalid job id specified"), "error_number": 2017, "error": "Invalid job id specified", "source": "slurm_kill_job" }] }),
                    ),
                }
            }
            _ => ResponseTemplate::new(404).set_body_string(
                "Unable find requested URL. Please view /openapi/v3 for API reference.",
            ),
        }
    }
}

/// What the real slurmrestd 22.05 answered while slurmctld was down
/// (`fixtures/slurm/rest/*-slurmctld-down.response.json`, recorded for job 5).
fn controller_down(request: &Request) -> ResponseTemplate {
    let recorded = |name: &str| {
        std::fs::read_to_string(super::fixtures().join("slurm/rest").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let path = request.url.path();
    let id = path.rsplit('/').next().unwrap_or_default();
    let body = match request.method.as_str() {
        "POST" => recorded("submit-slurmctld-down.response.json"),
        "DELETE" => recorded("delete-job-slurmctld-down.response.json")
            .replace("JobId=5", &format!("JobId={id}")),
        _ if path.ends_with("/jobs") => recorded("get-jobs-slurmctld-down.response.json"),
        _ => recorded("get-job-slurmctld-down.response.json")
            .replace("JobId=5", &format!("JobId={id}")),
    };
    ResponseTemplate::new(500).set_body_string(body)
}

/// A mock server answering as slurmrestd for `engine`.
pub async fn serve(engine: Engine) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Slurmrestd { engine })
        .mount(&server)
        .await;
    server
}
