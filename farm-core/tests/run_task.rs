//! `farm_core::run_task`: one chunk of a request, exactly as the plan defines it, with the
//! exit status and final line foreign plug-ins rely on.

use std::path::Path;

use farm_core::exec::TaskOutcome;
use farm_core::run_task::{RunTaskOptions, parse_request, run_task};
use farm_core::{ErrorKind, JobRequest};
use tokio_util::sync::CancellationToken;

fn request(yaml: &str) -> JobRequest {
    parse_request(yaml).unwrap()
}

fn options(log: &Path) -> RunTaskOptions {
    RunTaskOptions {
        log: Some(log.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_chunk_runs_its_frames_with_placeholders_and_farm_variables() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request(
        "name: x\nframes: 1-7\nchunk_size: 3\nenvironment: {V: \"a 'b'\\nc\"}\n\
         commands: [[sh, -c, 'printf \"%s|%s|%s|%s\\n\" \"$1\" \"$FARM_FRAME\" \"$FARM_CHUNK_INDEX\" \"$V\"', sh, 'f{frame}']]\n",
    );
    let report = run_task(&r, 1, &options(&log), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, TaskOutcome::Succeeded);
    assert_eq!(report.exit_code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "f4|4|1|a 'b'\nc\nf5|5|1|a 'b'\nc\nf6|6|1|a 'b'\nc\nfarm: task 1 succeeded\n"
    );
}

#[tokio::test]
async fn the_first_failing_step_ends_the_task_with_its_status_and_a_last_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request(
        "name: x\nframes: 10-11\nchunk_size: 2\n\
         commands: [[sh, -c, 'echo render $0', '{frame}'], [sh, -c, 'exit 3'], [echo, never]]\n",
    );
    let report = run_task(&r, 0, &options(&log), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.exit_code, 3);
    assert_eq!(
        report.last_line,
        "farm: task 0 failed: step 1 (`sh`, frame 10): exit code 3"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("render 10\n"), "{text}");
    assert!(
        !text.contains("never") && !text.contains("render 11"),
        "{text}"
    );
    assert!(text.ends_with(&format!("{}\n", report.last_line)), "{text}");
}

#[tokio::test]
async fn a_missing_program_exits_127_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request("name: x\ncommands: [[/nonexistent/render, a]]\n");
    let report = run_task(&r, 0, &options(&log), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.exit_code, 127);
    assert!(
        report
            .last_line
            .starts_with("farm: task 0 failed: step 0 (`/nonexistent/render`): cannot run"),
        "{}",
        report.last_line
    );
    assert!(
        report.last_line.ends_with("exit code 127"),
        "{}",
        report.last_line
    );
}

#[tokio::test]
async fn a_task_outside_the_request_or_with_other_frames_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request("name: x\nframes: 1-10\nchunk_size: 4\ncommands: [[touch, '{frame}']]\n");
    let err = run_task(&r, 3, &options(&log), CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("it has 3 task(s)"), "{err}");
    let mut opts = options(&log);
    opts.expected_frames = Some((5, 9));
    let err = run_task(&r, 1, &opts, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("frames 5-8"), "{err}");
    opts.expected_frames = Some((5, 8));
    opts.exec.base_env = Vec::new();
    let mut r2 = r.clone();
    r2.working_directory = Some(dir.path().display().to_string());
    let report = run_task(&r2, 1, &opts, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.exit_code, 0);
    for frame in 5..=8 {
        assert!(dir.path().join(frame.to_string()).exists(), "frame {frame}");
    }
    assert!(!dir.path().join("4").exists() && !dir.path().join("9").exists());
}

#[tokio::test]
async fn a_request_without_frames_is_task_zero_whatever_frame_the_scheduler_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request("name: x\ncommands: [[sh, -c, 'echo \"$FARM_CHUNK_INDEX\"']]\n");
    let mut opts = options(&log);
    opts.expected_frames = Some((0, 0));
    let report = run_task(&r, 0, &opts, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "0\nfarm: task 0 succeeded\n"
    );
}

#[tokio::test]
async fn stopping_the_task_kills_it_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = request("name: x\ncommands: [[sleep, '30']]\n");
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let started = std::time::Instant::now();
    let report = run_task(&r, 0, &options(&log), cancel).await.unwrap();
    assert_eq!(report.outcome, TaskOutcome::Cancelled);
    assert_eq!(report.exit_code, farm_core::run_task::EXIT_CANCELLED);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
