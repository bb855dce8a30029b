//! `SlurmFarm`: the `FarmPlugin` for Slurm, wiring settings, rendering, the transports,
//! parsing and the journal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use farm_core::{
    Capabilities, CheckReport, CommandRunner, CommonSettings, FarmError, FarmPlugin, FarmSpec, Job,
    JobFilter, JobId, JobRequest, JobState, KatanaServices, LocalRunner, LogChunk, RenderedJob,
    Result, SshRunner, now_millis, tail,
};
use secrecy::SecretString;

use crate::client::{self, CliClient, RestClient};
use crate::config::{Accounting, SlurmSettings, Transport};
use crate::journal::{self, Entry, Journal};
use crate::parse::{self, JobHint, TaskKey, TaskRecord};
use crate::render::{self, FarmComment, RenderOptions};

/// The adapter's name in farms files.
pub const ADAPTER: &str = "slurm";

/// Most bytes one `read_log` call returns; tailing continues from `next_offset`.
pub use farm_core::tail::LOG_CHUNK_BYTES;

#[derive(Debug)]
enum Client {
    Cli(CliClient),
    Rest(std::result::Result<RestClient, String>),
}

fn rest_client(name: &str, settings: &SlurmSettings) -> Result<RestClient> {
    let user = settings
        .user_name
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .ok_or_else(|| {
            FarmError::config(format!(
                "farm {name}: settings.user_name is not set and neither is USER"
            ))
        })?;
    let token: SecretString = settings
        .token
        .clone()
        .or_else(|| std::env::var("SLURM_JWT").ok().filter(|t| !t.is_empty()).map(SecretString::from))
        .ok_or_else(|| {
            FarmError::config(format!(
                "farm {name}: no slurmrestd token: set settings.token or SLURM_JWT (`scontrol token` mints one)"
            ))
        })?;
    RestClient::new(
        &settings.url,
        &settings.api_version,
        &user,
        &token,
        settings.command_timeout,
    )
}

fn usable(rest: &std::result::Result<RestClient, String>) -> Result<&RestClient> {
    rest.as_ref()
        .map_err(|e| FarmError::config(e.trim_start_matches("configuration error: ").to_owned()))
}

/// A Slurm cluster, driven through its CLI (locally or over ssh) or slurmrestd.
#[derive(Debug)]
pub struct SlurmFarm {
    settings: SlurmSettings,
    render: RenderOptions,
    client: Client,
    /// REST with `check_with_cli`: the CLI that answers `check` (`sbatch --test-only`).
    check_cli: Option<CliClient>,
    katana: KatanaServices,
    journal: Journal,
    sacct_disabled: AtomicBool,
}

impl SlurmFarm {
    /// Builds farm `name` from its farms-file entry.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<SlurmFarm> {
        let settings: SlurmSettings = spec.settings_as(name)?;
        SlurmFarm::from_settings(name, settings, spec.common())
    }

    /// Builds a farm from settings, with the runner (local or ssh) or HTTP client they name.
    pub fn from_settings(
        name: &str,
        settings: SlurmSettings,
        common: CommonSettings,
    ) -> Result<SlurmFarm> {
        settings.validate(name)?;
        let runner: Arc<dyn CommandRunner> = match (&settings.ssh, &settings.slurm_conf) {
            (Some(ssh), _) => Arc::new(SshRunner::new(
                ssh.destination.clone(),
                ssh.options.clone(),
                settings.command_timeout,
            )),
            (None, Some(conf)) => Arc::new(
                LocalRunner::new(settings.command_timeout).with_env("SLURM_CONF", conf.clone()),
            ),
            (None, None) => Arc::new(LocalRunner::new(settings.command_timeout)),
        };
        SlurmFarm::with_runner(name, settings, common, runner)
    }

    /// Builds a farm whose CLI commands go through `runner` (tests use a simulated Slurm).
    pub fn with_runner(
        name: &str,
        settings: SlurmSettings,
        common: CommonSettings,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<SlurmFarm> {
        settings.validate(name)?;
        let check_cli =
            (settings.transport == Transport::Rest && settings.check_with_cli).then(|| {
                CliClient::new(
                    runner.clone(),
                    settings.bin_dir.clone(),
                    settings.command_timeout,
                )
            });
        let client = match settings.transport {
            Transport::Cli => Client::Cli(CliClient::new(
                runner,
                settings.bin_dir.clone(),
                settings.command_timeout,
            )),
            // A REST farm without credentials can still render (`farm render` works
            // offline); the missing setting is reported when slurmrestd is first needed.
            Transport::Rest => {
                Client::Rest(rest_client(name, &settings).map_err(|e| e.to_string()))
            }
        };
        let journal = Journal::in_state_directory(settings.journal_directory(name));
        Ok(SlurmFarm {
            render: RenderOptions::from(&settings),
            settings,
            client,
            check_cli,
            katana: KatanaServices::new(name, common),
            journal,
            sacct_disabled: AtomicBool::new(false),
        })
    }

    /// The farm's settings.
    pub fn settings(&self) -> &SlurmSettings {
        &self.settings
    }

    /// The CLI that answers `check`: the farm's own, or a REST farm's `check_with_cli`.
    fn test_only_cli(&self) -> Option<&CliClient> {
        match &self.client {
            Client::Cli(cli) => Some(cli),
            Client::Rest(_) => self.check_cli.as_ref(),
        }
    }

    fn adapter_id(id: &JobId) -> Result<u64> {
        let s = id.as_str();
        // Slurm ids are digits; anything else names no job of this farm.
        match s.parse::<u64>() {
            Ok(n) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && n > 0 => Ok(n),
            _ => Err(FarmError::job_not_found(id.clone())),
        }
    }

    /// Every task record slurmctld holds: one `squeue --json` or `GET jobs`.
    async fn snapshot(&self) -> Result<Vec<TaskRecord>> {
        let (text, source) = match &self.client {
            Client::Cli(cli) => (cli.squeue().await?, "squeue --json"),
            Client::Rest(rest) => (usable(rest)?.jobs().await?, "slurmrestd GET jobs"),
        };
        listed(&text, source, None)
    }

    /// The records of one job that slurmctld still holds (empty if none).
    async fn active_records(&self, id: &JobId, n: u64) -> Result<Vec<TaskRecord>> {
        match &self.client {
            Client::Cli(_) => Ok(self
                .snapshot()
                .await?
                .into_iter()
                .filter(|r| r.is_of(n))
                .collect()),
            Client::Rest(rest) => match usable(rest)?
                .job(id)
                .await
                .and_then(|text| listed(&text, "slurmrestd GET job", Some(id)))
            {
                Ok(records) => Ok(records.into_iter().filter(|r| r.is_of(n)).collect()),
                Err(FarmError::JobNotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            },
        }
    }

    /// Records of a job slurmctld forgot: sacct, then the jobcomp file (CLI only).
    async fn archived_records(&self, id: &JobId, n: u64) -> Result<Vec<TaskRecord>> {
        let Client::Cli(cli) = &self.client else {
            return Ok(Vec::new());
        };
        let use_sacct = match self.settings.accounting {
            Accounting::None => false,
            Accounting::Sacct => true,
            Accounting::Auto => !self.sacct_disabled.load(Ordering::Relaxed),
        };
        if use_sacct {
            match cli.sacct(id).await {
                Ok(Some(text)) => {
                    let records: Vec<TaskRecord> = parse::parse_sacct(&text)?
                        .into_iter()
                        .filter(|r| r.is_of(n))
                        .collect();
                    if !records.is_empty() {
                        return Ok(records);
                    }
                }
                Ok(None) if self.settings.accounting == Accounting::Auto => {
                    self.sacct_disabled.store(true, Ordering::Relaxed);
                }
                Ok(None) => {
                    return Err(FarmError::config(
                        "settings.accounting is sacct but Slurm accounting storage is disabled",
                    ));
                }
                Err(e) if self.settings.accounting == Accounting::Auto && !e.is_retryable() => {
                    tracing::debug!(error = %e, "sacct is not usable; not asking it again");
                    self.sacct_disabled.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(file) = &self.settings.jobcomp_file {
            match cli.jobcomp(file, id).await {
                Ok(text) => {
                    let records: Vec<TaskRecord> = parse::parse_jobcomp(&text)
                        .into_iter()
                        .filter(|r| r.is_of(n))
                        .collect();
                    if !records.is_empty() {
                        return Ok(dedupe_latest(records));
                    }
                }
                Err(e) => tracing::warn!(file, error = %e, "cannot read the jobcomp file"),
            }
        }
        Ok(Vec::new())
    }

    fn hint(&self, entry: Option<&Entry>) -> JobHint {
        match entry {
            None => JobHint::default(),
            Some(e) => JobHint {
                name: Some(e.name.clone()),
                comment: Some(FarmComment {
                    render_context: e.render_context,
                    attempt: e.attempt,
                    tasks: e.tasks,
                    chunk_size: e.chunk_size,
                    frames: e.frames,
                    tags: e.tags.clone(),
                }),
                log: e.log.clone(),
            },
        }
    }

    /// The job from whatever still describes it: slurmctld's records, then the archives,
    /// then what the journal last saw, else lost (ours) or not found (not ours).
    async fn resolve(&self, id: &JobId, n: u64, active: Vec<TaskRecord>) -> Result<Job> {
        let entry = self.journal.get(&n);
        let hint = self.hint(entry.as_ref());
        let mut records = active;
        if !records.is_empty() {
            let first = parse::assemble(n, &records.iter().collect::<Vec<_>>(), &hint);
            if first.missing.is_empty() || !first.job.state.is_terminal() {
                return Ok(self.remember(n, first.job));
            }
            // Some tasks ended long enough ago for slurmctld to forget them.
            let seen: BTreeSet<u32> = task_indices(&records);
            let archived = self.archived_records(id, n).await?;
            records.extend(
                archived
                    .into_iter()
                    .filter(|r| !task_indices(std::slice::from_ref(r)).is_subset(&seen)),
            );
            let again = parse::assemble(n, &records.iter().collect::<Vec<_>>(), &hint);
            return Ok(self.remember(n, with_lost_tasks(again)));
        }
        let archived = self.archived_records(id, n).await?;
        if !archived.is_empty() {
            let asm = parse::assemble(n, &archived.iter().collect::<Vec<_>>(), &hint);
            return Ok(self.remember(n, ended(with_lost_tasks(asm))));
        }
        match entry {
            Some(Entry {
                finished: Some(job),
                ..
            }) => Ok(job),
            Some(e) => {
                let mut job = Job::new(id.clone(), e.name.clone(), JobState::Failed);
                job.reason = Some("lost: Slurm has no record of this job any more and it was never seen finishing".into());
                job.attempt = e.attempt;
                job.submit_time = Some(e.submitted_ms);
                job.render_log_filename = e.log.clone();
                job.render_context = Some(e.render_context);
                job.tags = e.tags.clone();
                Ok(job)
            }
            None => Err(FarmError::job_not_found(id.clone())),
        }
    }

    /// Keeps the terminal state of a journaled job, for when Slurm forgets it.
    fn remember(&self, n: u64, job: Job) -> Job {
        if job.state.is_terminal() {
            self.journal.set_finished(&n, Some(&job));
        }
        job
    }

    async fn ensure_log_directory(&self, request: &JobRequest) -> Result<()> {
        let dir = render::log_directory(request, &self.render)?;
        let result = match &self.client {
            Client::Cli(cli) => cli.mkdir(&dir).await,
            Client::Rest(_) => client::mkdir_local(&dir).await,
        };
        if let Err(e) = result {
            // Slurm will say what is wrong with the directory when the job starts.
            tracing::warn!(dir = %dir, error = %e, "cannot create the log directory");
        }
        Ok(())
    }

    /// Sends a rendered job; returns Slurm's id.
    async fn send(&self, payload: &str) -> Result<u64> {
        match &self.client {
            Client::Cli(cli) => parse::parse_sbatch_parsable(&cli.sbatch(payload).await?),
            Client::Rest(rest) => {
                let text = usable(rest)?.submit(payload).await?;
                match parse::parse_submit_reply(&text)? {
                    Ok(id) => Ok(id),
                    Err(_) => Err(client::to_farm_error(
                        client::Failure::Http {
                            status: 200,
                            body: &text,
                        },
                        None,
                    )),
                }
            }
        }
    }

    fn journal_entry(&self, id: u64, request: &JobRequest, attempt: u32) -> Entry {
        let comment = FarmComment::for_request(request, attempt);
        Entry {
            id,
            name: request.name.clone(),
            render_context: request.render_context,
            tags: request.tags.clone(),
            tasks: comment.tasks,
            chunk_size: comment.chunk_size,
            frames: comment.frames,
            attempt,
            log: render::log_path(request, &self.render).ok(),
            request: Some(request.to_json()),
            submitted_ms: now_millis(),
            finished: None,
        }
    }

    /// A dependency must be a job of this farm that can still hold the dependent back:
    /// Slurm treats an id it does not know as satisfied.
    async fn check_dependencies(
        &self,
        request: &JobRequest,
        snapshot: &[TaskRecord],
    ) -> Result<()> {
        for (i, dep) in request.depends_on.iter().enumerate() {
            let n = SlurmFarm::adapter_id(dep).map_err(|_| {
                FarmError::invalid(
                    format!("depends_on[{i}]"),
                    format!("{dep} is not a Slurm job id"),
                )
            })?;
            if snapshot.iter().any(|r| r.is_of(n)) {
                continue;
            }
            match self.resolve(dep, n, Vec::new()).await {
                Ok(job) if job.state == JobState::Completed => {}
                Ok(job) => {
                    return Err(FarmError::invalid(
                        format!("depends_on[{i}]"),
                        format!(
                            "job {dep} ended {} and Slurm no longer holds it, so it cannot hold this job back",
                            job.state
                        ),
                    ));
                }
                Err(FarmError::JobNotFound { .. }) => {
                    return Err(FarmError::invalid(
                        format!("depends_on[{i}]"),
                        format!("there is no job {dep} on this farm"),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn resubmit(&self, id: &JobId, n: u64, job: &Job) -> Result<JobId> {
        let request = self
            .journal
            .get(&n)
            .and_then(|e| e.request)
            .ok_or_else(|| {
                FarmError::scheduler(format!(
                    "cannot run job {id} again: Slurm cannot requeue it and this host kept no copy of its request"
                ))
            })
            .and_then(|json| JobRequest::from_json_str(&json))?;
        let attempt = job.attempt + 1;
        let payload = render::render(&request, &self.render, attempt)?
            .main()
            .contents
            .clone();
        self.ensure_log_directory(&request).await?;
        let new = self.send(&payload).await?;
        self.journal
            .record(self.journal_entry(new, &request, attempt));
        Ok(JobId::new(new.to_string()))
    }
}

/// The records of a job listing. `errors[]` with no job means the listing failed (an
/// empty cluster lists no errors), mapped by `client::to_farm_error` like every failure
/// Slurm reports; errors beside records are remarks.
fn listed(text: &str, source: &str, id: Option<&JobId>) -> Result<Vec<TaskRecord>> {
    let reply = parse::parse_jobs(text)?;
    if reply.errors.is_empty() {
        return Ok(reply.records);
    }
    if reply.records.is_empty() {
        return Err(client::to_farm_error(
            client::Failure::Listing {
                source,
                errors: &reply.errors,
            },
            id,
        ));
    }
    for e in &reply.errors {
        tracing::debug!(source, remark = %e, "Slurm listed jobs with a remark");
    }
    Ok(reply.records)
}

/// Which task indices records cover.
fn task_indices(records: &[TaskRecord]) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for r in records {
        match &r.task {
            TaskKey::Single => {
                out.insert(0);
            }
            TaskKey::Index(t) => {
                out.insert(*t);
            }
            TaskKey::Pending(list) => out.extend(list.iter().copied()),
        }
    }
    out
}

/// Keeps the last record per task (jobcomp appends one line per run).
fn dedupe_latest(records: Vec<TaskRecord>) -> Vec<TaskRecord> {
    let mut by_task: BTreeMap<Option<u32>, TaskRecord> = BTreeMap::new();
    for r in records {
        let key = match &r.task {
            TaskKey::Index(t) => Some(*t),
            _ => None,
        };
        by_task.insert(key, r);
    }
    by_task.into_values().collect()
}

/// A job only the archives know has ended, whatever state they last recorded (a job
/// preempted under `PreemptMode=CANCEL` stays `PREEMPTED`): it will not run again by itself.
fn ended(mut job: Job) -> Job {
    if !job.state.is_terminal() {
        let was = job.native_state.clone().unwrap_or_default();
        let why = job
            .reason
            .take()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        job.reason = Some(format!(
            "ended as {was}{why}: Slurm no longer holds the job"
        ));
        job.state = JobState::Failed;
    }
    job
}

/// A finished job with tasks no source knows is Failed: those tasks were lost.
fn with_lost_tasks(asm: parse::Assembly) -> Job {
    let mut job = asm.job;
    if !asm.missing.is_empty() && job.state.is_terminal() {
        let list: Vec<String> = asm.missing.iter().map(u32::to_string).collect();
        job.reason = Some(format!(
            "lost: Slurm has no record of chunk(s) {}",
            list.join(", ")
        ));
        job.state = JobState::Failed;
    }
    job
}

#[async_trait]
impl FarmPlugin for SlurmFarm {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            stage_files: self.katana.can_stage(),
            // `scontrol requeue` of the failed elements; slurmrestd 0.0.38 has no requeue.
            retry_failed: matches!(self.client, Client::Cli(_)),
            // `sbatch --test-only` matches the job against the partition's nodes.
            check: self.test_only_cli().is_some(),
            check_resources: self.test_only_cli().is_some(),
            ..Capabilities::ALL
        }
    }

    fn katana_services(&self) -> Option<&KatanaServices> {
        Some(&self.katana)
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        // `render::render` validates the request before anything else.
        render::render(request, &self.render, 1)
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        request.validate()?;
        let payload = render::render(request, &self.render, 1)?
            .main()
            .contents
            .clone();
        if let Some(existing) = journal::by_context(&self.journal, request.render_context) {
            return Ok(JobId::new(existing.to_string()));
        }
        let snapshot = self.snapshot().await?;
        // Another client (or an earlier run of this one) may have submitted it already.
        let attached = snapshot
            .iter()
            .filter_map(|r| {
                parse::parse_comment(&r.comment)
                    .filter(|c| c.render_context == request.render_context)
                    .map(|c| (c.attempt, r.master))
            })
            .max();
        if let Some((attempt, id)) = attached {
            // Same render context, same job: remember it (and the request, so `start` can
            // submit it again once Slurm forgets it).
            self.journal
                .record(self.journal_entry(id, request, attempt));
            return Ok(JobId::new(id.to_string()));
        }
        self.check_dependencies(request, &snapshot).await?;
        self.ensure_log_directory(request).await?;
        let id = self.send(&payload).await?;
        self.journal.record(self.journal_entry(id, request, 1));
        Ok(JobId::new(id.to_string()))
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        let n = SlurmFarm::adapter_id(id)?;
        let active = self.active_records(id, n).await?;
        self.resolve(id, n, active).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let snapshot = self.snapshot().await?;
        let mut by_job: BTreeMap<u64, Vec<TaskRecord>> = BTreeMap::new();
        for r in snapshot {
            by_job.entry(r.master).or_default().push(r);
        }
        let mut jobs = Vec::new();
        for (n, records) in by_job {
            let id = JobId::new(n.to_string());
            jobs.push(self.resolve(&id, n, records).await?);
        }
        let listed: BTreeSet<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        for entry in self.journal.all() {
            let id = JobId::new(entry.id.to_string());
            if listed.contains(id.as_str())
                || filter
                    .since
                    .is_some_and(|s| entry.submitted_ms < s - 60_000)
            {
                continue;
            }
            let job = match &entry.finished {
                Some(job) => job.clone(),
                None => self.resolve(&id, entry.id, Vec::new()).await?,
            };
            jobs.push(job);
        }
        jobs.retain(|j| filter.matches(j));
        Ok(jobs)
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        Ok(self.job(id).await?.render_log_filename)
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        let job = self.job(id).await?;
        let terminal = job.state.is_terminal();
        let Some(path) = job.render_log_filename else {
            return Ok(tail::chunk(offset, None, terminal));
        };
        let read = match &self.client {
            Client::Cli(cli) => {
                parse::parse_log_read(&cli.read_log(&path, offset, LOG_CHUNK_BYTES).await?)?
            }
            Client::Rest(_) => tail::read_file(&path, offset, LOG_CHUNK_BYTES).await?,
        };
        Ok(tail::chunk(offset, read, terminal))
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        let n = SlurmFarm::adapter_id(id)?;
        let job = self.job(id).await?;
        if !job.state.is_terminal() {
            return Ok(id.clone());
        }
        match &self.client {
            Client::Cli(cli) => match cli.requeue(id).await {
                Ok(()) => {
                    self.journal.set_finished(&n, None);
                    Ok(id.clone())
                }
                // Slurm forgot the job (or cannot requeue it): submit it again.
                Err(e) => {
                    tracing::debug!(%id, error = %e, "requeue failed; submitting again");
                    self.resubmit(id, n, &job)
                        .await
                        .map_err(|again| match again {
                            FarmError::Scheduler { message, .. } => {
                                FarmError::scheduler(format!("{message} (requeue said: {e})"))
                            }
                            other => other,
                        })
                }
            },
            Client::Rest(_) => self.resubmit(id, n, &job).await,
        }
    }

    async fn retry_failed(&self, id: &JobId) -> Result<JobId> {
        let n = SlurmFarm::adapter_id(id)?;
        let Client::Cli(cli) = &self.client else {
            // Still JobNotFound for an unknown id, as the contract says.
            self.job(id).await?;
            return Err(FarmError::unsupported(
                "retry_failed",
                "slurm over slurmrestd (v0.0.38 has no requeue call; the CLI transport \
                 requeues the failed array elements)",
            ));
        };
        let job = self.job(id).await?;
        if !job.state.is_terminal() {
            // Its failed elements are retried once the job has finished.
            return Ok(id.clone());
        }
        let records = self.active_records(id, n).await?;
        let elements: Vec<String> = records
            .iter()
            .filter(|r| {
                matches!(
                    parse::map_state(&r.state).0,
                    JobState::Failed | JobState::Cancelled
                )
            })
            .filter_map(|r| match &r.task {
                TaskKey::Single => Some(n.to_string()),
                TaskKey::Index(i) => Some(format!("{n}_{i}")),
                TaskKey::Pending(_) => None,
            })
            .collect();
        if elements.is_empty() {
            if matches!(job.state, JobState::Failed | JobState::Cancelled) {
                return Err(FarmError::scheduler(format!(
                    "cannot retry the failed tasks of job {id}: Slurm no longer holds its \
                     elements (MinJobAge), so it cannot requeue them; `start` runs the whole \
                     job again"
                )));
            }
            // Nothing failed: nothing changes.
            return Ok(id.clone());
        }
        cli.requeue_elements(id, &elements).await?;
        self.journal.set_finished(&n, None);
        Ok(id.clone())
    }

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        let Some(cli) = self.test_only_cli() else {
            return Err(FarmError::unsupported(
                "check",
                "slurm (slurmrestd 0.0.38 has no test-only call; settings.check_with_cli: true \
                 asks sbatch --test-only instead)",
            ));
        };
        // Exactly the script `submit` sends (for REST, the script of the same plan as the
        // JSON body); `--test-only` creates nothing (no job, and no log directory: that is
        // made only when submitting).
        let script = render::sbatch_script(request, &self.render, 1)?;
        parse::parse_test_only(&cli.sbatch_test_only(&script).await?)
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        let job = self.job(id).await?;
        if job.state.is_terminal() {
            return Ok(());
        }
        match &self.client {
            Client::Cli(cli) => cli.scancel(id).await,
            Client::Rest(rest) => usable(rest)?.cancel(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_jobs_that_never_ended_are_failed_and_missing_chunks_lost() {
        let mut preempted = Job::new("5", "n", JobState::Waiting);
        preempted.native_state = Some("PREEMPTED".into());
        preempted.reason = Some("preempted".into());
        let job = ended(preempted);
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(
            job.reason.as_deref(),
            Some("ended as PREEMPTED (preempted): Slurm no longer holds the job")
        );
        let done = ended(Job::new("6", "n", JobState::Completed));
        assert_eq!(done.state, JobState::Completed);

        let asm = parse::Assembly {
            job: Job::new("7", "n", JobState::Completed),
            missing: vec![2, 3],
        };
        let job = with_lost_tasks(asm);
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(
            job.reason.as_deref(),
            Some("lost: Slurm has no record of chunk(s) 2, 3")
        );
    }

    #[test]
    fn ids_are_positive_decimal_numbers() {
        assert_eq!(SlurmFarm::adapter_id(&JobId::new("42")).unwrap(), 42);
        for bad in [
            "",
            "0",
            "42_1",
            "farm-conformance-no-such-job",
            "+4",
            " 4",
            "99999999999999999999999",
        ] {
            assert_eq!(
                SlurmFarm::adapter_id(&JobId::new(bad)).unwrap_err().kind(),
                farm_core::ErrorKind::JobNotFound,
                "{bad:?}"
            );
        }
    }
}
