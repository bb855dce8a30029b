//! The scheduler side: queues jobs, honours dependencies, runs each task's commands for
//! real and answers calls with JSON text in its own vocabulary.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_core::exec::{ExecOptions, TaskOutcome, run_task};
use farm_core::{Command, JobId, JobRequest, now_millis};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Flaw, SimulatorConfig};
use crate::harness::SchedulerControl;

/// A call from the adapter to the simulated scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Call {
    Submit { payload: String },
    Get { id: String },
    List,
    Stop { id: String },
    Start { id: String },
    RetryFailed { id: String },
    ReadLog { id: String, offset: u64 },
    Check { payload: String },
}

/// A job as the simulated scheduler describes it, in its own words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct NativeJob {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) status: String,
    #[serde(default)]
    pub(super) detail: Option<String>,
    pub(super) attempt: u32,
    pub(super) submitted_ms: i64,
    #[serde(default)]
    pub(super) started_ms: Option<i64>,
    #[serde(default)]
    pub(super) ended_ms: Option<i64>,
    pub(super) log: String,
    pub(super) render_context: Uuid,
    pub(super) tags: Vec<String>,
    pub(super) frames_done: u64,
    pub(super) frames_total: u64,
}

/// A chunk of a job's log, as the simulated scheduler returns it.
#[derive(Debug, Deserialize, Serialize)]
pub(super) struct NativeLog {
    pub(super) data: String,
    pub(super) next_offset: u64,
    pub(super) complete: bool,
}

struct SimJob {
    request: JobRequest,
    native: NativeJob,
    cancel: CancellationToken,
    /// Stop was asked; the runner reports KILLED once processes are gone.
    stopping: bool,
    /// Tasks that succeeded in this attempt: a retry of failed tasks skips them.
    done_tasks: std::collections::BTreeSet<u32>,
}

#[derive(Default)]
struct SchedState {
    jobs: BTreeMap<u64, SimJob>,
    next_id: u64,
    by_context: HashMap<Uuid, u64>,
    garble: usize,
    stall: usize,
    last_submission: Option<String>,
}

/// The simulated scheduler. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SimScheduler {
    state: Arc<Mutex<SchedState>>,
    slots: Arc<tokio::sync::Semaphore>,
    config: Arc<SimulatorConfig>,
    log_dir: PathBuf,
}

pub(super) fn is_native_terminal(status: &str) -> bool {
    matches!(status, "DONE" | "ERROR" | "KILLED")
}

pub(super) fn reply_ok<T: Serialize>(value: T) -> String {
    serde_json::json!({ "ok": value }).to_string()
}

pub(super) fn reply_err(kind: &str, message: impl Into<String>) -> String {
    serde_json::json!({ "error": { "kind": kind, "message": message.into() } }).to_string()
}

impl SimScheduler {
    pub(super) fn new(config: Arc<SimulatorConfig>, log_dir: PathBuf) -> SimScheduler {
        SimScheduler {
            state: Arc::new(Mutex::new(SchedState {
                next_id: 1,
                ..Default::default()
            })),
            slots: Arc::new(tokio::sync::Semaphore::new(config.slots.max(1))),
            config,
            log_dir,
        }
    }

    /// The fault-injection handle for this scheduler.
    pub(super) fn control(&self) -> Arc<dyn SchedulerControl> {
        Arc::new(SimControl(self.clone()))
    }

    pub(super) fn flawed(&self, flaw: Flaw) -> bool {
        self.config.flaws.contains(&flaw)
    }

    /// How long a job stays queued, in milliseconds.
    pub(super) fn queue_delay_ms(&self) -> i64 {
        i64::try_from(self.config.queue_delay.as_millis()).unwrap_or(i64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.state.lock().expect("simulator state poisoned")
    }

    /// Answers one call with JSON text, or garbage, or never.
    pub(super) async fn call(&self, call: Call) -> String {
        let (garble, stall) = {
            let mut st = self.lock();
            let garble = st.garble > 0;
            if garble {
                st.garble -= 1;
            }
            let stall = !garble && st.stall > 0;
            if stall {
                st.stall -= 1;
            }
            (garble, stall)
        };
        if stall {
            std::future::pending::<()>().await;
        }
        let reply = self.answer(call);
        if garble {
            "<html>502 Bad Gateway \u{0} {\"ok\":".to_owned()
        } else {
            reply
        }
    }

    fn answer(&self, call: Call) -> String {
        match call {
            Call::Submit { payload } => self.submit(payload),
            Call::Check { payload } => self.check(payload),
            Call::Get { id } => match self.find(&id) {
                Some(n) => reply_ok(&self.lock().jobs[&n].native),
                None => reply_err("not_found", format!("no job {id}")),
            },
            Call::List => reply_ok(
                self.lock()
                    .jobs
                    .values()
                    .map(|j| j.native.clone())
                    .collect::<Vec<_>>(),
            ),
            Call::Stop { id } => self.stop(&id),
            Call::Start { id } => self.start(&id),
            Call::RetryFailed { id } => self.retry_failed(&id),
            Call::ReadLog { id, offset } => self.read_log(&id, offset),
        }
    }

    fn find(&self, id: &str) -> Option<u64> {
        let n: u64 = id.parse().ok()?;
        self.lock().jobs.contains_key(&n).then_some(n)
    }

    /// Queues a job (what a flawed check does too).
    pub(super) fn submit_payload(&self, payload: String) -> String {
        self.submit(payload)
    }

    fn submit(&self, payload: String) -> String {
        let request = match JobRequest::from_json_str(&payload) {
            Ok(r) => r,
            Err(e) => return reply_err("invalid", e.to_string()),
        };
        let mut st = self.lock();
        st.last_submission = Some(payload);
        if !self.flawed(Flaw::DuplicatesOnResubmit)
            && let Some(existing) = st.by_context.get(&request.render_context)
            && st.jobs.contains_key(existing)
        {
            return reply_ok(existing.to_string());
        }
        for (i, dep) in request.depends_on.iter().enumerate() {
            let known = dep
                .as_str()
                .parse::<u64>()
                .ok()
                .is_some_and(|n| st.jobs.contains_key(&n));
            if !known {
                return reply_err("invalid", format!("depends_on[{i}]: no job {dep}"));
            }
        }
        let n = st.next_id;
        st.next_id += 1;
        let native = NativeJob {
            id: n.to_string(),
            name: request.name.clone(),
            status: "QUEUED".into(),
            detail: None,
            attempt: 1,
            submitted_ms: now_millis(),
            started_ms: None,
            ended_ms: None,
            log: self
                .log_dir
                .join(format!("{n}.1.log"))
                .display()
                .to_string(),
            render_context: request.render_context,
            tags: request.tags.clone(),
            frames_done: 0,
            frames_total: request.frame_count() as u64,
        };
        let cancel = CancellationToken::new();
        st.by_context.insert(request.render_context, n);
        st.jobs.insert(
            n,
            SimJob {
                request,
                native,
                cancel: cancel.clone(),
                stopping: false,
                done_tasks: Default::default(),
            },
        );
        drop(st);
        tokio::spawn(self.clone().run_attempt(n, 1, cancel));
        reply_ok(n.to_string())
    }

    fn stop(&self, id: &str) -> String {
        let Some(n) = self.find(id) else {
            return reply_err("not_found", format!("no job {id}"));
        };
        let mut st = self.lock();
        let job = st.jobs.get_mut(&n).expect("found");
        match job.native.status.as_str() {
            s if is_native_terminal(s) => {
                if self.flawed(Flaw::StopOverwritesFinishedState) {
                    job.native.status = "KILLED".into();
                }
            }
            "QUEUED" | "BLOCKED" if self.flawed(Flaw::StopIgnoredWhileWaiting) => {}
            _ if self.flawed(Flaw::StopLeavesProcessesRunning) => {
                job.native.status = "KILLED".into();
                job.native.ended_ms = Some(now_millis());
            }
            _ => {
                job.stopping = true;
                job.cancel.cancel();
            }
        }
        reply_ok(id)
    }

    fn start(&self, id: &str) -> String {
        let Some(n) = self.find(id) else {
            return reply_err("not_found", format!("no job {id}"));
        };
        let mut st = self.lock();
        let job = st.jobs.get_mut(&n).expect("found");
        let terminal = is_native_terminal(&job.native.status);
        if (!terminal && !self.flawed(Flaw::StartRestartsRunningJobs))
            || (terminal && self.flawed(Flaw::StartIgnoresFinishedJobs))
        {
            return reply_ok(id);
        }
        job.cancel.cancel();
        let attempt = if self.flawed(Flaw::StartKeepsAttemptNumber) {
            job.native.attempt
        } else {
            job.native.attempt + 1
        };
        let cancel = CancellationToken::new();
        job.cancel = cancel.clone();
        job.stopping = false;
        job.done_tasks.clear();
        job.native.attempt = attempt;
        job.native.status = "QUEUED".into();
        job.native.detail = None;
        job.native.started_ms = None;
        job.native.ended_ms = None;
        job.native.frames_done = 0;
        job.native.log = self
            .log_dir
            .join(format!("{n}.{attempt}.log"))
            .display()
            .to_string();
        drop(st);
        tokio::spawn(self.clone().run_attempt(n, attempt, cancel));
        reply_ok(id)
    }

    /// Runs again the tasks of a finished, unsuccessful job that did not succeed, in the
    /// same attempt (a done job, or one still running, is left alone).
    fn retry_failed(&self, id: &str) -> String {
        let Some(n) = self.find(id) else {
            return reply_err("not_found", format!("no job {id}"));
        };
        let mut st = self.lock();
        let job = st.jobs.get_mut(&n).expect("found");
        if !matches!(job.native.status.as_str(), "ERROR" | "KILLED") {
            return reply_ok(id);
        }
        if self.flawed(Flaw::RetryRerunsEveryFrame) {
            job.done_tasks.clear();
            job.native.frames_done = 0;
        }
        let cancel = CancellationToken::new();
        job.cancel = cancel.clone();
        job.stopping = false;
        job.native.status = "QUEUED".into();
        job.native.detail = None;
        job.native.ended_ms = None;
        let attempt = job.native.attempt;
        drop(st);
        tokio::spawn(self.clone().run_attempt(n, attempt, cancel));
        reply_ok(id)
    }

    fn read_log(&self, id: &str, offset: u64) -> String {
        let Some(n) = self.find(id) else {
            return reply_err("not_found", format!("no job {id}"));
        };
        let (path, terminal) = {
            let st = self.lock();
            let job = &st.jobs[&n];
            (
                job.native.log.clone(),
                is_native_terminal(&job.native.status),
            )
        };
        let bytes = std::fs::read(&path).unwrap_or_default();
        let from = if self.flawed(Flaw::ReadLogIgnoresOffset) {
            0
        } else {
            (offset as usize).min(bytes.len())
        };
        let complete = terminal || self.flawed(Flaw::ReadLogCompleteTooEarly);
        reply_ok(NativeLog {
            data: String::from_utf8_lossy(&bytes[from..]).into_owned(),
            next_offset: bytes.len() as u64,
            complete,
        })
    }

    /// Updates a job's record if it still exists and still runs this attempt.
    fn update(&self, n: u64, attempt: u32, f: impl FnOnce(&mut SimJob)) -> bool {
        let mut st = self.lock();
        match st.jobs.get_mut(&n) {
            Some(job) if job.native.attempt == attempt => {
                f(job);
                true
            }
            _ => false,
        }
    }

    async fn run_attempt(self, n: u64, attempt: u32, cancel: CancellationToken) {
        let finish = |status: &str, detail: Option<String>| {
            let status = status.to_owned();
            self.update(n, attempt, move |job| {
                if !is_native_terminal(&job.native.status) {
                    job.native.status = status;
                    job.native.detail = detail;
                    job.native.ended_ms = Some(now_millis());
                }
            });
        };
        tokio::select! {
            () = tokio::time::sleep(self.config.queue_delay) => {}
            () = cancel.cancelled() => { return finish("KILLED", Some("stopped while queued".into())) }
        }
        // Dependencies: wait until all are DONE; fail for good if one cannot succeed.
        loop {
            let Some(request) = self.lock().jobs.get(&n).map(|j| j.request.clone()) else {
                return;
            };
            if request.depends_on.is_empty() || self.flawed(Flaw::IgnoresDependencies) {
                break;
            }
            let mut pending = false;
            let mut broken = None;
            {
                let st = self.lock();
                for dep in &request.depends_on {
                    let status = dep
                        .as_str()
                        .parse::<u64>()
                        .ok()
                        .and_then(|d| st.jobs.get(&d))
                        .map(|j| j.native.status.clone());
                    match status.as_deref() {
                        Some("DONE") => {}
                        Some("ERROR" | "KILLED") | None => broken = Some(dep.clone()),
                        _ => pending = true,
                    }
                }
            }
            if let Some(dep) = broken {
                if !self.flawed(Flaw::RunsDependentsOfFailedJobs) {
                    return finish("KILLED", Some(format!("dependency {dep} did not complete")));
                }
                break;
            }
            if !pending {
                break;
            }
            self.update(n, attempt, |job| job.native.status = "BLOCKED".into());
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = cancel.cancelled() => { return finish("KILLED", Some("stopped while waiting on dependencies".into())) }
            }
        }
        let Some(request) = self
            .lock()
            .jobs
            .get(&n)
            .map(|j| self.effective_request(&j.request))
        else {
            return;
        };
        let log = PathBuf::from(
            self.lock()
                .jobs
                .get(&n)
                .map(|j| j.native.log.clone())
                .unwrap_or_default(),
        );
        if !self.update(n, attempt, |job| {
            job.native.status = "RUNNING".into();
            if !self.flawed(Flaw::NoJobTimes) {
                job.native.started_ms = Some(now_millis());
            }
        }) {
            return;
        }
        let mut tasks = request.tasks();
        if self.flawed(Flaw::SkipsLastChunk) && tasks.len() > 1 {
            tasks.pop();
        }
        let done = self
            .lock()
            .jobs
            .get(&n)
            .map(|j| j.done_tasks.clone())
            .unwrap_or_default();
        tasks.retain(|t| !done.contains(&t.index));
        let mut set = tokio::task::JoinSet::new();
        for task in tasks {
            let (sched, request, cancel) = (self.clone(), request.clone(), cancel.clone());
            let log = if self.flawed(Flaw::LogWrittenOnlyAtEnd) {
                log.with_extension(format!("pending.{}", task.index))
            } else {
                log.clone()
            };
            set.spawn(async move {
                let Ok(_permit) = sched.slots.clone().acquire_owned().await else {
                    return (task.index, TaskOutcome::Cancelled, 0);
                };
                if cancel.is_cancelled() {
                    return (task.index, TaskOutcome::Cancelled, 0);
                }
                let frames = task.frames.as_ref().map_or(1, |f| f.len() as u64);
                let outcome = sched.run_one_task(&request, &task, &log, cancel).await;
                (task.index, outcome, frames)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((index, outcome, frames)) = joined else {
                continue;
            };
            if outcome == TaskOutcome::Succeeded {
                self.update(n, attempt, |job| {
                    job.native.frames_done += frames;
                    job.done_tasks.insert(index);
                });
            }
            outcomes.push((index, outcome));
        }
        outcomes.sort_by_key(|(i, _)| *i);
        if self.flawed(Flaw::LogWrittenOnlyAtEnd) {
            for (index, _) in &outcomes {
                let part = log.with_extension(format!("pending.{index}"));
                if let Ok(bytes) = std::fs::read(&part) {
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                    {
                        let _ = f.write_all(&bytes);
                    }
                    let _ = std::fs::remove_file(part);
                }
            }
        }
        let decisive: Vec<&TaskOutcome> = if self.flawed(Flaw::LastChunkDecidesState) {
            outcomes.last().map(|(_, o)| o).into_iter().collect()
        } else {
            outcomes.iter().map(|(_, o)| o).collect()
        };
        let stopping = self.lock().jobs.get(&n).is_some_and(|j| j.stopping);
        if stopping || decisive.iter().any(|o| **o == TaskOutcome::Cancelled) {
            return finish("KILLED", Some("stopped".into()));
        }
        if let Some(TaskOutcome::Failed { reason, .. }) = decisive
            .iter()
            .find(|o| matches!(o, TaskOutcome::Failed { .. }))
        {
            if self.flawed(Flaw::NonzeroExitCompletes) {
                return finish("DONE", None);
            }
            return finish("ERROR", Some(reason.clone()));
        }
        if self.flawed(Flaw::SuccessReportedAsFailed) {
            return finish("ERROR", Some("internal error".into()));
        }
        finish("DONE", None);
    }

    async fn run_one_task(
        &self,
        request: &JobRequest,
        task: &farm_core::Task,
        log: &std::path::Path,
        cancel: CancellationToken,
    ) -> TaskOutcome {
        let options = ExecOptions {
            grace: Duration::from_secs(2),
            ..Default::default()
        };
        if self.flawed(Flaw::RunsAllCommandsDespiteFailure) {
            let mut first_failure = None;
            for command in &request.commands {
                let mut single = request.clone();
                single.commands = vec![command.clone()];
                let outcome = run_task(&single, task, log, cancel.clone(), &options)
                    .await
                    .unwrap_or(TaskOutcome::Cancelled);
                if outcome != TaskOutcome::Succeeded && first_failure.is_none() {
                    first_failure = Some(outcome);
                }
            }
            return first_failure.unwrap_or(TaskOutcome::Succeeded);
        }
        match run_task(request, task, log, cancel, &options).await {
            Ok(outcome) => outcome,
            Err(e) => TaskOutcome::Failed {
                reason: format!("cannot write the log {}: {e}", log.display()),
                exit_code: None,
            },
        }
    }

    /// The request as a flawed scheduler would really run it.
    fn effective_request(&self, request: &JobRequest) -> JobRequest {
        let mut r = request.clone();
        if self.flawed(Flaw::CommandsRunInReverse) {
            r.commands.reverse();
        }
        if self.flawed(Flaw::LosesEnvironmentQuoting) {
            for value in r.environment.values_mut() {
                *value = value
                    .replace(['\'', '"'], "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
        if self.flawed(Flaw::IgnoresWorkingDirectory) {
            r.working_directory = None;
        }
        if self.flawed(Flaw::ArgvJoinedWithSpaces) || self.flawed(Flaw::LogDropsStderr) {
            r.commands = r
                .commands
                .iter()
                .map(|c| {
                    let argv = c.program_argv();
                    if self.flawed(Flaw::ArgvJoinedWithSpaces) {
                        Command::Shell(argv.join(" "))
                    } else {
                        let mut wrapped: Vec<String> = vec![
                            "/bin/sh".into(),
                            "-c".into(),
                            "exec 2>/dev/null; exec \"$@\"".into(),
                            "sh".into(),
                        ];
                        wrapped.extend(argv);
                        Command::Argv(wrapped.into_iter().map(|a| a.replace('{', "{{")).collect())
                    }
                })
                .collect();
        }
        r
    }

    fn forget_job(&self, id: &str) {
        if let Some(n) = self.find(id) {
            let mut st = self.lock();
            if let Some(job) = st.jobs.remove(&n) {
                job.cancel.cancel();
            }
        }
    }
}

struct SimControl(SimScheduler);

#[async_trait]
impl SchedulerControl for SimControl {
    async fn forget(&self, id: &JobId) {
        self.0.forget_job(id.as_str());
    }

    async fn garble_replies(&self, count: usize) {
        self.0.lock().garble += count;
    }

    async fn stall_replies(&self, count: usize) {
        self.0.lock().stall += count;
    }

    async fn last_submission(&self) -> Option<String> {
        self.0.lock().last_submission.clone()
    }
}
