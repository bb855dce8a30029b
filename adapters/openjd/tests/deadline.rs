//! The deadline-cloud transport against a replayed `deadline` CLI: the argv it sends and
//! the output shapes it reads (`fixtures/openjd/deadline/`, recorded from the real CLI
//! against `tools/openjd/deadline_emulator.py`; see `deadline_emulated.rs` for the live
//! run). Nothing here reached AWS.

use std::sync::{Arc, Mutex};

use farm_core::{
    CommandOutput, CommandRunner, ErrorKind, FarmPlugin, JobId, JobRequest, JobState, async_trait,
};
use farm_openjd::{OpenJdFarm, OpenJdSettings, Transport};

#[derive(Debug, Default)]
struct Replay {
    calls: Mutex<Vec<Vec<String>>>,
    status: Mutex<(String, String)>,
}

#[async_trait]
impl CommandRunner for Replay {
    async fn run(
        &self,
        argv: &[String],
        _stdin: Option<&[u8]>,
    ) -> farm_core::Result<CommandOutput> {
        self.calls.lock().unwrap().push(argv.to_vec());
        let ok = |stdout: String| {
            Ok(CommandOutput {
                status: Some(0),
                stdout,
                stderr: String::new(),
            })
        };
        match (argv[1].as_str(), argv[2].as_str()) {
            ("bundle", "submit") => ok(fixture("bundle-submit.txt")),
            ("job", "get") if argv.iter().any(|a| a == UNKNOWN) => Ok(CommandOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: "Failed to get Job from Deadline:\nAn error occurred (ResourceNotFoundException) when calling the GetJob operation".into(),
            }),
            ("job", "get") => {
                let (life, run) = self.status.lock().unwrap().clone();
                let text = fixture("job-get-running.yaml");
                ok(text.replace("CREATE_COMPLETE", &life).replace("taskRunStatus: RUNNING", &format!("taskRunStatus: {run}")))
            }
            ("job", "logs") if argv.iter().any(|a| a == NO_SESSION) => Ok(CommandOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: format!("No sessions found for job {NO_SESSION}\n"),
            }),
            ("job", "logs") => ok(fixture("job-logs.json")),
            ("job", "cancel" | "requeue-tasks") => ok("done\n".into()),
            other => panic!("unexpected command {other:?}"),
        }
    }
}

const SUBMITTED: &str = "job-76e3f647ce8d46b9a22731bc02a8faa5";
const UNKNOWN: &str = "job-00000000000000000000000000000000";
const NO_SESSION: &str = "job-11111111111111111111111111111111";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/openjd/deadline")
            .join(name),
    )
    .unwrap()
}

fn farm(replay: Arc<Replay>) -> (OpenJdFarm, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = OpenJdSettings {
        transport: Transport::DeadlineCloud,
        farm_id: Some("farm-0123".into()),
        queue_id: Some("queue-0123".into()),
        data_root: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    (
        OpenJdFarm::with_runner("cloud", settings, Default::default(), replay).unwrap(),
        dir,
    )
}

fn set(replay: &Replay, life: &str, run: &str) {
    *replay.status.lock().unwrap() = (life.into(), run.into());
}

#[tokio::test]
async fn submit_poll_cancel_requeue_and_every_status_word() {
    let replay = Arc::new(Replay::default());
    let (farm, _dir) = farm(replay.clone());
    let request = JobRequest::from_yaml_str(
        "name: shot\ncommands: [[render, '{frame}']]\nframes: 1-10\npriority: 50\n",
    )
    .unwrap();
    let id = farm.submit(&request).await.unwrap();
    assert_eq!(id.as_str(), SUBMITTED);
    let submit = replay.calls.lock().unwrap()[0].clone();
    // priority 50 -> Deadline's (50 + 1000) / 20 = 52, passed explicitly: the CLI's
    // --priority default would override the bundle's deadline:priority.
    assert_eq!(
        &submit[..6],
        ["deadline", "bundle", "submit", "--yes", "--priority", "52"]
    );
    assert!(
        submit.windows(2).any(|w| w == ["--farm-id", "farm-0123"])
            && submit.windows(2).any(|w| w == ["--queue-id", "queue-0123"])
    );
    let bundle_dir = std::path::PathBuf::from(&submit[6]);
    assert!(
        std::fs::read_to_string(bundle_dir.join("parameter_values.yaml"))
            .unwrap()
            .contains("deadline:priority")
    );
    // Idempotent: the same render context is the same job.
    assert_eq!(farm.submit(&request).await.unwrap(), id);
    assert_eq!(replay.calls.lock().unwrap().len(), 1);

    for (life, run, want) in [
        ("CREATE_IN_PROGRESS", "PENDING", JobState::Waiting),
        ("UPLOAD_IN_PROGRESS", "READY", JobState::Waiting),
        ("CREATE_FAILED", "READY", JobState::Failed),
        ("UPLOAD_FAILED", "READY", JobState::Failed),
        ("CREATE_COMPLETE", "PENDING", JobState::Waiting),
        ("CREATE_COMPLETE", "READY", JobState::Waiting),
        ("CREATE_COMPLETE", "ASSIGNED", JobState::Waiting),
        ("CREATE_COMPLETE", "STARTING", JobState::Waiting),
        ("CREATE_COMPLETE", "SCHEDULED", JobState::Waiting),
        ("CREATE_COMPLETE", "RUNNING", JobState::Running),
        ("UPDATE_IN_PROGRESS", "INTERRUPTING", JobState::Running),
        ("UPDATE_SUCCEEDED", "SUSPENDED", JobState::Waiting),
        ("UPDATE_FAILED", "CANCELED", JobState::Cancelled),
        ("CREATE_COMPLETE", "FAILED", JobState::Failed),
        ("ARCHIVED", "SUCCEEDED", JobState::Completed),
        ("CREATE_COMPLETE", "NOT_COMPATIBLE", JobState::Failed),
    ] {
        set(&replay, life, run);
        let job = farm.job(&id).await.unwrap();
        assert_eq!(job.state, want, "{life}/{run}");
        assert_eq!(job.render_context, Some(request.render_context));
    }
    set(&replay, "CREATE_COMPLETE", "MYSTERY");
    assert_eq!(
        farm.job(&id).await.unwrap_err().kind(),
        ErrorKind::Scheduler
    );

    set(&replay, "CREATE_COMPLETE", "RUNNING");
    farm.stop(&id).await.unwrap();
    assert!(
        replay
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c[1..3] == ["job", "cancel"] && c.contains(&"--yes".to_owned()))
    );
    set(&replay, "CREATE_COMPLETE", "FAILED");
    assert_eq!(farm.start(&id).await.unwrap(), id);
    assert!(
        replay
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c[1..3] == ["job", "requeue-tasks"])
    );
    assert_eq!(farm.job(&id).await.unwrap().attempt, 2);
    for unknown in [UNKNOWN, "job-unknown", "--yes"] {
        assert_eq!(
            farm.job(&JobId::new(unknown)).await.unwrap_err().kind(),
            ErrorKind::JobNotFound,
            "{unknown}"
        );
    }
    // A malformed id never reaches the CLI (the service would answer ValidationException).
    assert!(
        !replay
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains(&"job-unknown".to_owned())
                || c.contains(&"--yes".to_owned()) && c[2] == "get")
    );
    set(&replay, "CREATE_COMPLETE", "RUNNING");
    let log = farm.read_log(&id, 0).await.unwrap();
    assert_eq!(
        log.data,
        "openjd: Running step Command 1\nProcess pid 4242 exited with code: 0 (unsigned)\n"
    );
    assert!(!log.complete);
    let logs_call = replay.calls.lock().unwrap().last().unwrap().clone();
    assert!(logs_call.windows(2).any(|w| w == ["--output", "json"]));
    // No session yet (the job waits for a worker): an empty log, not an error.
    let empty = farm.read_log(&JobId::new(NO_SESSION), 0).await.unwrap();
    assert_eq!((empty.data.as_str(), empty.next_offset), ("", 0));
    assert_eq!(
        farm.render_log_filename(&id).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let listed = farm.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
}
