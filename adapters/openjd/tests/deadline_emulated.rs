//! The deadline-cloud transport driving the real `deadline` CLI (and its botocore) against
//! `tools/openjd/deadline_emulator.py`, a loopback emulation of the Deadline Cloud and
//! CloudWatch Logs operations the CLI calls. botocore validates every request against
//! AWS's service model before sending it; the emulator parses each request back into the
//! operation's parameters, validates them again (including enums and id patterns) and
//! answers with responses checked against the model's output shapes.
//!
//! Gated: `tools/ci/openjd.sh` runs
//! `FARM_DEADLINE_BIN=VENV/bin/deadline FARM_DEADLINE_EMULATOR_PY=tools/openjd/deadline_emulator.py
//!  cargo test -p farm-openjd --test deadline_emulated -- --ignored`.
//! The emulator runs with the `python` beside `deadline` (the venv needs `deadline` and
//! `openjd-model`). Nothing here reaches AWS: every endpoint is 127.0.0.1 and the
//! credentials are dummies.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use farm_core::{ErrorKind, FarmPlugin, JobId, JobRequest, JobState, LocalRunner};
use farm_openjd::{OpenJdFarm, OpenJdSettings, Transport, parse};
use serde_json::{Value, json};

const FARM: &str = "farm-00000000000000000000000000000001";
const QUEUE: &str = "queue-00000000000000000000000000000001";

/// The emulator process, killed when the test ends.
struct Emulator {
    child: Child,
    port: u16,
    // Kept open: the emulator must never write to a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required(var: &str) -> PathBuf {
    let value = std::env::var(var).unwrap_or_else(|_| {
        panic!("set {var} (see tools/ci/openjd.sh): this test fails rather than skips")
    });
    let path = PathBuf::from(value);
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn start_emulator(python: &PathBuf, script: &PathBuf) -> Emulator {
    let mut child = Command::new(python)
        .arg(script)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let port = first
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the emulator printed {first:?}, not `PORT <n>`"));
    Emulator {
        child,
        port,
        _stdout: stdout,
    }
}

/// One HTTP/1.1 request to the emulator's control endpoints (loopback).
fn control(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {head}\n{body}"
    );
    serde_json::from_str(body).unwrap()
}

fn calls(port: u16) -> Vec<Value> {
    control(port, "GET", "/_control/calls", None)
        .as_array()
        .unwrap()
        .clone()
}

fn set_status(port: u16, id: &JobId, life: &str, run: &str, message: &str) {
    control(
        port,
        "POST",
        &format!("/_control/jobs/{id}/status"),
        Some(
            json!({"lifecycleStatus": life, "taskRunStatus": run, "lifecycleStatusMessage": message}),
        ),
    );
}

fn ops(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["operation"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the deadline CLI: run with FARM_DEADLINE_BIN, FARM_DEADLINE_EMULATOR_PY and --ignored"]
async fn real_deadline_cli_against_the_emulated_service() {
    let deadline = required("FARM_DEADLINE_BIN");
    let script = required("FARM_DEADLINE_EMULATOR_PY");
    let python = deadline.parent().unwrap().join("python");
    assert!(python.exists(), "no python beside {}", deadline.display());
    let emu = start_emulator(&python, &script);
    let port = emu.port;
    let dir = tempfile::Builder::new()
        .prefix("farm-deadline-emu-")
        .tempdir()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let mut runner = LocalRunner::new(Duration::from_secs(120));
    for (name, value) in [
        // Every AWS endpoint is the emulator: a call to any other service is recorded as
        // unexpected instead of leaving the machine.
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ENDPOINT_URL_DEADLINE", endpoint.clone()),
        // botocore's variable for CloudWatch Logs (serviceId "CloudWatch Logs").
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", endpoint.clone()),
        // The model's `management.` host prefix cannot go in front of an IP address.
        ("AWS_DISABLE_HOST_PREFIX_INJECTION", "true".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_SESSION_TOKEN", "testing".into()),
        ("AWS_DEFAULT_REGION", "us-west-2".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "AWS_CONFIG_FILE",
            dir.path().join("aws-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("aws-credentials").display().to_string(),
        ),
        (
            "DEADLINE_CONFIG_FILE_PATH",
            dir.path().join("deadline-config").display().to_string(),
        ),
        // The CLI posts telemetry to the deadline endpoint otherwise.
        ("DEADLINE_CLOUD_TELEMETRY_OPT_OUT", "true".into()),
        ("HOME", dir.path().join("home").display().to_string()),
    ] {
        runner = runner.with_env(name, value);
    }
    let settings = OpenJdSettings {
        transport: Transport::DeadlineCloud,
        deadline_bin: deadline.display().to_string(),
        farm_id: Some(FARM.into()),
        queue_id: Some(QUEUE.into()),
        region: Some("us-west-2".into()),
        data_root: Some(dir.path().join("data")),
        ..Default::default()
    };
    let farm = OpenJdFarm::with_runner("emulated", settings, Default::default(), Arc::new(runner))
        .unwrap();

    // Submit: the real CLI reads the bundle render() wrote and calls CreateJob. The
    // literal `{{` becomes a job parameter, so CreateJob carries parameters too.
    let request = JobRequest::from_yaml_str(
        "name: shot010\ncommands: [[render, '{chunk_first}-{chunk_last}', 'lit{{{{eral'], [/bin/true]]\nframes: 1-10\nchunk_size: 3\nrepeat: per_chunk\npriority: 500\ntags: [emulated]\n",
    )
    .unwrap();
    let rendered = farm.render(&request).await.unwrap();
    let template = &rendered
        .files
        .iter()
        .find(|f| f.name == "template.yaml")
        .unwrap()
        .contents;
    let id = farm.submit(&request).await.unwrap();
    assert!(parse::is_deadline_job_id(id.as_str()), "{id}");
    let stored = control(port, "GET", &format!("/_control/jobs/{id}"), None);
    let create = &stored["createJobRequest"];
    assert_eq!(create["template"].as_str().unwrap(), template.as_str());
    assert_eq!(create["templateType"], "YAML");
    assert_eq!(create["priority"], 75, "(500 + 1000) / 20");
    assert_eq!(create["farmId"], FARM);
    assert_eq!(create["queueId"], QUEUE);
    // The template defines the literal text as a parameter with a default; the CLI sends
    // only the values of parameter_values.yaml that are not `deadline:*` (none here), and
    // the service (openjd-model, in the emulator) applies the defaults.
    let doc: serde_yaml::Value = serde_yaml::from_str(template).unwrap();
    let defined = doc["parameterDefinitions"].as_sequence().unwrap();
    assert!(
        defined
            .iter()
            .any(|p| p["default"].as_str() == Some("lit{{eral")),
        "{template}"
    );
    assert!(create.get("parameters").is_none(), "{create}");
    // openjd-model (in the emulator, as in the service) made 2 steps of 4 chunk tasks.
    let steps = stored["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert!(
        steps
            .iter()
            .all(|s| s["tasks"].as_array().unwrap().len() == 4)
    );
    let after_submit = calls(port);
    assert_eq!(
        ops(&after_submit),
        ["GetQueue", "ListQueueEnvironments", "CreateJob", "GetJob"],
        "bundle submit: no S3, no STS (the queue has no job attachments)"
    );
    // Idempotent: the same render context is the same job, no second CreateJob.
    assert_eq!(farm.submit(&request).await.unwrap(), id);
    assert_eq!(calls(port).len(), after_submit.len());

    // Every word of both enums of the model, through the real CLI's `job get` output.
    let lifecycle = [
        "CREATE_IN_PROGRESS",
        "CREATE_FAILED",
        "UPLOAD_IN_PROGRESS",
        "UPLOAD_FAILED",
        "UPDATE_IN_PROGRESS",
        "UPDATE_FAILED",
        "UPDATE_SUCCEEDED",
        "ARCHIVED",
    ];
    let task_run: Vec<&str> = parse::TASK_RUN_STATUSES.iter().map(|t| t.0).collect();
    let mut pairs: Vec<(&str, &str)> = task_run.iter().map(|r| ("CREATE_COMPLETE", *r)).collect();
    for (i, life) in lifecycle.iter().enumerate() {
        pairs.push((life, task_run[(i * 5) % task_run.len()]));
    }
    assert_eq!(
        parse::LIFECYCLE_STATUSES.len(),
        lifecycle.len() + 1,
        "a lifecycle word is not exercised"
    );
    for (life, run) in pairs {
        set_status(port, &id, life, run, &format!("message for {life}"));
        let job = farm.job(&id).await.unwrap();
        let (want, _) = parse::deadline_state(life, run).unwrap();
        assert_eq!(job.state, want, "{life}/{run}");
        assert_eq!(
            job.native_state.as_deref(),
            Some(format!("{life}/{run}").as_str())
        );
        assert_eq!(job.render_context, Some(request.render_context));
        assert_eq!(job.tags, ["emulated"]);
        assert!(job.submit_time.is_some());
        if want == JobState::Failed {
            let reason = job.reason.clone().unwrap_or_default();
            assert!(
                reason.contains(&format!("message for {life}")),
                "{life}/{run}: {reason}"
            );
        }
        if want.is_terminal()
            && ["SUCCEEDED", "FAILED", "CANCELED", "NOT_COMPATIBLE"].contains(&run)
        {
            assert!(job.end_time.is_some(), "{life}/{run}");
        }
    }

    // Logs: none before a session exists, then the session's lines in order.
    set_status(port, &id, "CREATE_COMPLETE", "READY", "");
    let empty = farm.read_log(&id, 0).await.unwrap();
    assert_eq!((empty.data.as_str(), empty.complete), ("", false));
    let lines = [
        "frame 1: rendering",
        "  spaced \u{e9}t\u{e9} \"quoted\" $HOME",
        "done",
    ];
    set_status(port, &id, "CREATE_COMPLETE", "RUNNING", "");
    control(
        port,
        "POST",
        &format!("/_control/jobs/{id}/log"),
        Some(json!({"lines": lines})),
    );
    let log = farm.read_log(&id, 0).await.unwrap();
    assert_eq!(log.data, format!("{}\n", lines.join("\n")));
    assert!(!log.complete);
    let tail = farm.read_log(&id, log.next_offset).await.unwrap();
    assert_eq!(tail.data, "");

    // Stop: UpdateJob with targetTaskRunStatus CANCELED; the job then reads Cancelled.
    let before = calls(port).len();
    farm.stop(&id).await.unwrap();
    let stop_calls = calls(port)[before..].to_vec();
    assert_eq!(ops(&stop_calls), ["GetJob", "GetJob", "UpdateJob"]);
    assert_eq!(stop_calls[2]["params"]["targetTaskRunStatus"], "CANCELED");
    let job = farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    let log = farm.read_log(&id, 0).await.unwrap();
    assert!(log.complete, "a cancelled job's log is complete");

    // Start: requeue every task (ListSteps, ListTasks, UpdateTask PENDING per task).
    let before = calls(port).len();
    assert_eq!(farm.start(&id).await.unwrap(), id);
    let start_calls = calls(port)[before..].to_vec();
    let names = ops(&start_calls);
    assert_eq!(names.iter().filter(|o| *o == "UpdateTask").count(), 8);
    assert_eq!(names.iter().filter(|o| *o == "ListTasks").count(), 2);
    assert!(names.contains(&"ListSteps".to_owned()));
    assert!(
        start_calls
            .iter()
            .filter(|c| c["operation"] == "UpdateTask")
            .all(|c| c["params"]["targetRunStatus"] == "PENDING")
    );
    let job = farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Waiting);
    assert_eq!(job.attempt, 2);
    // Stop on a finished job asks nothing of the service but GetJob.
    set_status(port, &id, "UPDATE_SUCCEEDED", "SUCCEEDED", "");
    let before = calls(port).len();
    farm.stop(&id).await.unwrap();
    assert_eq!(ops(&calls(port)[before..]), ["GetJob"]);

    // Unknown ids: a well-formed one is the service's ResourceNotFoundException; a malformed
    // one never reaches the CLI.
    let unknown = JobId::new("job-0123456789abcdef0123456789abcdef");
    assert_eq!(
        farm.job(&unknown).await.unwrap_err().kind(),
        ErrorKind::JobNotFound
    );
    let before = calls(port).len();
    for bad in [
        "job-unknown",
        "--help",
        "JOB-0123456789ABCDEF0123456789ABCDEF",
    ] {
        assert_eq!(
            farm.job(&JobId::new(bad)).await.unwrap_err().kind(),
            ErrorKind::JobNotFound
        );
    }
    assert_eq!(calls(port).len(), before);

    let listed = farm.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);

    // Every request passed the model's validation, and only these operations were called.
    let all = calls(port);
    for c in &all {
        let status = c["status"].as_u64().unwrap();
        let not_found = c["operation"] == "GetJob" && c["error"] == "ResourceNotFoundException";
        assert!(
            status < 400 || not_found,
            "a request failed in the emulator: {c}"
        );
    }
    let mut used: Vec<String> = ops(&all);
    used.sort();
    used.dedup();
    assert_eq!(
        used,
        [
            "CreateJob",
            "GetJob",
            "GetLogEvents",
            "GetQueue",
            "GetSession",
            "ListJobs",
            "ListQueueEnvironments",
            "ListSessions",
            "ListSteps",
            "ListTasks",
            "UpdateJob",
            "UpdateTask"
        ]
    );
    drop(emu);
}
