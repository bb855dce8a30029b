//! The bridge's side of the protocol: garbage, silence, death and restart, capabilities.

use std::time::Duration;

use farm_core::{ErrorKind, FarmPlugin, JobId};
use farm_external::{ExternalFarm, ExternalSettings};

/// An adapter in a few lines of shell-driven python whose behaviour per method is given.
fn farm(program: &str, timeout: Duration) -> farm_core::Result<ExternalFarm> {
    ExternalFarm::from_settings(
        "t",
        ExternalSettings {
            command: vec!["python3".into(), "-c".into(), program.into()],
            env: Default::default(),
            working_directory: None,
            timeout,
            options: serde_json::Value::Null,
        },
        Default::default(),
    )
}

const PRELUDE: &str = r#"
import json, sys, os, time
caps = {k: False for k in ["stage_files","list_jobs","render_log","read_log","stop","start","dependencies","idempotent_submit"]}
caps["stop"] = True
def reply(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    c = json.loads(line)
    if c["method"] == "hello":
        reply({"id": c["id"], "result": {"protocol": 1, "adapter": "toy", "capabilities": caps}}); continue
"#;

fn program(body: &str) -> String {
    format!(
        "{PRELUDE}{}",
        body.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_their_kinds_and_capabilities_gate_calls() {
    let f = farm(
        &program(
            r#"reply({"id": c["id"], "error": {"kind": "job_not_found", "message": "nope"}})"#,
        ),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(f.adapter(), "toy");
    assert!(f.capabilities().stop && !f.capabilities().start);
    let err = f.job(&JobId::new("7")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JobNotFound);
    assert_eq!(err.to_string(), "job 7 not found");
    // start is not a capability: the bridge answers without asking the adapter.
    assert_eq!(
        f.start(&JobId::new("7")).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_scheduler_error_and_silence_times_out() {
    let f = farm(
        &program(r#"print("not json at all", flush=True)"#),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        f.job(&JobId::new("1")).await.unwrap_err().kind(),
        ErrorKind::Scheduler
    );
    // Long enough for Python to start and answer hello on a loaded machine; the job call
    // then waits the whole timeout for an answer that never comes.
    let silent = farm(&program("pass"), Duration::from_secs(2)).unwrap();
    let err = silent.job(&JobId::new("1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("did not answer job"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_adapter_is_restarted_on_the_next_call() {
    // Dies on its first real call, answers normally after a restart (a marker file remembers).
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("died");
    let body = format!(
        r#"if not os.path.exists({m:?}):
    open({m:?}, "w").close(); os._exit(3)
reply({{"id": c["id"], "result": {{"id": c["params"]["id"], "name": "x", "state": "Running"}}}})"#,
        m = marker.display().to_string()
    );
    let f = farm(&program(&body), Duration::from_secs(5)).unwrap();
    let err = f.job(&JobId::new("1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let job = f.job(&JobId::new("1")).await.unwrap();
    assert_eq!(job.state, farm_core::JobState::Running);
}

#[test]
fn a_program_that_cannot_start_or_speaks_another_protocol_is_a_config_error() {
    let err = ExternalFarm::from_settings(
        "t",
        ExternalSettings {
            command: vec!["/nonexistent/adapter".into()],
            env: Default::default(),
            working_directory: None,
            timeout: Duration::from_secs(2),
            options: serde_json::Value::Null,
        },
        Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let v2 = r#"
import json, sys
for line in sys.stdin:
    c = json.loads(line)
    print(json.dumps({"id": c["id"], "result": {"protocol": 2, "adapter": "x", "capabilities": {}}}), flush=True)
"#;
    let err = farm(v2, Duration::from_secs(5)).unwrap_err();
    assert!(err.to_string().contains("protocol 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_render_and_an_unsupported_reply_are_clear_errors() {
    let f = farm(
        &program(
            r#"if c["method"] == "render":
    reply({"id": c["id"], "result": {"files": []}})
else:
    reply({"id": c["id"], "error": {"kind": "unsupported", "message": "no"}})"#,
        ),
        Duration::from_secs(5),
    )
    .unwrap();
    let request =
        farm_core::JobRequest::new("t", vec![farm_core::Command::Argv(vec!["true".into()])]);
    let err = f.render(&request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Scheduler);
    assert!(err.to_string().contains("rendered no file"), "{err}");
    let err = f.job(&JobId::new("3")).await.unwrap_err();
    assert_eq!(err.to_string(), "job is not supported by the toy adapter");
}

/// `check`: gated by the capability; a result is the report, an `invalid_request` error the
/// refusal in the adapter's words; the params are those of `submit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_a_capability_and_carries_request_and_tasks() {
    let req = farm_core::JobRequest::new(
        "c",
        vec![farm_core::Command::Argv(vec!["/bin/true".into()])],
    );
    let off = farm(
        &program(r#"reply({"id": c["id"], "result": {"message": "x"}})"#),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        off.check(&req).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let on = farm(
        &program(
            r#"p = c["params"]
if c["method"] != "check" or "tasks" not in p or p["request"]["name"] != "c":
    reply({"id": c["id"], "error": {"kind": "scheduler", "message": "bad call %s" % c}})
elif p["request"].get("resources", {}).get("cpus", 1) > 4:
    reply({"id": c["id"], "error": {"kind": "invalid_request", "field": "resources.cpus", "message": "only 4 CPUs here"}})
else:
    reply({"id": c["id"], "result": {"message": "fits", "estimated_start": 5, "placement": "box"}})"#,
        )
        .replace("caps[\"stop\"] = True", "caps[\"stop\"] = True; caps[\"check\"] = True"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(on.capabilities().check && !on.capabilities().check_resources);
    let report = on.check(&req).await.unwrap();
    assert_eq!(report.message, "fits");
    assert_eq!(report.estimated_start, Some(5));
    assert_eq!(report.placement.as_deref(), Some("box"));
    let mut big = req.clone();
    big.resources.cpus = Some(64);
    let err = on.check(&big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(
        err.to_string(),
        "invalid request: resources.cpus: only 4 CPUs here"
    );
}
