//! An in-memory scheduler simulator and its adapter, with deliberate flaws.
//!
//! [`SimScheduler`] plays the scheduler: it queues jobs, honours dependencies, runs each
//! task's commands for real through [`farm_core::exec`], and answers calls with JSON text in
//! its own vocabulary (`QUEUED`, `BLOCKED`, `RUNNING`, `DONE`, `ERROR`, `KILLED`).
//! [`SimFarm`] is the adapter: it sends calls, parses replies and maps native states onto
//! the five, with a reply timeout. The boundary is real, so a scheduler can be made to
//! forget jobs, reply garbage or fall silent ([`SchedulerControl`]).
//!
//! Each [`Flaw`] breaks one contract clause; the suite's own tests run the check aimed at
//! each flaw and require it to fail, which proves every check can fail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_core::exec::{ExecOptions, TaskOutcome, run_task};
use farm_core::{
    Capabilities, Command, CommonSettings, FarmError, FarmPlugin, InstallationMetadata, Job,
    JobFilter, JobId, JobRequest, JobState, LogChunk, Progress, RenderedJob, Result, now_millis,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::SchedulerControl;

/// One way to break the contract. Used only to prove the suite catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flaw {
    /// `job` says not found for the first two seconds after submit.
    InvisibleAfterSubmit,
    /// `job_state` always says Waiting, whatever `job` says.
    JobStateStuckWaiting,
    /// Jobs whose commands all succeed are reported Failed.
    SuccessReportedAsFailed,
    /// A non-zero exit is reported Completed.
    NonzeroExitCompletes,
    /// The failure reason omits the exit code.
    ReasonOmitsExitCode,
    /// Finished jobs are forgotten: `job` says not found once they end.
    ForgetsFinishedJobs,
    /// Commands run last to first.
    CommandsRunInReverse,
    /// Commands after a failing one still run.
    RunsAllCommandsDespiteFailure,
    /// Environment values pass through a naive quoting step (quotes stripped, blanks squeezed).
    LosesEnvironmentQuoting,
    /// argv is joined with spaces and handed to a shell.
    ArgvJoinedWithSpaces,
    /// The working directory is ignored.
    IgnoresWorkingDirectory,
    /// The last chunk of a job never runs.
    SkipsLastChunk,
    /// The job's state is the state of its last chunk.
    LastChunkDecidesState,
    /// Stop marks the job Cancelled but leaves its processes running.
    StopLeavesProcessesRunning,
    /// Stop does nothing to a job that has not started.
    StopIgnoredWhileWaiting,
    /// Stop turns a finished job into Cancelled.
    StopOverwritesFinishedState,
    /// Start does nothing to a finished job.
    StartIgnoresFinishedJobs,
    /// Start reruns a finished job without a new attempt number.
    StartKeepsAttemptNumber,
    /// Start kills and reruns a running job.
    StartRestartsRunningJobs,
    /// `job` on an unknown id is a generic scheduler error.
    UnknownIdInJobIsGenericError,
    /// `stop` on an unknown id succeeds silently.
    UnknownIdInStopSucceeds,
    /// `start` on an unknown id is a generic scheduler error.
    UnknownIdInStartIsGenericError,
    /// `render_log_filename` on an unknown id returns `None`.
    UnknownIdInLogFilenameIsNone,
    /// `read_log` on an unknown id returns an empty log.
    UnknownIdInReadLogIsEmpty,
    /// `list_jobs` leaves out jobs that have not finished.
    ListOmitsUnfinishedJobs,
    /// `list_jobs` ignores the state filter.
    ListIgnoresStateFilter,
    /// `list_jobs` matches name prefixes instead of exact names.
    ListMatchesNamePrefixes,
    /// `list_jobs` ignores the tag filter.
    ListIgnoresTagFilter,
    /// stderr never reaches the render log.
    LogDropsStderr,
    /// The render log is written only when the job ends.
    LogWrittenOnlyAtEnd,
    /// `read_log` ignores the offset and always returns everything.
    ReadLogIgnoresOffset,
    /// `read_log` says complete while the job is still running.
    ReadLogCompleteTooEarly,
    /// Every `create_temp_directory` call makes a new directory.
    TempDirectoryPerCall,
    /// Copies are cut short after 1000 bytes.
    CopyTruncatesFiles,
    /// Missing files are skipped instead of reported.
    CopySkipsMissingFiles,
    /// Submitting the same render context again makes a second job.
    DuplicatesOnResubmit,
    /// A job the scheduler forgot is reported Completed.
    ForgottenJobsCompleted,
    /// A job the scheduler forgot is reported Running forever.
    ForgottenJobsStayRunning,
    /// An unparseable reply is read as a Completed job.
    GarbageReadAsCompleted,
    /// The adapter waits forever for a reply.
    NoReplyTimeout,
    /// Dependencies are ignored.
    IgnoresDependencies,
    /// Dependents of failed jobs run anyway.
    RunsDependentsOfFailedJobs,
    /// `render` embeds the current time.
    RenderEmbedsTimestamp,
    /// `render` does not validate the request.
    RenderSkipsValidation,
    /// `submit` sends invalid requests to the scheduler.
    SubmitSkipsValidation,
    /// `submit` sends compact JSON while `render` returns pretty JSON.
    SubmitSendsDifferentPayload,
    /// Jobs never carry start or end times.
    NoJobTimes,
    /// A missing installation is a scheduler error instead of a configuration error.
    InstallationErrorIsNotConfig,
    /// Claims no capabilities but performs every operation anyway.
    ActsWithoutCapabilities,
}

/// Which check each flaw is aimed at: the suite's own tests require that check to fail.
pub const FLAW_TARGETS: &[(Flaw, &str)] = &[
    (
        Flaw::InvisibleAfterSubmit,
        "a_submitted_job_is_visible_at_once",
    ),
    (
        Flaw::JobStateStuckWaiting,
        "a_submitted_job_is_visible_at_once",
    ),
    (Flaw::SuccessReportedAsFailed, "a_successful_job_completes"),
    (Flaw::ForgetsFinishedJobs, "a_successful_job_completes"),
    (
        Flaw::NonzeroExitCompletes,
        "a_nonzero_exit_fails_with_the_exit_code_in_the_reason",
    ),
    (
        Flaw::ReasonOmitsExitCode,
        "a_nonzero_exit_fails_with_the_exit_code_in_the_reason",
    ),
    (Flaw::CommandsRunInReverse, "commands_run_in_order"),
    (
        Flaw::RunsAllCommandsDespiteFailure,
        "commands_stop_at_the_first_failure",
    ),
    (
        Flaw::LosesEnvironmentQuoting,
        "environment_values_arrive_exactly",
    ),
    (Flaw::ArgvJoinedWithSpaces, "argv_elements_arrive_exactly"),
    (
        Flaw::IgnoresWorkingDirectory,
        "the_working_directory_is_honoured",
    ),
    (Flaw::SkipsLastChunk, "every_frame_runs_with_its_chunk"),
    (Flaw::LastChunkDecidesState, "a_failed_frame_fails_the_job"),
    (
        Flaw::StopLeavesProcessesRunning,
        "stopping_a_running_job_cancels_it_and_kills_its_processes",
    ),
    (
        Flaw::StopIgnoredWhileWaiting,
        "stopping_a_waiting_job_cancels_it_before_it_runs",
    ),
    (
        Flaw::StopOverwritesFinishedState,
        "stopping_a_finished_job_is_a_no_op",
    ),
    (
        Flaw::StartIgnoresFinishedJobs,
        "starting_a_failed_job_runs_a_new_attempt",
    ),
    (
        Flaw::StartKeepsAttemptNumber,
        "starting_a_cancelled_job_runs_it_again",
    ),
    (
        Flaw::StartRestartsRunningJobs,
        "starting_a_running_job_changes_nothing",
    ),
    (
        Flaw::UnknownIdInJobIsGenericError,
        "an_unknown_id_gives_job_not_found_from_job",
    ),
    (
        Flaw::UnknownIdInStopSucceeds,
        "an_unknown_id_gives_job_not_found_from_stop",
    ),
    (
        Flaw::UnknownIdInStartIsGenericError,
        "an_unknown_id_gives_job_not_found_from_start",
    ),
    (
        Flaw::UnknownIdInLogFilenameIsNone,
        "an_unknown_id_gives_job_not_found_from_render_log_filename",
    ),
    (
        Flaw::UnknownIdInReadLogIsEmpty,
        "an_unknown_id_gives_job_not_found_from_read_log",
    ),
    (
        Flaw::ListOmitsUnfinishedJobs,
        "listing_includes_a_job_just_submitted",
    ),
    (Flaw::ListIgnoresStateFilter, "listing_filters_by_state"),
    (Flaw::ListMatchesNamePrefixes, "listing_filters_by_name"),
    (Flaw::ListIgnoresTagFilter, "listing_filters_by_tag"),
    (Flaw::LogDropsStderr, "the_render_log_holds_the_output"),
    (
        Flaw::LogWrittenOnlyAtEnd,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::ReadLogIgnoresOffset,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::ReadLogCompleteTooEarly,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::TempDirectoryPerCall,
        "the_temp_directory_is_stable_per_render_context",
    ),
    (Flaw::CopyTruncatesFiles, "copied_render_files_are_readable"),
    (
        Flaw::CopySkipsMissingFiles,
        "copying_a_missing_file_is_a_clear_error",
    ),
    (
        Flaw::DuplicatesOnResubmit,
        "submitting_a_render_context_twice_gives_one_job",
    ),
    (
        Flaw::ForgottenJobsCompleted,
        "a_job_the_scheduler_forgets_ends_failed_as_lost",
    ),
    (
        Flaw::ForgottenJobsStayRunning,
        "a_job_the_scheduler_forgets_ends_failed_as_lost",
    ),
    (
        Flaw::GarbageReadAsCompleted,
        "garbage_from_the_scheduler_is_an_error_not_a_state",
    ),
    (Flaw::NoReplyTimeout, "a_silent_scheduler_gives_unavailable"),
    (
        Flaw::IgnoresDependencies,
        "a_dependent_job_waits_for_its_dependency",
    ),
    (
        Flaw::RunsDependentsOfFailedJobs,
        "a_job_depending_on_a_failed_job_never_runs",
    ),
    (Flaw::RenderEmbedsTimestamp, "rendering_is_deterministic"),
    (
        Flaw::RenderSkipsValidation,
        "rendering_an_invalid_request_names_the_field",
    ),
    (
        Flaw::SubmitSkipsValidation,
        "invalid_requests_never_reach_the_scheduler",
    ),
    (
        Flaw::SubmitSendsDifferentPayload,
        "submit_sends_what_render_returns",
    ),
    (Flaw::NoJobTimes, "finished_jobs_carry_ordered_times"),
    (
        Flaw::InstallationErrorIsNotConfig,
        "installation_metadata_is_resolved_or_clearly_missing",
    ),
    (
        Flaw::ActsWithoutCapabilities,
        "an_unknown_id_gives_job_not_found_from_stop",
    ),
];

/// How the simulated farm behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Time a job spends queued before it may start.
    pub queue_delay: Duration,
    /// Tasks that may run at once, over all jobs.
    pub slots: usize,
    /// What the adapter claims (and enforces, unless flawed).
    pub capabilities: Capabilities,
    /// How long the adapter waits for a reply before `Unavailable`.
    pub reply_timeout: Duration,
    /// Where logs and staged files go; a temporary directory when `None`.
    pub state_dir: Option<PathBuf>,
    /// Shared staging root (the farm's `staging_root`); `<state_dir>/staging` when `None`.
    pub staging_root: Option<PathBuf>,
    /// Installation metadata and render environment.
    pub installation: Option<InstallationMetadata>,
    /// Deliberate contract breaches.
    pub flaws: HashSet<Flaw>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            queue_delay: Duration::from_millis(20),
            slots: 8,
            capabilities: Capabilities::ALL,
            reply_timeout: Duration::from_secs(2),
            state_dir: None,
            staging_root: None,
            installation: None,
            flaws: HashSet::new(),
        }
    }
}

impl SimulatorConfig {
    /// The default configuration with one flaw.
    pub fn with_flaw(flaw: Flaw) -> SimulatorConfig {
        let mut config = SimulatorConfig::default();
        config.flaws.insert(flaw);
        if flaw == Flaw::ActsWithoutCapabilities {
            config.capabilities = Capabilities::default();
        }
        config
    }
}

// ------------------------------------------------------------------ the scheduler side

/// A call from the adapter to the simulated scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Call {
    Submit { payload: String },
    Get { id: String },
    List,
    Stop { id: String },
    Start { id: String },
    ReadLog { id: String, offset: u64 },
}

/// A job as the simulated scheduler describes it, in its own words.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NativeJob {
    id: String,
    name: String,
    status: String,
    #[serde(default)]
    detail: Option<String>,
    attempt: u32,
    submitted_ms: i64,
    #[serde(default)]
    started_ms: Option<i64>,
    #[serde(default)]
    ended_ms: Option<i64>,
    log: String,
    render_context: Uuid,
    tags: Vec<String>,
    frames_done: u64,
    frames_total: u64,
}

#[derive(Debug, Deserialize, Serialize)]
struct NativeLog {
    data: String,
    next_offset: u64,
    complete: bool,
}

struct SimJob {
    request: JobRequest,
    native: NativeJob,
    cancel: CancellationToken,
    /// Stop was asked; the runner reports KILLED once processes are gone.
    stopping: bool,
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

const NATIVE_STATES: &[(&str, JobState)] = &[
    ("QUEUED", JobState::Waiting),
    ("BLOCKED", JobState::Waiting),
    ("RUNNING", JobState::Running),
    ("DONE", JobState::Completed),
    ("ERROR", JobState::Failed),
    ("KILLED", JobState::Cancelled),
];

fn is_native_terminal(status: &str) -> bool {
    matches!(status, "DONE" | "ERROR" | "KILLED")
}

fn reply_ok<T: Serialize>(value: T) -> String {
    serde_json::json!({ "ok": value }).to_string()
}

fn reply_err(kind: &str, message: impl Into<String>) -> String {
    serde_json::json!({ "error": { "kind": kind, "message": message.into() } }).to_string()
}

impl SimScheduler {
    fn new(config: Arc<SimulatorConfig>, log_dir: PathBuf) -> SimScheduler {
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

    fn flawed(&self, flaw: Flaw) -> bool {
        self.config.flaws.contains(&flaw)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.state.lock().expect("simulator state poisoned")
    }

    /// Answers one call with JSON text, or garbage, or never.
    async fn call(&self, call: Call) -> String {
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
            Call::ReadLog { id, offset } => self.read_log(&id, offset),
        }
    }

    fn find(&self, id: &str) -> Option<u64> {
        let n: u64 = id.parse().ok()?;
        self.lock().jobs.contains_key(&n).then_some(n)
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
                self.update(n, attempt, |job| job.native.frames_done += frames);
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

// ------------------------------------------------------------------ the adapter side

/// The simulator's adapter: a [`FarmPlugin`] over [`SimScheduler`].
pub struct SimFarm {
    scheduler: SimScheduler,
    config: Arc<SimulatorConfig>,
    common: CommonSettings,
    submitted: Mutex<HashSet<String>>,
    _state_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SimFarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFarm")
            .field("flaws", &self.config.flaws)
            .finish()
    }
}

impl SimFarm {
    /// A simulated farm. Must be created inside a tokio runtime (jobs run as tasks).
    ///
    /// With a `state_dir`, this instance's logs go to `<state_dir>/logs/<instance>/`, made
    /// only when a job runs, and instance folders older than a week are removed: building a
    /// farm (as `farm farms` does) leaves nothing behind.
    pub fn new(config: SimulatorConfig) -> std::io::Result<SimFarm> {
        let (dir, guard) = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                prune_old_instances(&dir.join("logs"), Duration::from_secs(7 * 24 * 3600));
                (dir.clone(), None)
            }
            None => {
                let tmp = tempfile::Builder::new().prefix("farm-sim-").tempdir()?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let instance = format!(
            "{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let log_dir = dir.join("logs").join(instance);
        let staging = match &config.staging_root {
            Some(root) => farm_core::SharedStaging::new(root),
            None => {
                let root = dir.join("staging");
                std::fs::create_dir_all(&root)?;
                farm_core::SharedStaging::new(root)
            }
        };
        let common = CommonSettings {
            staging: Some(staging),
            installation: config.installation.clone(),
            render_environment: BTreeMap::new(),
        };
        let config = Arc::new(config);
        Ok(SimFarm {
            scheduler: SimScheduler::new(config.clone(), log_dir),
            config,
            common,
            submitted: Mutex::new(HashSet::new()),
            _state_dir: guard,
        })
    }

    /// The fault-injection handle for this farm's scheduler.
    pub fn control(&self) -> Arc<dyn SchedulerControl> {
        Arc::new(SimControl(self.scheduler.clone()))
    }

    fn flawed(&self, flaw: Flaw) -> bool {
        self.config.flaws.contains(&flaw)
    }

    fn require(&self, enabled: bool, operation: &'static str) -> Result<()> {
        if enabled || self.flawed(Flaw::ActsWithoutCapabilities) {
            Ok(())
        } else {
            Err(FarmError::unsupported(operation, "simulator"))
        }
    }

    /// Sends a call and decodes the reply: the one place transport errors become
    /// `FarmError`s.
    async fn send<T: serde::de::DeserializeOwned>(&self, call: Call) -> Result<T> {
        let id = match &call {
            Call::Get { id }
            | Call::Stop { id }
            | Call::Start { id }
            | Call::ReadLog { id, .. } => Some(id.clone()),
            _ => None,
        };
        let reply = if self.flawed(Flaw::NoReplyTimeout) {
            self.scheduler.call(call).await
        } else {
            tokio::time::timeout(self.config.reply_timeout, self.scheduler.call(call))
                .await
                .map_err(|_| {
                    FarmError::unavailable(format!(
                        "the simulated scheduler did not answer within {:?}",
                        self.config.reply_timeout
                    ))
                })?
        };
        #[derive(Deserialize)]
        struct Envelope {
            ok: Option<serde_json::Value>,
            error: Option<ErrorBody>,
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            kind: String,
            message: String,
        }
        let envelope: Envelope =
            serde_json::from_str(&reply).map_err(|e| FarmError::Scheduler {
                message: format!("unreadable reply from the simulated scheduler: {reply:?}"),
                source: Some(Box::new(e)),
            })?;
        if let Some(err) = envelope.error {
            return Err(match err.kind.as_str() {
                "not_found" => FarmError::job_not_found(id.unwrap_or_default()),
                "invalid" => {
                    let (field, problem) = err
                        .message
                        .split_once(": ")
                        .unwrap_or(("request", &err.message));
                    FarmError::invalid(field, problem)
                }
                _ => FarmError::scheduler(err.message),
            });
        }
        let value = envelope
            .ok
            .ok_or_else(|| FarmError::scheduler(format!("reply without result: {reply}")))?;
        serde_json::from_value(value).map_err(|e| FarmError::Scheduler {
            message: format!("unexpected reply shape: {reply}"),
            source: Some(Box::new(e)),
        })
    }

    fn to_job(&self, native: NativeJob) -> Job {
        let (state, reason) = match NATIVE_STATES
            .iter()
            .find(|(word, _)| *word == native.status)
        {
            Some((_, state)) => (*state, native.detail.clone()),
            None => (
                JobState::Failed,
                Some(format!("unknown native state {}", native.status)),
            ),
        };
        let reason = match (state, reason) {
            (JobState::Failed, Some(r)) if self.flawed(Flaw::ReasonOmitsExitCode) => {
                Some(r.replace("exit code", "status"))
            }
            (_, r) => r,
        };
        Job {
            id: JobId::new(native.id),
            name: native.name,
            state,
            native_state: Some(native.status),
            reason,
            attempt: native.attempt,
            submit_time: Some(native.submitted_ms),
            start_time: native.started_ms,
            end_time: native.ended_ms,
            render_log_filename: Some(native.log),
            render_context: Some(native.render_context),
            tags: native.tags,
            progress: Some(Progress {
                frames_done: native.frames_done,
                frames_total: native.frames_total,
            }),
        }
    }

    fn lost(&self, id: &JobId) -> Option<Job> {
        if !self
            .submitted
            .lock()
            .expect("poisoned")
            .contains(id.as_str())
        {
            return None;
        }
        let mut job = Job::new(id.clone(), "", JobState::Failed);
        job.reason = Some("lost: the scheduler has no record of this job".into());
        if self.flawed(Flaw::ForgottenJobsCompleted) {
            job.state = JobState::Completed;
            job.reason = None;
        } else if self.flawed(Flaw::ForgottenJobsStayRunning) {
            job.state = JobState::Running;
        }
        Some(job)
    }

    fn payload(&self, request: &JobRequest) -> String {
        if self.flawed(Flaw::RenderEmbedsTimestamp) {
            return format!(
                "{}\n# rendered at {}\n",
                request.to_json(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
        }
        format!("{}\n", request.to_json())
    }
}

#[async_trait]
impl FarmPlugin for SimFarm {
    fn adapter(&self) -> &str {
        "simulator"
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities
    }

    async fn create_temp_directory(&self, render_context: Uuid) -> Result<String> {
        self.require(
            self.config.capabilities.stage_files,
            "create_temp_directory",
        )?;
        let context = if self.flawed(Flaw::TempDirectoryPerCall) {
            Uuid::new_v4()
        } else {
            render_context
        };
        self.common
            .create_temp_directory("simulator", context)
            .await
    }

    async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        self.require(self.config.capabilities.stage_files, "copy_render_files")?;
        let files: Vec<PathBuf> = if self.flawed(Flaw::CopySkipsMissingFiles) {
            files.iter().filter(|f| f.exists()).cloned().collect()
        } else {
            files.to_vec()
        };
        let copies = self
            .common
            .copy_render_files("simulator", &files, render_context)
            .await?;
        if self.flawed(Flaw::CopyTruncatesFiles) {
            for copy in copies.values() {
                if let Ok(bytes) = std::fs::read(copy) {
                    let _ = std::fs::write(copy, &bytes[..bytes.len().min(1000)]);
                }
            }
        }
        Ok(copies)
    }

    async fn installation_metadata(&self) -> Result<InstallationMetadata> {
        match self.common.installation_metadata("simulator") {
            Err(e) if self.flawed(Flaw::InstallationErrorIsNotConfig) => {
                Err(FarmError::scheduler(e.to_string()))
            }
            other => other,
        }
    }

    async fn render_environment(&self, _render_context: Uuid) -> Result<BTreeMap<String, String>> {
        Ok(self.common.render_environment())
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        if !self.flawed(Flaw::RenderSkipsValidation) {
            request.validate()?;
        }
        Ok(RenderedJob::single("request.json", self.payload(request)))
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        if !self.flawed(Flaw::SubmitSkipsValidation) {
            request.validate()?;
        }
        if !request.depends_on.is_empty() {
            self.require(self.config.capabilities.dependencies, "depends_on")?;
        }
        let payload = if self.flawed(Flaw::SubmitSendsDifferentPayload) {
            serde_json::to_string(request).expect("serialises")
        } else {
            self.payload(request)
        };
        let id: String = self.send(Call::Submit { payload }).await?;
        self.submitted.lock().expect("poisoned").insert(id.clone());
        Ok(JobId::new(id))
    }

    async fn job_state(&self, id: &JobId) -> Result<JobState> {
        let job = self.job(id).await?;
        if self.flawed(Flaw::JobStateStuckWaiting) {
            return Ok(JobState::Waiting);
        }
        Ok(job.state)
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        let reply: Result<NativeJob> = self.send(Call::Get { id: id.to_string() }).await;
        match reply {
            Ok(native) => {
                if self.flawed(Flaw::InvisibleAfterSubmit)
                    && now_millis() - native.submitted_ms < 2000
                {
                    return Err(FarmError::job_not_found(id));
                }
                if self.flawed(Flaw::ForgetsFinishedJobs) && is_native_terminal(&native.status) {
                    return Err(FarmError::job_not_found(id));
                }
                let mut job = self.to_job(native);
                if self.flawed(Flaw::NoJobTimes) {
                    job.start_time = None;
                    job.end_time = None;
                }
                Ok(job)
            }
            Err(FarmError::JobNotFound { .. }) => match self.lost(id) {
                Some(job) => Ok(job),
                None if self.flawed(Flaw::UnknownIdInJobIsGenericError) => {
                    Err(FarmError::scheduler("request failed"))
                }
                None => Err(FarmError::job_not_found(id)),
            },
            Err(e)
                if self.flawed(Flaw::GarbageReadAsCompleted)
                    && e.kind() == farm_core::ErrorKind::Scheduler =>
            {
                Ok(Job::new(id.clone(), "", JobState::Completed))
            }
            Err(e) => Err(e),
        }
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.require(self.config.capabilities.list_jobs, "list_jobs")?;
        let natives: Vec<NativeJob> = self.send(Call::List).await?;
        let mut effective = filter.clone();
        if self.flawed(Flaw::ListIgnoresStateFilter) {
            effective.states.clear();
        }
        if self.flawed(Flaw::ListIgnoresTagFilter) {
            effective.tag = None;
        }
        let prefix = if self.flawed(Flaw::ListMatchesNamePrefixes) {
            effective.name.take()
        } else {
            None
        };
        Ok(natives
            .into_iter()
            .map(|n| self.to_job(n))
            .filter(|j| effective.matches(j))
            .filter(|j| {
                prefix
                    .as_ref()
                    .is_none_or(|p| j.name.starts_with(p.as_str()))
            })
            .filter(|j| !self.flawed(Flaw::ListOmitsUnfinishedJobs) || j.state.is_terminal())
            .collect())
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        self.require(self.config.capabilities.render_log, "render_log_filename")?;
        match self
            .send::<NativeJob>(Call::Get { id: id.to_string() })
            .await
        {
            Ok(native) => Ok(Some(native.log)),
            Err(FarmError::JobNotFound { .. })
                if self.flawed(Flaw::UnknownIdInLogFilenameIsNone) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        self.require(self.config.capabilities.read_log, "read_log")?;
        match self
            .send::<NativeLog>(Call::ReadLog {
                id: id.to_string(),
                offset,
            })
            .await
        {
            Ok(log) => Ok(LogChunk {
                data: log.data,
                next_offset: log.next_offset,
                complete: log.complete,
            }),
            Err(FarmError::JobNotFound { .. }) if self.flawed(Flaw::UnknownIdInReadLogIsEmpty) => {
                Ok(LogChunk {
                    data: String::new(),
                    next_offset: 0,
                    complete: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        self.require(self.config.capabilities.start, "start")?;
        match self
            .send::<String>(Call::Start { id: id.to_string() })
            .await
        {
            Ok(id) => Ok(JobId::new(id)),
            Err(FarmError::JobNotFound { .. })
                if self.flawed(Flaw::UnknownIdInStartIsGenericError) =>
            {
                Err(FarmError::scheduler("request failed"))
            }
            Err(e) => Err(e),
        }
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        self.require(self.config.capabilities.stop, "stop")?;
        match self.send::<String>(Call::Stop { id: id.to_string() }).await {
            Ok(_) => Ok(()),
            Err(FarmError::JobNotFound { .. }) if self.flawed(Flaw::UnknownIdInStopSucceeds) => {
                Ok(())
            }
            Err(e) => Err(e),
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

/// Removes instance log folders not touched for `age` (best effort).
fn prune_old_instances(logs: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Settings of the `simulator` adapter in a farms file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Milliseconds a job stays queued (default 200).
    #[serde(default = "default_queue_delay_ms")]
    pub queue_delay_ms: u64,
    /// Tasks that run at once (default 2).
    #[serde(default = "default_slots")]
    pub slots: usize,
    /// Where logs go (default: a temporary directory).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

fn default_queue_delay_ms() -> u64 {
    200
}

fn default_slots() -> usize {
    2
}

/// Registers the `simulator` adapter: an in-memory farm that runs jobs on this machine for
/// as long as the process lives. For trying the CLI and for adapter authors.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        "simulator",
        "in-memory scheduler simulator running jobs on this machine (lives as long as the process)",
        |name, spec| {
            let settings: SimulatorSettings = spec.settings_as(name)?;
            let config = SimulatorConfig {
                queue_delay: Duration::from_millis(settings.queue_delay_ms),
                slots: settings.slots.max(1),
                state_dir: settings.state_dir,
                staging_root: spec.staging_root.clone(),
                installation: spec.installation.clone(),
                ..SimulatorConfig::default()
            };
            let farm = SimFarm::new(config)
                .map_err(|e| FarmError::io("cannot create the simulator's state directory", e))?;
            Ok(Arc::new(farm) as Arc<dyn FarmPlugin>)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_native_state_maps_and_unknown_words_fail() {
        let farm_words: Vec<&str> = NATIVE_STATES.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            farm_words,
            ["QUEUED", "BLOCKED", "RUNNING", "DONE", "ERROR", "KILLED"]
        );
        for state in JobState::ALL {
            assert!(
                NATIVE_STATES.iter().any(|(_, s)| *s == state),
                "{state} unreachable"
            );
        }
    }

    #[test]
    fn every_flaw_targets_a_real_check() {
        for (flaw, id) in FLAW_TARGETS {
            assert!(
                crate::checks::find(id).is_some(),
                "{flaw:?} targets unknown check {id}"
            );
        }
    }
}
