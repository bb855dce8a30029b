//! The deadline-cloud transport against a replayed `deadline` CLI: the argv it sends and
//! the output shapes it reads (`fixtures/openjd/deadline/`). Nothing here reached AWS.

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
            ("bundle", "submit") => ok("Submitted job bundle:\n   /x\nJob ID: job-0123456789abcdef0123456789abcdef\n".into()),
            ("job", "get") if argv.iter().any(|a| a == "job-unknown") => Ok(CommandOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: "Failed to get Job from Deadline:\nAn error occurred (ResourceNotFoundException) when calling the GetJob operation".into(),
            }),
            ("job", "get") => {
                let (life, run) = self.status.lock().unwrap().clone();
                let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/openjd/deadline/job-get-running.yaml")).unwrap();
                ok(text.replace("CREATE_COMPLETE", &life).replace("taskRunStatus: RUNNING", &format!("taskRunStatus: {run}")))
            }
            ("job", "cancel" | "requeue-tasks" | "logs") => ok("done\n".into()),
            other => panic!("unexpected command {other:?}"),
        }
    }
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
    assert_eq!(id.as_str(), "job-0123456789abcdef0123456789abcdef");
    let submit = replay.calls.lock().unwrap()[0].clone();
    assert_eq!(&submit[..4], ["deadline", "bundle", "submit", "--yes"]);
    assert!(
        submit.windows(2).any(|w| w == ["--farm-id", "farm-0123"])
            && submit.windows(2).any(|w| w == ["--queue-id", "queue-0123"])
    );
    let bundle_dir = std::path::PathBuf::from(&submit[4]);
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
    assert_eq!(
        farm.job(&JobId::new("job-unknown"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::JobNotFound
    );
    assert_eq!(
        farm.render_log_filename(&id).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let listed = farm.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
}
