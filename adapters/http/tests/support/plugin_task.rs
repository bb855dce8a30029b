//! How a farm's own plug-in runs one of our tasks (Deadline's FarmBridge): the request it
//! was handed goes to a file and `farm run-task FILE --task N --frames FIRST-LAST` runs the
//! chunk; the task fails with the last `farm:` line, as the plug-in's `FailRender` does.
//!
//! With `FARM_BIN` set (CI sets it to the binary built from this tree) the real `farm`
//! process runs, exactly as on a Deadline Worker; without it, the same code runs in
//! process through `farm_core::run_task`, the library the command is a thin wrapper of.

use std::path::Path;
use std::time::Duration;

use farm_core::exec::{ExecOptions, TaskOutcome};
use farm_core::run_task::{RunTaskOptions, run_task};
use farm_core::{JobRequest, Task};
use tokio_util::sync::CancellationToken;

/// Runs `task` the way FarmBridge does, appending its output to `log`.
pub async fn run(
    request: &JobRequest,
    task: &Task,
    log: &Path,
    cancel: CancellationToken,
) -> std::io::Result<TaskOutcome> {
    let frames = task
        .frames
        .as_ref()
        .map_or((0, 0), |f| (f.first(), f.last()));
    let outcome = match std::env::var_os("FARM_BIN") {
        Some(bin) => run_binary(Path::new(&bin), request, task.index, frames, log, cancel).await?,
        None => {
            let options = RunTaskOptions {
                log: Some(log.to_owned()),
                expected_frames: Some(frames),
                exec: ExecOptions {
                    grace: Duration::from_secs(2),
                    ..Default::default()
                },
            };
            let report = run_task(request, task.index as usize, &options, cancel)
                .await
                .map_err(std::io::Error::other)?;
            failed_with_last_line(report.outcome, &report.last_line)
        }
    };
    Ok(outcome)
}

/// The plug-in's view: a failure is reported with the last `farm:` line.
fn failed_with_last_line(outcome: TaskOutcome, last_line: &str) -> TaskOutcome {
    match outcome {
        TaskOutcome::Failed { exit_code, .. } => TaskOutcome::Failed {
            reason: last_line.to_owned(),
            exit_code,
        },
        other => other,
    }
}

async fn run_binary(
    bin: &Path,
    request: &JobRequest,
    index: u32,
    (first, last): (u32, u32),
    log: &Path,
    cancel: CancellationToken,
) -> std::io::Result<TaskOutcome> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("request.json");
    std::fs::write(&file, request.to_json())?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = tokio::process::Command::new(bin)
        .arg("run-task")
        .arg(&file)
        .args([
            "--task",
            &index.to_string(),
            "--frames",
            &format!("{first}-{last}"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()?;
    let status = tokio::select! {
        status = child.wait() => status?,
        () = cancel.cancelled() => {
            // Deadline stops a task by signalling the plug-in's process.
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            return Ok(TaskOutcome::Cancelled);
        }
    };
    if status.success() {
        return Ok(TaskOutcome::Succeeded);
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // Tasks of one job share the log: find this task's final line.
    let prefix = format!("farm: task {index} ");
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or("farm run-task failed without a final line")
        .to_owned();
    Ok(TaskOutcome::Failed {
        reason: last,
        exit_code: status.code(),
    })
}
