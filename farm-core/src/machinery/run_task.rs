//! `farm run-task`: one task (one chunk) of a request, run on the machine it is called on.
//!
//! This is the single execution path for every farm that runs our tasks through its own
//! plug-in (Deadline's `FarmBridge`, and any scheduler that starts one process per task).
//! It adds nothing to the reference meaning: the task is planned by [`plan`](crate::plan)
//! and executed by [`exec`](crate::exec), the code the local queue's agents run — argv
//! without a shell, placeholders substituted, `FARM_*` variables set, the first failing
//! command stops the task. What it adds is the contract a foreign plug-in needs:
//!
//! - the process exits with the failing command's own status (`1` when the command has
//!   none: killed by a signal, a time limit, a working directory that cannot be entered);
//! - the last line of output is always one `farm:` line naming the task, the failing step
//!   and `exit code N`, so a plug-in can fail its task with exactly that message;
//! - a caller may name the chunk's frames (`expected_frames`): a scheduler that chunked the
//!   frames differently from the request is refused before anything runs, instead of
//!   rendering the wrong frames.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::error::{FarmError, Result};
use crate::exec::{ExecOptions, TaskOutcome};
use crate::request::JobRequest;

/// The exit status of a task stopped by its caller (128 + SIGTERM, as shells report it).
pub const EXIT_CANCELLED: i32 = 143;

/// Settings for [`run_task`].
#[derive(Debug, Clone, Default)]
pub struct RunTaskOptions {
    /// Where the steps' output goes; `None`: this process's standard output.
    pub log: Option<PathBuf>,
    /// The chunk's first and last frame as the calling scheduler sees them; checked
    /// against the plan before anything runs.
    pub expected_frames: Option<(u32, u32)>,
    /// How the steps are executed.
    pub exec: ExecOptions,
}

/// How one task ended, with what `farm run-task` prints and returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    /// The executor's outcome.
    pub outcome: TaskOutcome,
    /// The process exit status: 0, the failing command's status, 1, or [`EXIT_CANCELLED`].
    pub exit_code: i32,
    /// The final line (without a newline), e.g.
    /// ``farm: task 2 failed: step 1 (`denoise`, frame 7): exit code 3``.
    pub last_line: String,
}

/// Parses a request given as text (see [`JobRequest::from_text`]) and validates it.
pub fn parse_request(text: &str) -> Result<JobRequest> {
    let request = JobRequest::from_text(text)?;
    request.validate()?;
    Ok(request)
}

/// Runs task `task_index` (from 0) of a valid `request`, writing the steps' output and the
/// final line to `options.log`. An index outside the request, or frames that differ from
/// `options.expected_frames`, are `InvalidRequest` errors and nothing runs.
pub async fn run_task(
    request: &JobRequest,
    task_index: usize,
    options: &RunTaskOptions,
    cancel: CancellationToken,
) -> Result<TaskReport> {
    request.validate()?;
    let tasks = request.tasks();
    let task = tasks.get(task_index).ok_or_else(|| {
        FarmError::invalid(
            "task",
            format!(
                "task {task_index} is not in this request: it has {} task(s), numbered from 0",
                tasks.len()
            ),
        )
    })?;
    if let Some((first, last)) = options.expected_frames {
        let planned = task.frames.as_ref().map(|f| (f.first(), f.last()));
        // A request without frames is one task; schedulers still call it frame 0 (or 1).
        if planned.is_some_and(|p| p != (first, last)) {
            let (pf, pl) = planned.unwrap_or_default();
            return Err(FarmError::invalid(
                "task",
                format!(
                    "the scheduler's task {task_index} covers frames {first}-{last}, but the \
                     request's chunk {task_index} is frames {pf}-{pl}: the job was chunked \
                     differently from the request (check its chunk size)"
                ),
            ));
        }
    }
    let outcome = match &options.log {
        Some(log) => crate::exec::run_task(request, task, log, cancel, &options.exec).await,
        None => to_stdout(request, task, cancel, &options.exec).await,
    }
    .map_err(|e| FarmError::io(format!("cannot run task {task_index}"), e))?;
    let report = report(request, task_index, outcome);
    match &options.log {
        Some(log) => append_line(log, &report.last_line)?,
        None => println!("{}", report.last_line),
    }
    Ok(report)
}

/// Runs the task with its output copied to this process's standard output as it is
/// written. The steps write to a private spool file rather than to our stdout itself: a
/// reopened `/dev/stdout` has its own file offset, and would overwrite (or be overwritten
/// by) a caller that redirected our output to a file.
async fn to_stdout(
    request: &JobRequest,
    task: &crate::plan::Task,
    cancel: CancellationToken,
    options: &ExecOptions,
) -> std::io::Result<TaskOutcome> {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let spool = std::env::temp_dir().join(format!("farm-run-task-{}.log", uuid::Uuid::new_v4()));
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&spool)?;
    let copy = |reader: &mut std::fs::File| -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        std::io::copy(reader, &mut stdout)?;
        stdout.flush()
    };
    reader.seek(SeekFrom::Start(0))?;
    let run = crate::exec::run_task(request, task, &spool, cancel, options);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            _ = tick.tick() => copy(&mut reader)?,
        }
    };
    let drained = copy(&mut reader);
    let _ = std::fs::remove_file(&spool);
    drained?;
    outcome
}

/// A token cancelled when this process receives SIGTERM, SIGINT or SIGHUP, so a scheduler
/// that stops `farm run-task` stops the task's processes too (they run in their own process
/// groups and would otherwise outlive it). Call inside a Tokio runtime.
pub fn cancel_on_termination() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        let token = token.clone();
        match signal(kind) {
            Ok(mut stream) => {
                tokio::spawn(async move {
                    if stream.recv().await.is_some() {
                        token.cancel();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch for a termination signal"),
        }
    }
    token
}

/// The exit status and final line for an outcome.
pub fn report(request: &JobRequest, task_index: usize, outcome: TaskOutcome) -> TaskReport {
    let (exit_code, last_line) = match &outcome {
        TaskOutcome::Succeeded => (0, format!("farm: task {task_index} succeeded")),
        TaskOutcome::Cancelled => (
            EXIT_CANCELLED,
            format!("farm: task {task_index} was stopped"),
        ),
        TaskOutcome::Failed { reason, exit_code } => {
            let code = exit_code.filter(|c| (1..=255).contains(c)).unwrap_or(1);
            let step = describe_step(request, reason);
            let status = match exit_code {
                Some(c) if !reason.ends_with(&format!("exit code {c}")) => {
                    format!("{step}: exit code {c}")
                }
                Some(_) => step,
                None => format!("{step} (exit code {code})"),
            };
            (code, format!("farm: task {task_index} failed: {status}"))
        }
    };
    TaskReport {
        outcome,
        exit_code,
        last_line,
    }
}

/// The executor's reason with the failing step named by its program: `command 1 (frame 7):
/// exit code 3` becomes ``step 1 (`denoise`, frame 7): exit code 3``. Reasons that name no
/// command (a time limit, a working directory) are kept as they are.
fn describe_step(request: &JobRequest, reason: &str) -> String {
    let Some(rest) = reason.strip_prefix("command ") else {
        return reason.to_owned();
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(index) = digits.parse::<usize>() else {
        return reason.to_owned();
    };
    let Some(program) = request.commands.get(index).map(program_name) else {
        return reason.to_owned();
    };
    let rest = &rest[digits.len()..];
    let (frame, tail) = match rest.strip_prefix(" (frame ") {
        Some(after) => match after.split_once(')') {
            Some((frame, tail)) => (format!(", frame {frame}"), tail),
            None => (String::new(), rest),
        },
        None => (String::new(), rest),
    };
    format!("step {index} (`{program}`{frame}){tail}")
}

fn program_name(command: &crate::command::Command) -> String {
    match command {
        crate::command::Command::Argv(argv) => argv.first().cloned().unwrap_or_default(),
        crate::command::Command::Shell(_) => "/bin/sh".to_owned(),
    }
    .chars()
    .map(|c| {
        if c.is_control() {
            c.escape_debug().to_string()
        } else {
            c.to_string()
        }
    })
    .collect()
}

fn append_line(log: &std::path::Path, line: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .map_err(|e| FarmError::io(format!("cannot write to {}", log.display()), e))?;
    writeln!(file, "{line}")
        .map_err(|e| FarmError::io(format!("cannot write to {}", log.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_step_and_its_program() {
        let r = parse_request("name: x\ncommands: [[render, a], [\"it's\\n\", b]]\n").unwrap();
        assert_eq!(
            describe_step(&r, "command 1 (frame 7): exit code 3"),
            "step 1 (`it's\\n`, frame 7): exit code 3"
        );
        assert_eq!(
            describe_step(&r, "command 0: killed by signal 9"),
            "step 0 (`render`): killed by signal 9"
        );
        assert_eq!(
            describe_step(&r, "time limit 00:00:01 exceeded"),
            "time limit 00:00:01 exceeded"
        );
        let failed = report(
            &r,
            2,
            TaskOutcome::Failed {
                reason: "command 0: killed by signal 9".into(),
                exit_code: None,
            },
        );
        assert_eq!(failed.exit_code, 1);
        assert_eq!(
            failed.last_line,
            "farm: task 2 failed: step 0 (`render`): killed by signal 9 (exit code 1)"
        );
    }
}
