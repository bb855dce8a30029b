//! What a check works with: the farm under test, a scratch directory shared with the jobs,
//! a run id every job is tagged with, and helpers that wait with deadlines.

use std::any::Any;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_core::{Capabilities, Command, FarmError, FarmPlugin, Job, JobId, JobRequest, JobState};
use uuid::Uuid;

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The adapter broke the contract clause; the message says how.
    Fail(String),
    /// The check cannot run against this farm (it needs scheduler fault injection, say).
    NotApplicable(String),
}

/// What a check returns.
pub type CheckResult = Result<(), Verdict>;

/// Fails the check with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::Verdict::Fail(format!($($arg)*)))
    };
}

/// Fails the check unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

/// Adds what was being done to a farm error, turning it into a failed check.
pub trait Context<T> {
    /// `Fail("<what>: <error>")` on error.
    fn context(self, what: &str) -> Result<T, Verdict>;
}

impl<T> Context<T> for Result<T, FarmError> {
    fn context(self, what: &str) -> Result<T, Verdict> {
        self.map_err(|e| Verdict::Fail(format!("{what}: {e}")))
    }
}

/// Hooks into a simulated or emulated scheduler, for checks that need the scheduler to
/// misbehave. Real farms have none; those checks report "not applicable" there.
#[async_trait]
pub trait SchedulerControl: Send + Sync {
    /// Makes the scheduler forget the job entirely, as if purged from every record.
    async fn forget(&self, id: &JobId);
    /// The next `count` replies from the scheduler are garbage.
    async fn garble_replies(&self, count: usize);
    /// The next `count` calls never get a reply (the adapter must time out). A call is one
    /// logical operation: an emulation should withhold every retry of it, or an adapter
    /// that retries timeouts would rightly recover.
    async fn stall_replies(&self, count: usize);
    /// The native payload of the most recent submission, as the scheduler received it.
    async fn last_submission(&self) -> Option<String>;
}

/// Tunables of a suite run.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// A directory both this process and the jobs can read and write (the same path on
    /// both sides). Probe jobs write what they observed here.
    pub shared_dir: PathBuf,
    /// How long a job may take to reach a state the check waits for.
    pub job_timeout: Duration,
    /// How long one check may take in all.
    pub check_timeout: Duration,
    /// Delay between polls.
    pub poll_interval: Duration,
}

impl SuiteSettings {
    /// Defaults: scratch under the system temp directory, 60 s per job, 180 s per check.
    pub fn new(shared_dir: impl Into<PathBuf>) -> SuiteSettings {
        SuiteSettings {
            shared_dir: shared_dir.into(),
            job_timeout: Duration::from_secs(60),
            check_timeout: Duration::from_secs(180),
            poll_interval: Duration::from_millis(50),
        }
    }
}

impl Default for SuiteSettings {
    fn default() -> Self {
        SuiteSettings::new(std::env::temp_dir().join("farm-conformance"))
    }
}

/// A farm to test plus what keeps it alive (servers, temp dirs), made by an adapter's test
/// factory.
pub struct TestFarm {
    /// The adapter under test.
    pub farm: Arc<dyn FarmPlugin>,
    /// Suite settings for this farm.
    pub settings: SuiteSettings,
    /// Fault injection, when the scheduler is simulated.
    pub control: Option<Arc<dyn SchedulerControl>>,
    /// Dropped after the checks: mock servers, temporary directories.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl TestFarm {
    /// A farm with default settings and no fault injection.
    pub fn new(farm: Arc<dyn FarmPlugin>) -> TestFarm {
        TestFarm {
            farm,
            settings: SuiteSettings::default(),
            control: None,
            guard: None,
        }
    }

    /// Sets the settings.
    pub fn with_settings(mut self, settings: SuiteSettings) -> TestFarm {
        self.settings = settings;
        self
    }

    /// Adds fault injection.
    pub fn with_control(mut self, control: Arc<dyn SchedulerControl>) -> TestFarm {
        self.control = Some(control);
        self
    }

    /// Keeps `guard` alive as long as the farm.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> TestFarm {
        self.guard = Some(Box::new(guard));
        self
    }
}

/// The tag every job of a run carries, so cleanup finds only those.
pub fn run_tag(run_id: Uuid) -> String {
    format!("conformance-run:{run_id}")
}

/// The context one check runs in.
pub struct Harness {
    farm: Arc<dyn FarmPlugin>,
    control: Option<Arc<dyn SchedulerControl>>,
    settings: SuiteSettings,
    run_id: Uuid,
    check_id: &'static str,
    scratch: PathBuf,
    created: Mutex<Vec<JobId>>,
}

impl Harness {
    /// A harness for check `check_id` of run `run_id`; creates its scratch directory.
    pub fn new(
        test_farm: &TestFarm,
        run_id: Uuid,
        check_id: &'static str,
    ) -> std::io::Result<Harness> {
        let scratch = test_farm
            .settings
            .shared_dir
            .join(run_id.to_string())
            .join(check_id);
        std::fs::create_dir_all(&scratch)?;
        Ok(Harness {
            farm: test_farm.farm.clone(),
            control: test_farm.control.clone(),
            settings: test_farm.settings.clone(),
            run_id,
            check_id,
            scratch,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The farm under test.
    pub fn farm(&self) -> &dyn FarmPlugin {
        self.farm.as_ref()
    }

    /// The farm's capabilities.
    pub fn caps(&self) -> Capabilities {
        self.farm.capabilities()
    }

    /// Fault injection, or `NotApplicable` for a real scheduler.
    pub fn control(&self) -> Result<&dyn SchedulerControl, Verdict> {
        self.control.as_deref().ok_or_else(|| {
            Verdict::NotApplicable("needs a simulated scheduler that can inject faults".into())
        })
    }

    /// The run's id.
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// Settings of the run.
    pub fn settings(&self) -> &SuiteSettings {
        &self.settings
    }

    /// A path in this check's scratch directory (shared with the jobs).
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// The check's scratch directory.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// A request tagged with the run id and named after the run and the check, running
    /// `commands`. The run id in the name keeps runs apart on schedulers that remember
    /// finished jobs: a re-run must never find the previous run's job by name.
    pub fn request(&self, label: &str, commands: Vec<Command>) -> JobRequest {
        let run = self.run_id.simple().to_string();
        let name = format!("conformance-{}-{}-{label}", &run[..8], self.check_id);
        let mut request = JobRequest::new(name, commands);
        request.tags.push(run_tag(self.run_id));
        request
    }

    /// `/bin/sh -c SCRIPT sh ARGS...`: a POSIX shell probe, its arguments passed as argv.
    pub fn sh(script: &str, args: &[&str]) -> Command {
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            "sh".to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Command::Argv(argv)
    }

    /// Submits, remembering the id for cleanup.
    pub async fn submit(&self, request: &JobRequest) -> Result<JobId, Verdict> {
        let id = self.farm.submit(request).await.context("submit")?;
        self.created.lock().expect("poisoned").push(id.clone());
        Ok(id)
    }

    /// Polls `probe` until it returns `Some`, or fails after the job timeout with a message
    /// saying what was awaited and what was last seen.
    ///
    /// A probe that is not done yet says what it saw: any text (keep waiting), or
    /// [`NotYet::error`] for a failed call. Waiting does not cure an error that is not
    /// retryable, so after [`HARD_ERRORS_BEFORE_GIVING_UP`] of them in a row, spanning at
    /// least [`HARD_ERRORS_WINDOW`], the wait fails at once, naming the error: a farm that
    /// cannot read its jobs is rejected in seconds rather than after the job timeout of
    /// every check.
    pub async fn wait_for<T, E, F, Fut>(&self, what: &str, mut probe: F) -> Result<T, Verdict>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<NotYet>,
    {
        let deadline = tokio::time::Instant::now() + self.settings.job_timeout;
        let mut last = String::from("(nothing yet)");
        let mut hard_streak: Option<(u32, tokio::time::Instant)> = None;
        loop {
            match probe().await.map_err(Into::into) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => hard_streak = None,
                Err(seen) => {
                    if seen.hard {
                        let (count, since) =
                            hard_streak.get_or_insert((0, tokio::time::Instant::now()));
                        *count += 1;
                        if *count >= HARD_ERRORS_BEFORE_GIVING_UP
                            && since.elapsed() >= HARD_ERRORS_WINDOW
                        {
                            fail!(
                                "gave up waiting for {what}: {count} non-retryable errors in a row over {:?}; last: {}",
                                since.elapsed(),
                                seen.message
                            );
                        }
                    } else {
                        hard_streak = None;
                    }
                    last = seen.message;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                fail!(
                    "timed out after {:?} waiting for {what}; last seen: {last}",
                    self.settings.job_timeout
                );
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Waits until the job is in a terminal state and returns its record.
    pub async fn wait_terminal(&self, id: &JobId) -> Result<Job, Verdict> {
        self.wait_for(&format!("job {id} to finish"), || async {
            match self.farm.job(id).await {
                Ok(job) if job.state.is_terminal() => Ok(Some(job)),
                Ok(job) => Err(NotYet::from(format!(
                    "{} ({:?})",
                    job.state, job.native_state
                ))),
                Err(e) => Err(NotYet::error(&e)),
            }
        })
        .await
    }

    /// Waits until the job reaches `state`.
    pub async fn wait_state(&self, id: &JobId, state: JobState) -> Result<Job, Verdict> {
        self.wait_for(&format!("job {id} to be {state}"), || async {
            match self.farm.job(id).await {
                Ok(job) if job.state == state => Ok(Some(job)),
                Ok(job) => Err(NotYet::from(format!(
                    "{} ({:?}, reason {:?})",
                    job.state, job.native_state, job.reason
                ))),
                Err(e) => Err(NotYet::error(&e)),
            }
        })
        .await
    }

    /// Waits until a file exists (probe jobs create files to say they ran).
    pub async fn wait_file(&self, path: &Path) -> Result<(), Verdict> {
        self.wait_for(&format!("{} to appear", path.display()), || async {
            Ok::<_, String>(path.exists().then_some(()))
        })
        .await
    }

    /// Waits until the job is terminal and checks it ended in `expected`.
    pub async fn expect_end(&self, id: &JobId, expected: JobState) -> Result<Job, Verdict> {
        let job = self.wait_terminal(id).await?;
        ensure!(
            job.state == expected,
            "job {id} ended {} (native {:?}, reason {:?}); expected {expected}",
            job.state,
            job.native_state,
            job.reason
        );
        Ok(job)
    }

    /// Stops every job this check created that is not finished. Touches nothing else.
    pub async fn cleanup(&self) {
        let ids: Vec<JobId> = self.created.lock().expect("poisoned").clone();
        for id in ids {
            if let Ok(job) = self.farm.job(&id).await
                && !job.state.is_terminal()
            {
                let _ = self.farm.stop(&id).await;
            }
        }
    }
}

/// Non-retryable errors in a row after which [`Harness::wait_for`] stops waiting.
pub const HARD_ERRORS_BEFORE_GIVING_UP: u32 = 3;

/// The least time those errors must span: a farm that is briefly wrong right after a
/// change is not condemned on one unlucky instant.
pub const HARD_ERRORS_WINDOW: Duration = Duration::from_secs(1);

/// What a [`Harness::wait_for`] probe saw when it was not done yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotYet {
    /// For the failure message.
    pub message: String,
    /// A failed call that waiting will not cure (a non-retryable [`FarmError`]).
    pub hard: bool,
}

impl NotYet {
    /// A failed call: hard unless the error is retryable.
    pub fn error(e: &FarmError) -> NotYet {
        NotYet {
            message: format!("error: {e}"),
            hard: !e.is_retryable(),
        }
    }
}

impl From<String> for NotYet {
    fn from(message: String) -> NotYet {
        NotYet {
            message,
            hard: false,
        }
    }
}

/// Reads a file the probe wrote, or an empty string.
pub fn read_probe(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
