//! The farm plug-in trait: Katana's `FarmAPI.BaseFarmPlugin` as one object-safe async trait.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{FarmError, Result};
use crate::installation::InstallationMetadata;
use crate::job::{Job, JobFilter, JobId, LogChunk};
use crate::katana::{CommonSettings, KatanaServices};
use crate::request::JobRequest;
use crate::state::JobState;

/// What an adapter can do. An operation whose flag is false returns
/// [`FarmError::Unsupported`]; the conformance suite checks exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `create_temp_directory` and `copy_render_files` work.
    pub stage_files: bool,
    /// `list_jobs` works.
    pub list_jobs: bool,
    /// `render_log_filename` can name a file readable from the submitting host.
    pub render_log: bool,
    /// `read_log` returns the log's text.
    pub read_log: bool,
    /// `stop` works.
    pub stop: bool,
    /// `start` works (restarting finished jobs as a new attempt).
    pub start: bool,
    /// `depends_on` in requests is honoured.
    pub dependencies: bool,
    /// Submitting a render context that was already submitted returns the existing job.
    pub idempotent_submit: bool,
    /// `retry_failed` runs only a finished job's failed and cancelled tasks again.
    #[serde(default)]
    pub retry_failed: bool,
    /// `check` asks the farm whether it could ever run a request, before submitting.
    #[serde(default)]
    pub check: bool,
    /// `check` knows the farm's resources: a request no node could ever satisfy (more CPUs
    /// or memory than the largest node has) is refused. Without it, `check` asks only what
    /// the farm can tell without them (the job file's syntax, names), and the suite's
    /// impossible-request check is not applicable rather than passed.
    #[serde(default)]
    pub check_resources: bool,
    /// Jobs carry `start_time` once running and `end_time` once finished. Some farms report
    /// neither (a missing time is `None`); the suite asserts times only where this is true.
    /// Peers that predate the flag report times, so it is on unless they say otherwise.
    #[serde(default = "reports_times_unless_told")]
    pub job_times: bool,
}

fn reports_times_unless_told() -> bool {
    true
}

impl Capabilities {
    /// Every capability on.
    pub const ALL: Capabilities = Capabilities {
        stage_files: true,
        list_jobs: true,
        render_log: true,
        read_log: true,
        stop: true,
        start: true,
        dependencies: true,
        idempotent_submit: true,
        retry_failed: true,
        check: true,
        check_resources: true,
        job_times: true,
    };

    /// `(name, enabled)` pairs, for tables and JSON.
    pub fn entries(&self) -> [(&'static str, bool); 12] {
        [
            ("stage_files", self.stage_files),
            ("list_jobs", self.list_jobs),
            ("render_log", self.render_log),
            ("read_log", self.read_log),
            ("stop", self.stop),
            ("start", self.start),
            ("dependencies", self.dependencies),
            ("idempotent_submit", self.idempotent_submit),
            ("retry_failed", self.retry_failed),
            ("check", self.check),
            ("check_resources", self.check_resources),
            ("job_times", self.job_times),
        ]
    }
}

/// What a farm said when asked whether it could run a request ([`FarmPlugin::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// The farm's answer in its own words (`sbatch --test-only`'s line, for example).
    pub message: String,
    /// When the farm expects the job to start, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_start: Option<crate::job::EpochMillis>,
    /// Where it would run (nodes, agents, a pool), if the farm says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// A native job file an adapter would submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderedFile {
    /// Suggested file name (`job.sbatch`, `job.sub`, `wrapper.sh`, `request.json`).
    pub name: String,
    /// The contents, byte-stable for a given request and configuration.
    pub contents: String,
    /// Whether the file must be executable (wrapper scripts).
    #[serde(default)]
    pub executable: bool,
}

/// What `render` produces: the main job file first, then any companions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderedJob {
    /// The files; never empty.
    pub files: Vec<RenderedFile>,
}

impl RenderedJob {
    /// A job made of one file.
    pub fn single(name: impl Into<String>, contents: impl Into<String>) -> RenderedJob {
        RenderedJob {
            files: vec![RenderedFile {
                name: name.into(),
                contents: contents.into(),
                executable: false,
            }],
        }
    }

    /// The main job file.
    pub fn main(&self) -> &RenderedFile {
        &self.files[0]
    }
}

/// A render farm, as Katana's `FarmAPI.BaseFarmPlugin` sees one.
///
/// Used as `Arc<dyn FarmPlugin>`: farms are chosen from configuration at run time and third
/// parties plug in their own. Every `# Behavior` bullet below is checked by the conformance
/// suite (`farm-conformance`). Conveniences built on these methods (waiting for a job) live
/// in [`FarmPluginExt`], so implementors cannot get them wrong.
#[async_trait]
pub trait FarmPlugin: Send + Sync + fmt::Debug + 'static {
    /// The adapter kind (`slurm`, `htcondor`, `http`, `local`, ...), used in messages.
    fn adapter(&self) -> &str;

    /// What this adapter supports. Constant for the adapter's lifetime.
    fn capabilities(&self) -> Capabilities;

    /// The farm's staging, installation metadata and render environment, answered from its
    /// farms-file entry. The four Katana methods below are provided on top of it, so an
    /// adapter hands its [`KatanaServices`] over here instead of implementing them; an
    /// adapter that answers them itself (its own asset store, an external program)
    /// overrides those methods and leaves this `None`.
    fn katana_services(&self) -> Option<&KatanaServices> {
        None
    }

    /// Creates a directory readable by the render nodes for one render context and returns
    /// its path (`createTempDirectory`). Provided: stages under the configured
    /// `staging_root` of [`katana_services`](FarmPlugin::katana_services).
    ///
    /// # Behavior
    /// - Calling it twice for one render context returns the same path.
    /// - Without the `stage_files` capability it returns `Unsupported`.
    async fn create_temp_directory(&self, render_context: Uuid) -> Result<String> {
        common_settings(self)
            .create_temp_directory(self.adapter(), render_context)
            .await
    }

    /// Copies local files where the render nodes can read them and maps each given path to
    /// its copy (`copyRenderFiles`). Provided, as `create_temp_directory`.
    ///
    /// # Behavior
    /// - Each copy has the same bytes as its source when the call returns.
    /// - A missing source fails with `InvalidRequest` naming it, and nothing is copied.
    /// - Without the `stage_files` capability it returns `Unsupported`.
    async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        common_settings(self)
            .copy_render_files(self.adapter(), files, render_context)
            .await
    }

    /// Describes the Katana installation on the render nodes (`getInstallationMetadata`).
    /// Provided: the `installation` of [`katana_services`](FarmPlugin::katana_services).
    ///
    /// # Behavior
    /// - Returns the configured metadata with the renderboot command resolved, or a
    ///   `Config` error saying it is not configured.
    async fn installation_metadata(&self) -> Result<InstallationMetadata> {
        match self.katana_services() {
            Some(services) => services.installation_metadata(),
            None => common_settings(self).installation_metadata(self.adapter()),
        }
    }

    /// Extra variables the render process needs (`getRenderEnvironment`). Provided: the
    /// `render_environment` of [`katana_services`](FarmPlugin::katana_services).
    ///
    /// # Behavior
    /// - Returns the configured variables (possibly none); never fails for a valid context.
    async fn render_environment(&self, render_context: Uuid) -> Result<BTreeMap<String, String>> {
        let _ = render_context; // the same variables for every render of a farm
        Ok(common_settings(self).render_environment())
    }

    /// The native job file(s) for a request, without submitting: the offline generator.
    ///
    /// # Behavior
    /// - Rendering the same request twice gives identical bytes.
    /// - An invalid request fails with `InvalidRequest` naming the field.
    /// - What `submit` sends for the request is what `render` returns.
    async fn render(&self, request: &JobRequest) -> Result<RenderedJob>;

    /// Submits a job and returns its id (`submitJob`).
    ///
    /// # Behavior
    /// - An invalid request fails with `InvalidRequest` before anything reaches the scheduler.
    /// - The new job is immediately visible to `job` in one of the five states.
    /// - Commands run in order; the first failing one fails the job with its exit code in
    ///   the reason, and later ones do not run.
    /// - The environment and working directory reach every command exactly.
    /// - Every frame runs; any failed frame fails the job.
    /// - With `idempotent_submit`, submitting a render context again returns the first job.
    /// - With `dependencies`, a job does not start before its dependencies complete.
    async fn submit(&self, request: &JobRequest) -> Result<JobId>;

    /// The job's state (`getJobState`).
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - Agrees with `job(id).state`.
    async fn job_state(&self, id: &JobId) -> Result<JobState> {
        Ok(self.job(id).await?.state)
    }

    /// Everything known about the job.
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - A job that finished, even one the scheduler forgot, reports a terminal state;
    ///   a job that vanished without a result is `Failed` with reason `lost`, never
    ///   `Completed`.
    /// - Garbage from the scheduler is a `Scheduler` error, never a made-up state.
    async fn job(&self, id: &JobId) -> Result<Job>;

    /// Jobs matching a filter (`getJobs`).
    ///
    /// # Behavior
    /// - Every returned job matches the filter (state, exact name, tag, submitted since).
    /// - A job submitted by this client and matching the filter is included.
    /// - Without the `list_jobs` capability it returns `Unsupported`.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// The render log's path, readable from this host, or `None` if there is none
    /// (`getRenderLogFilename`).
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - Once the job has run, the file exists and holds the commands' output.
    /// - Without the `render_log` capability it returns `Unsupported`.
    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>>;

    /// Reads the render log from a byte offset, for tailing.
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - Reading from 0 after the job ran returns its output; reading from `next_offset`
    ///   returns only what was added since.
    /// - `complete` is true only once the job is terminal and the log fully read.
    /// - Without the `read_log` capability it returns `Unsupported`.
    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk>;

    /// Starts the job if it is not running; a finished job runs again as a new attempt
    /// (`startJob`). Returns the id it now runs under (the same id whenever the scheduler
    /// allows it).
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - Starting a `Waiting` or `Running` job changes nothing.
    /// - Starting a `Failed`, `Cancelled` or `Completed` job runs it again with a higher
    ///   `attempt`, and it reaches a terminal state again.
    /// - Without the `start` capability it returns `Unsupported`.
    async fn start(&self, id: &JobId) -> Result<JobId>;

    /// Stops the job if it is not already stopped (`stopJob`).
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - A waiting or running job becomes `Cancelled`, and its processes are gone.
    /// - Stopping a finished job is a no-op: it keeps its state.
    /// - Without the `stop` capability it returns `Unsupported`.
    async fn stop(&self, id: &JobId) -> Result<()>;

    /// Runs again only the failed and cancelled tasks of a finished job, keeping its id and
    /// raising only those tasks' attempt (Deadline's "requeue failed tasks"). Returns the
    /// id the job now runs under.
    ///
    /// # Behavior
    /// - An unknown id gives `JobNotFound`.
    /// - Retrying a job with failed frames runs only those frames again; frames that
    ///   completed do not run again.
    /// - Retrying a job with no failed or cancelled task changes nothing.
    /// - Without the `retry_failed` capability it returns `Unsupported`.
    async fn retry_failed(&self, id: &JobId) -> Result<JobId> {
        let _ = id;
        Err(FarmError::unsupported("retry_failed", self.adapter()))
    }

    /// Asks the farm whether it accepts `request` and could ever run it, without creating
    /// a job (Slurm's `sbatch --test-only`, Flamenco's `POST /jobs/check`). Returns what the
    /// farm said: an estimated start and where, when the scheduler tells.
    ///
    /// Sends the request as `submit` would (the same job file), so what `check` accepts is
    /// what `submit` would send. A request that fails local validation fails the same way
    /// here, without asking the farm.
    ///
    /// # Behavior
    /// - A request the farm can never run fails with `InvalidRequest` in the scheduler's
    ///   own words, before anything is submitted. With `check_resources`, that includes a
    ///   request for more CPUs or memory than any node has (the suite asks for 100000 CPUs
    ///   and 64T of memory, the most local validation allows).
    /// - A request the farm can run passes.
    /// - Nothing is created: the jobs listed before and after are the same.
    /// - Without the `check` capability it returns `Unsupported`.
    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        let _ = request;
        Err(FarmError::unsupported("check", self.adapter()))
    }
}

/// The settings the provided Katana methods answer from: none configured (staging
/// unsupported, no installation, no variables) when the adapter hands no services over.
fn common_settings<P: FarmPlugin + ?Sized>(plugin: &P) -> &CommonSettings {
    static NONE: CommonSettings = CommonSettings {
        staging: None,
        installation: None,
        render_environment: BTreeMap::new(),
    };
    plugin
        .katana_services()
        .map_or(&NONE, KatanaServices::settings)
}

/// How [`FarmPluginExt::wait_until_finished`] polls.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long with `Unavailable`.
    pub timeout: Duration,
    /// First delay between polls; grows by half each poll up to `max_interval`.
    pub interval: Duration,
    /// Longest delay between polls.
    pub max_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(24 * 3600),
            interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
        }
    }
}

/// Conveniences on top of [`FarmPlugin`], implemented once for every adapter.
#[async_trait]
pub trait FarmPluginExt: FarmPlugin {
    /// Polls `job` until it is terminal, calling `on_update` with every record fetched.
    /// Transient `Unavailable` errors are retried until the timeout.
    async fn wait_until_finished(
        &self,
        id: &JobId,
        options: &WaitOptions,
        on_update: &mut (dyn for<'j> FnMut(&'j Job) + Send),
    ) -> Result<Job> {
        let deadline = tokio::time::Instant::now() + options.timeout;
        let mut interval = options.interval;
        loop {
            match self.job(id).await {
                Ok(job) => {
                    on_update(&job);
                    if job.state.is_terminal() {
                        return Ok(job);
                    }
                }
                Err(err) if err.is_retryable() => {
                    tracing::debug!(%id, error = %err, "poll failed, retrying");
                }
                Err(err) => return Err(err),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(FarmError::unavailable(format!(
                    "job {id} did not finish within {}",
                    humantime::format_duration(options.timeout)
                )));
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval + interval / 2).min(options.max_interval);
        }
    }

    /// Submits and waits for the job to finish.
    async fn submit_and_wait(&self, request: &JobRequest, options: &WaitOptions) -> Result<Job> {
        let id = self.submit(request).await?;
        self.wait_until_finished(&id, options, &mut |_| {}).await
    }
}

impl<T: FarmPlugin + ?Sized> FarmPluginExt for T {}
