//! Runs one task of a request on this machine, exactly as [`plan`](crate::plan) defines.
//!
//! Used by the in-memory simulator and the local queue's agents. Each command runs without
//! a shell, in its own process group, with stdout and stderr appended to the task's render
//! log. Stopping (or a time limit) signals every process group the task started: SIGTERM,
//! then SIGKILL after a grace period. Stray background processes are killed when the task
//! ends, as a batch scheduler would.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use crate::plan::Task;
use crate::request::JobRequest;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Every step exited 0.
    Succeeded,
    /// A step failed; the rest did not run.
    Failed {
        /// Human-readable cause, e.g. `exit code 3` or `killed by signal 9`.
        reason: String,
        /// The failing step's exit status, when it exited normally (127: could not start).
        exit_code: Option<i32>,
    },
    /// Stopped by its cancellation token.
    Cancelled,
}

/// Settings for [`run_task`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Extra variables for every step (set before the request's own environment).
    pub base_env: Vec<(String, String)>,
    /// Variables of this process that steps must not inherit, beyond the credential
    /// variables ([`crate::secret::is_credential_variable`]) that are always removed.
    pub env_remove: Vec<String>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            grace: Duration::from_secs(5),
            base_env: Vec::new(),
            env_remove: Vec::new(),
        }
    }
}

/// Runs `task` of a validated `request`, appending output to `log_path`. Resolves when the
/// task has ended and none of its processes remain.
pub async fn run_task(
    request: &JobRequest,
    task: &Task,
    log_path: &Path,
    cancel: CancellationToken,
    options: &ExecOptions,
) -> std::io::Result<TaskOutcome> {
    let log = open_log(log_path)?;
    let mut groups: Vec<i32> = Vec::new();
    let deadline = request
        .resources
        .time_limit
        .map(|limit| tokio::time::Instant::now() + Duration::from(limit));
    let outcome = run_steps(request, task, &log, &cancel, options, deadline, &mut groups).await;
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    wait_until_groups_empty(&groups, Duration::from_secs(2)).await;
    if let Ok(TaskOutcome::Failed { reason, .. }) = &outcome {
        let _ = writeln!(&log, "farm: {reason}");
    }
    outcome
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

async fn run_steps(
    request: &JobRequest,
    task: &Task,
    log: &std::fs::File,
    cancel: &CancellationToken,
    options: &ExecOptions,
    deadline: Option<tokio::time::Instant>,
    groups: &mut Vec<i32>,
) -> std::io::Result<TaskOutcome> {
    let workdir = request.working_directory.as_ref().map(PathBuf::from);
    if let Some(dir) = &workdir
        && !dir.is_dir()
    {
        return Ok(TaskOutcome::Failed {
            reason: format!("cannot enter working directory {}", dir.display()),
            exit_code: None,
        });
    }
    for step in request.steps(task) {
        if cancel.is_cancelled() {
            return Ok(TaskOutcome::Cancelled);
        }
        let mut command = tokio::process::Command::new(&step.argv[0]);
        // Jobs never inherit the executor's credentials (a Slurm JWT, farm tokens).
        for name in crate::secret::credential_variables_present()
            .iter()
            .chain(&options.env_remove)
        {
            command.env_remove(name);
        }
        command
            .args(&step.argv[1..])
            .envs(options.base_env.iter().map(|(k, v)| (k, v)))
            .envs(&request.environment)
            .envs(step.farm_env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &workdir {
            command.current_dir(dir).env("PWD", dir);
        }
        let frame_note = step
            .frame
            .map(|f| format!(" (frame {f})"))
            .unwrap_or_default();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                return Ok(TaskOutcome::Failed {
                    reason: format!(
                        "command {}{frame_note}: cannot run {:?}: {err}",
                        step.command_index, step.argv[0]
                    ),
                    exit_code: Some(127),
                });
            }
        };
        let pgid = child.id().map(|id| id as i32);
        if let Some(pgid) = pgid {
            groups.push(pgid);
        }
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let status = tokio::select! {
            status = child.wait() => status?,
            () = cancel.cancelled() => {
                terminate(&mut child, pgid, options.grace).await;
                return Ok(TaskOutcome::Cancelled);
            }
            () = timeout => {
                terminate(&mut child, pgid, options.grace).await;
                let limit = request.resources.time_limit.map(|t| t.to_string()).unwrap_or_default();
                return Ok(TaskOutcome::Failed {
                    reason: format!("time limit {limit} exceeded"),
                    exit_code: None,
                });
            }
        };
        if status.success() {
            continue;
        }
        use std::os::unix::process::ExitStatusExt;
        let (reason, exit_code) = match (status.code(), status.signal()) {
            (Some(code), _) => (format!("exit code {code}"), Some(code)),
            (None, Some(sig)) => (format!("killed by signal {sig}"), None),
            (None, None) => ("ended abnormally".to_owned(), None),
        };
        return Ok(TaskOutcome::Failed {
            reason: format!("command {}{frame_note}: {reason}", step.command_index),
            exit_code,
        });
    }
    Ok(TaskOutcome::Succeeded)
}

/// Waits until no process of `groups` exists (signal 0 reports ESRCH), up to `limit`.
/// Zombies still count until their new parent reaps them, hence the bound.
async fn wait_until_groups_empty(groups: &[i32], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    for pgid in groups {
        while killpg(Pid::from_raw(*pgid), None).is_ok() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn terminate(child: &mut tokio::process::Child, pgid: Option<i32>, grace: Duration) {
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        if let Some(pgid) = pgid {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    fn argv(items: &[&str]) -> Command {
        Command::Argv(items.iter().map(|s| s.to_string()).collect())
    }

    async fn run(request: &JobRequest, log: &Path) -> TaskOutcome {
        request.validate().unwrap();
        let task = &request.tasks()[0];
        run_task(
            request,
            task,
            log,
            CancellationToken::new(),
            &ExecOptions::default(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn output_reaches_the_log_and_the_first_failure_stops_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/task.log");
        let mut r = JobRequest::new(
            "t",
            vec![
                argv(&["sh", "-c", "echo out; echo err >&2"]),
                argv(&["sh", "-c", "exit 3"]),
                argv(&["sh", "-c", "echo never"]),
            ],
        );
        r.environment
            .insert("GREETING".into(), "it's \"$(x)\"".into());
        let outcome = run(&r, &log).await;
        assert_eq!(
            outcome,
            TaskOutcome::Failed {
                reason: "command 1: exit code 3".into(),
                exit_code: Some(3)
            }
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
        assert!(!text.contains("never"));
        assert!(text.contains("farm: command 1: exit code 3"));
    }

    #[tokio::test]
    async fn environment_cwd_and_frames_reach_each_step() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("task.log");
        let mut r = JobRequest::new(
            "t",
            vec![argv(&[
                "sh",
                "-c",
                "printf '%s|%s|%s|%s\\n' \"$1\" \"$FARM_FRAME\" \"$V\" \"$(pwd)\"",
                "sh",
                "f{frame}",
            ])],
        );
        r.frames = Some("7-8".parse().unwrap());
        r.chunk_size = 2;
        r.environment.insert("V".into(), "a b\nc".into());
        r.working_directory = Some(dir.path().display().to_string());
        assert_eq!(run(&r, &log).await, TaskOutcome::Succeeded);
        let text = std::fs::read_to_string(&log).unwrap();
        let d = dir.path().display();
        assert_eq!(text, format!("f7|7|a b\nc|{d}\nf8|8|a b\nc|{d}\n"));
    }

    #[tokio::test]
    async fn removed_variables_do_not_reach_the_steps() {
        // Two variables this process certainly has that /bin/sh does not recreate.
        let inherited: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .filter(|k| {
                ![
                    "PATH", "PWD", "OLDPWD", "SHLVL", "_", "IFS", "PS1", "PS2", "PS4", "OPTIND",
                ]
                .contains(&k.as_str())
            })
            .take(2)
            .collect();
        assert_eq!(inherited.len(), 2, "the test needs two inherited variables");
        let (removed, kept) = (&inherited[0], &inherited[1]);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l");
        let script = format!("echo \"removed=${{{removed}-unset}} kept=${{{kept}+set}}\"");
        let r = JobRequest::new("t", vec![argv(&["/bin/sh", "-c", &script])]);
        let task = r.tasks().remove(0);
        let options = ExecOptions {
            env_remove: vec![removed.clone()],
            ..Default::default()
        };
        let outcome = run_task(&r, &task, &log, CancellationToken::new(), &options)
            .await
            .unwrap();
        assert_eq!(outcome, TaskOutcome::Succeeded);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "removed=unset kept=set\n"
        );
    }

    #[tokio::test]
    async fn a_missing_program_fails_with_127() {
        let dir = tempfile::tempdir().unwrap();
        let r = JobRequest::new("t", vec![argv(&["/nonexistent/render"])]);
        match run(&r, &dir.path().join("l")).await {
            TaskOutcome::Failed { reason, exit_code } => {
                assert_eq!(exit_code, Some(127));
                assert!(reason.contains("/nonexistent/render"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn cancelling_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        let r = JobRequest::new(
            "t",
            vec![argv(&[
                "sh",
                "-c",
                "sleep 300 & echo $! > \"$0\"; wait",
                &pidfile.display().to_string(),
            ])],
        );
        let cancel = CancellationToken::new();
        let handle = {
            let (r, cancel, log) = (r.clone(), cancel.clone(), dir.path().join("l"));
            tokio::spawn(async move {
                let task = r.tasks().remove(0);
                run_task(
                    &r,
                    &task,
                    &log,
                    cancel,
                    &ExecOptions {
                        grace: Duration::from_millis(500),
                        ..Default::default()
                    },
                )
                .await
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let grandchild: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(tokio::time::Instant::now() < deadline, "job never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        cancel.cancel();
        assert_eq!(handle.await.unwrap().unwrap(), TaskOutcome::Cancelled);
        let gone = Path::new(&format!("/proc/{grandchild}")).exists().then(|| {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default()
        });
        // Either reaped, or a zombie waiting for its (killed) parent's reaper.
        assert!(
            gone.as_ref().is_none_or(|stat| stat.contains(") Z ")),
            "grandchild {grandchild} survived: {gone:?}"
        );
    }

    #[tokio::test]
    async fn the_time_limit_fails_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = JobRequest::new("t", vec![argv(&["sleep", "30"])]);
        r.resources.time_limit = Some(crate::resources::TimeLimit::from_secs(1));
        let started = std::time::Instant::now();
        match run(&r, &dir.path().join("l")).await {
            TaskOutcome::Failed { reason, .. } => {
                assert!(reason.contains("time limit 00:00:01"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
