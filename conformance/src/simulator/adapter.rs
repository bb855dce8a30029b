//! The adapter side: a [`FarmPlugin`] that sends calls to the simulated scheduler, parses
//! its replies and maps its native states onto the five, with a reply timeout.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_core::{
    Capabilities, CheckReport, CommonSettings, FarmError, FarmPlugin, InstallationMetadata, Job,
    JobFilter, JobId, JobRequest, JobState, LogChunk, Progress, RenderedJob, Result, now_millis,
};
use serde::Deserialize;
use uuid::Uuid;

use super::nodes::NativeCheck;
use super::scheduler::{Call, NativeJob, NativeLog, SimScheduler, is_native_terminal};
use super::{Flaw, SimulatorConfig};
use crate::harness::SchedulerControl;

/// The scheduler's words for a job's state, mapped onto the five.
const NATIVE_STATES: &[(&str, JobState)] = &[
    ("QUEUED", JobState::Waiting),
    ("BLOCKED", JobState::Waiting),
    ("RUNNING", JobState::Running),
    ("DONE", JobState::Completed),
    ("ERROR", JobState::Failed),
    ("KILLED", JobState::Cancelled),
];

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
        self.scheduler.control()
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
            | Call::RetryFailed { id }
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
                if self.flawed(Flaw::TimesInSeconds) {
                    for t in [&mut job.submit_time, &mut job.start_time, &mut job.end_time] {
                        *t = t.map(|ms| ms / 1000);
                    }
                }
                if self.flawed(Flaw::UnreadableWhileRunning) && job.state == JobState::Running {
                    return Err(FarmError::scheduler(format!(
                        "unknown native state {:?}",
                        job.native_state
                    )));
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

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        let claimed = self.config.capabilities.check || self.flawed(Flaw::CheckIgnoresCapability);
        self.require(claimed, "check")?;
        request.validate()?;
        let native: NativeCheck = self
            .send(Call::Check {
                payload: self.payload(request),
            })
            .await?;
        Ok(CheckReport {
            message: format!("{}: would start on {}", native.verdict, native.node),
            estimated_start: Some(native.start_ms),
            placement: Some(native.node),
        })
    }

    async fn retry_failed(&self, id: &JobId) -> Result<JobId> {
        self.require(self.config.capabilities.retry_failed, "retry_failed")?;
        self.send::<String>(Call::RetryFailed { id: id.to_string() })
            .await
            .map(JobId::new)
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
}
