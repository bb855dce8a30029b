//! [`CondorFarm`]: the [`FarmPlugin`] implementation, wiring render, client and parse.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use farm_core::{
    Capabilities, CheckReport, CommandRunner, CommonSettings, FarmError, FarmPlugin, FarmSpec, Job,
    JobFilter, JobId, JobRequest, KatanaServices, LocalRunner, LogChunk, RenderedJob, Result,
    SshRunner, tail,
};
use uuid::Uuid;

use crate::client::{CondorCli, Constraint};
use crate::config::CondorSettings;
use crate::journal::{Entry, Journal};
use crate::parse::{self, Action, ActionOutcome, Judge, ProcAd};
use crate::render::{self, JobLayout, SUBMIT_FILE, attr};

/// The adapter's name in farms files.
pub const ADAPTER: &str = "htcondor";

/// A farm driven through HTCondor's command-line tools.
pub struct CondorFarm {
    settings: CondorSettings,
    katana: KatanaServices,
    cli: CondorCli,
    /// Clusters this host submitted, kept on disk for later processes: a job the scheduler
    /// forgot is reported lost rather than unknown, with what is needed to find its user log.
    journal: Journal,
    /// Submits run one at a time, so two submits of one render context make one job.
    submit_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CondorFarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CondorFarm")
            .field("name", &self.katana.farm())
            .field("cli", &self.cli)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// A cluster as found: its job record, the procs behind it and its job directory.
struct Snapshot {
    job: Job,
    procs: Vec<ProcAd>,
    layout: Option<JobLayout>,
}

impl Snapshot {
    /// The cluster the job now runs as (a restart runs under a new one).
    fn cluster(&self, id: &JobId) -> Result<u32> {
        self.job
            .id
            .as_str()
            .parse::<u32>()
            .map_err(|_| FarmError::job_not_found(id))
    }
}

impl CondorFarm {
    /// Builds farm `name` from its farms-file entry: settings checked, commands run locally
    /// or over ssh as configured.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<CondorFarm> {
        let settings = CondorSettings::from_spec(name, spec)?;
        CondorFarm::from_settings(name, settings, spec.common())
    }

    /// Builds a farm from settings, running commands locally or over ssh as they say.
    pub fn from_settings(
        name: &str,
        settings: CondorSettings,
        common: CommonSettings,
    ) -> Result<CondorFarm> {
        let runner: Arc<dyn CommandRunner> = match &settings.ssh {
            Some(ssh) => Arc::new(SshRunner::new(
                ssh.destination.clone(),
                ssh.options.clone(),
                settings.command_timeout,
            )),
            None => {
                let mut local = LocalRunner::new(settings.command_timeout);
                if let Some(config) = &settings.condor_config {
                    local = local.with_env("CONDOR_CONFIG", config.clone());
                }
                Arc::new(local)
            }
        };
        CondorFarm::with_runner(name, settings, common, runner)
    }

    /// A farm running its commands through `runner` (a simulator in tests). Its journal is
    /// in `settings.state_directory` (or the per-farm default), shared with every other
    /// instance using that directory.
    pub fn with_runner(
        name: &str,
        settings: CondorSettings,
        common: CommonSettings,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<CondorFarm> {
        Ok(CondorFarm {
            cli: CondorCli::new(runner, &settings),
            journal: Journal::in_state_directory(settings.journal_directory(name)),
            settings,
            katana: KatanaServices::new(name, common),
            submit_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &CondorSettings {
        &self.settings
    }

    fn judge(&self) -> Judge {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Judge {
            now,
            hold_timeout: self.settings.hold_timeout,
        }
    }

    fn tracked(&self, cluster: u32) -> Option<Entry> {
        self.journal.get(&cluster)
    }

    async fn query(&self, constraint: &Constraint) -> Result<Vec<ProcAd>> {
        let out = self.cli.query(constraint).await?;
        if !out.success() {
            return Err(parse::command_error("condor_q", &out));
        }
        parse::parse_ads("condor_q", &out.stdout)
    }

    async fn history(&self, constraint: &Constraint, limit: Option<usize>) -> Result<Vec<ProcAd>> {
        let out = self.cli.history(constraint, limit).await?;
        if !out.success() {
            return Err(parse::command_error("condor_history", &out));
        }
        parse::parse_ads("condor_history", &out.stdout)
    }

    /// Everything known about one cluster: the queue first, then the history for procs that
    /// left it, then the user log, then the journal; `None` when nothing knows it and the
    /// journal has no entry for it.
    async fn snapshot(&self, cluster: u32) -> Result<Option<Snapshot>> {
        let constraint = Constraint::cluster(cluster);
        let mut procs: BTreeMap<u32, ProcAd> = self
            .query(&constraint)
            .await?
            .into_iter()
            .filter(|p| p.cluster == cluster)
            .map(|p| (p.proc_id, p))
            .collect();
        let tracked = self.tracked(cluster);
        let expected = expected_procs(
            procs.values(),
            tracked.as_ref().map(Entry::identity).as_ref(),
        );
        if procs.is_empty() || procs.len() < expected {
            let limit = (expected > 0).then(|| expected - procs.len());
            for p in self.history(&constraint, limit).await? {
                if p.cluster == cluster {
                    procs.insert(p.proc_id, p);
                }
            }
        }
        self.complete(cluster, procs, tracked).await
    }

    /// Fills in procs missing from the queue and history from the user log, and builds the
    /// job record.
    async fn complete(
        &self,
        cluster: u32,
        mut procs: BTreeMap<u32, ProcAd>,
        entry: Option<Entry>,
    ) -> Result<Option<Snapshot>> {
        let tracked = entry.as_ref().map(Entry::identity);
        if procs.is_empty() && tracked.is_none() {
            return Ok(None);
        }
        let identity = procs
            .values()
            .next()
            .cloned()
            .or_else(|| tracked.clone())
            .expect("one of them is set");
        let layout = procs
            .values()
            .chain(tracked.iter())
            .find_map(|p| p.user_log.as_deref().and_then(JobLayout::from_user_log));
        let expected = expected_procs(procs.values(), tracked.as_ref()).max(procs.len());
        let mut missing: Vec<u32> = (0..expected as u32)
            .filter(|p| !procs.contains_key(p))
            .collect();
        if !missing.is_empty()
            && let Some(log) = &layout
        {
            let text = tokio::fs::read_to_string(log.user_log())
                .await
                .unwrap_or_default();
            let events = parse::parse_user_log(&text);
            missing.retain(|proc_id| match events.get(&(cluster, *proc_id)) {
                Some(record) if record.is_final() => {
                    procs.insert(
                        *proc_id,
                        with_identity(record.to_ad(cluster, *proc_id), &identity),
                    );
                    false
                }
                _ => true,
            });
        }
        let list: Vec<ProcAd> = procs.into_values().collect();
        let mut job = parse::cluster_job(cluster, &list, &missing, self.judge());
        if list.is_empty() {
            // Only our own record is left: name the job from it.
            let shell =
                parse::cluster_job(cluster, std::slice::from_ref(&identity), &[], self.judge());
            job.name = shell.name;
            job.tags = shell.tags;
            job.render_context = shell.render_context;
            job.attempt = shell.attempt;
            job.submit_time = shell.submit_time;
            job.render_log_filename = shell.render_log_filename;
        }
        if let Some(entry) = &entry {
            job = self.remember(entry, job, !missing.is_empty());
        }
        Ok(Some(Snapshot {
            job,
            procs: list,
            layout,
        }))
    }

    async fn snapshot_of(&self, id: &JobId) -> Result<Snapshot> {
        let cluster = parse::cluster_id(id).ok_or_else(|| FarmError::job_not_found(id))?;
        self.snapshot(cluster)
            .await?
            .ok_or_else(|| FarmError::job_not_found(id))
    }

    /// Polls many jobs with one `condor_q` call (and one `condor_history` call for the procs
    /// that left the queue), for callers that watch several jobs at once. Each id gets the
    /// answer `job` would give; a scheduler failure fails the whole poll.
    pub async fn poll(&self, ids: &[JobId]) -> Result<Vec<Result<Job>>> {
        let clusters: Vec<u32> = ids.iter().filter_map(parse::cluster_id).collect();
        let mut found: BTreeMap<u32, BTreeMap<u32, ProcAd>> = BTreeMap::new();
        if !clusters.is_empty() {
            let constraint = Constraint::clusters(&clusters);
            for p in self.query(&constraint).await? {
                found.entry(p.cluster).or_default().insert(p.proc_id, p);
            }
            let incomplete: Vec<u32> = clusters
                .iter()
                .copied()
                .filter(|c| {
                    let procs = found.get(c);
                    let tracked = self.tracked(*c).map(|e| e.identity());
                    let have = procs.map_or(0, BTreeMap::len);
                    have == 0
                        || have
                            < expected_procs(
                                procs.into_iter().flat_map(|p| p.values()),
                                tracked.as_ref(),
                            )
                })
                .collect();
            if !incomplete.is_empty() {
                for p in self
                    .history(&Constraint::clusters(&incomplete), None)
                    .await?
                {
                    if incomplete.contains(&p.cluster) {
                        // A proc in both left the queue between the calls: the history is newer.
                        found.entry(p.cluster).or_default().insert(p.proc_id, p);
                    }
                }
            }
        }
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(cluster) = parse::cluster_id(id) else {
                jobs.push(Err(FarmError::job_not_found(id)));
                continue;
            };
            let procs = found.get(&cluster).cloned().unwrap_or_default();
            let snapshot = self.complete(cluster, procs, self.tracked(cluster)).await?;
            jobs.push(
                snapshot
                    .map(|s| s.job)
                    .ok_or_else(|| FarmError::job_not_found(id)),
            );
        }
        Ok(jobs)
    }

    /// The newest cluster carrying a render context, if any: from the queue and the journal
    /// (which still knows jobs the history has dropped), else the history. Cluster ids grow,
    /// so the newest is the largest.
    async fn find_by_context(&self, context: Uuid) -> Result<Option<u32>> {
        let constraint = Constraint::render_context(context);
        let journaled = self
            .journal
            .find(|e| e.render_context == Some(context))
            .iter()
            .map(|e| e.cluster)
            .max();
        let mut found = self
            .query(&constraint)
            .await?
            .into_iter()
            .max_by_key(|p| p.cluster);
        if found.is_none() && journaled.is_none() {
            found = self
                .history(&constraint, Some(1))
                .await?
                .into_iter()
                .max_by_key(|p| p.cluster);
        }
        match found {
            Some(ad) if journaled.is_none_or(|j| ad.cluster > j) => {
                // Submitted by another host or an earlier, journal-less run: remember it, so
                // it is reported lost rather than unknown should every record of it go.
                if self.tracked(ad.cluster).is_none() {
                    self.track(ad.cluster, ad.clone());
                }
                Ok(Some(ad.cluster))
            }
            _ => Ok(journaled),
        }
    }

    fn track(&self, cluster: u32, identity: ProcAd) {
        self.journal
            .record(Entry::from_ad(cluster, &identity, self.judge().now));
    }

    /// Keeps the terminal state of a journaled cluster (or clears it when the job runs
    /// again), and answers with it once records of the job are missing: a finished job
    /// whose history and user log are gone is what it was, not lost.
    fn remember(&self, entry: &Entry, job: Job, incomplete: bool) -> Job {
        if incomplete {
            return match &entry.finished {
                Some(seen) if job.state.is_terminal() => seen.clone(),
                _ => job,
            };
        }
        self.journal
            .set_finished(&entry.cluster, job.state.is_terminal().then_some(&job));
        job
    }

    fn unsupported(&self, operation: &'static str) -> FarmError {
        FarmError::unsupported(operation, ADAPTER)
    }
}

/// How many procs a cluster has, from what the records say.
fn expected_procs<'a>(found: impl Iterator<Item = &'a ProcAd>, tracked: Option<&ProcAd>) -> usize {
    let mut expected = tracked.and_then(|t| t.tasks).unwrap_or(0).max(0) as usize;
    for p in found {
        expected = expected
            .max(p.tasks.unwrap_or(0).max(0) as usize)
            .max(p.proc_id as usize + 1);
    }
    expected
}

/// A proc rebuilt from the user log, with the job's identity copied from a sibling ad.
fn with_identity(mut ad: ProcAd, identity: &ProcAd) -> ProcAd {
    ad.farm_name = identity.farm_name.clone();
    ad.farm_tags = identity.farm_tags.clone();
    ad.render_context = identity.render_context.clone();
    ad.attempt = identity.attempt;
    ad.tasks = identity.tasks;
    ad.frames = identity.frames;
    ad.chunk_size = identity.chunk_size;
    ad.user_log = identity.user_log.clone();
    ad.batch_name = identity.batch_name.clone();
    ad.cmd = identity.cmd.clone();
    ad
}

/// What the adapter records about a job it submits, before the scheduler says anything.
fn identity_of(request: &JobRequest, layout: &JobLayout, attempt: i64, now: i64) -> ProcAd {
    ProcAd {
        farm_name: Some(request.name.clone()),
        farm_tags: Some(request.tags.join(",")),
        render_context: Some(request.render_context.to_string()),
        attempt: Some(attempt),
        tasks: Some(request.task_count() as i64),
        frames: Some(request.frames.as_ref().map_or(0, |f| f.len() as i64)),
        chunk_size: Some(i64::from(request.chunk_size)),
        user_log: Some(layout.user_log()),
        qdate: Some(now),
        ..ProcAd::default()
    }
}

#[async_trait]
impl FarmPlugin for CondorFarm {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            stage_files: self.katana.can_stage(),
            list_jobs: true,
            render_log: true,
            read_log: true,
            stop: true,
            start: true,
            // HTCondor has no "after cluster X" for a plain submit; `render` writes a DAGMan
            // description for such requests instead (docs/htcondor.md).
            dependencies: false,
            idempotent_submit: true,
            retry_failed: false,
            // Render (the adapter's own checks of what condor_submit would refuse) and
            // `condor_submit -dry-run` of the description submit sends.
            check: true,
            // No slot is consulted: the dry run does not match the job against machines.
            check_resources: false,
            job_times: true,
        }
    }

    fn katana_services(&self) -> Option<&KatanaServices> {
        Some(&self.katana)
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        render::render(request, &self.settings)
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        request.validate()?;
        if !request.depends_on.is_empty() {
            return Err(self.unsupported("submit with depends_on"));
        }
        let rendered = render::render(request, &self.settings)?;
        let layout = JobLayout::for_request(request, &self.settings.log_directory);
        let _one_at_a_time = self.submit_lock.lock().await;
        if let Some(existing) = self.find_by_context(request.render_context).await? {
            return Ok(JobId::new(existing.to_string()));
        }
        for file in &rendered.files {
            let out = self
                .cli
                .write_file(layout.dir(), &file.name, &file.contents, file.executable)
                .await?;
            if !out.success() {
                let what = format!("writing {}/{} on the submit host", layout.dir(), file.name);
                return Err(parse::command_error(&what, &out));
            }
        }
        let out = self.cli.submit(&rendered.main().contents).await?;
        if !out.success() {
            return Err(parse::command_error("condor_submit", &out));
        }
        let (cluster, procs) = parse::parse_terse(&out)?;
        if procs as usize != request.task_count() {
            tracing::warn!(
                cluster,
                procs,
                tasks = request.task_count(),
                "condor_submit made a different number of procs"
            );
        }
        self.track(cluster, identity_of(request, &layout, 1, self.judge().now));
        Ok(JobId::new(cluster.to_string()))
    }

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        request.validate()?;
        if !request.depends_on.is_empty() {
            return Err(self.unsupported("check with depends_on"));
        }
        // Everything the adapter itself refuses (values the submit language cannot carry)
        // is refused here, before asking condor_submit.
        let rendered = render::render(request, &self.settings)?;
        // The wrapper script (wrapper mode) is written only by submit: condor_submit would
        // refuse a transferred executable that does not exist yet, so the dry run alone
        // appends `transfer_executable = false` (docs/htcondor.md).
        let append = if rendered.files.iter().skip(1).any(|f| f.executable) {
            vec!["transfer_executable = false".to_owned()]
        } else {
            Vec::new()
        };
        let out = self.cli.dry_run(&rendered.main().contents, &append).await?;
        parse::parse_dry_run(&out)
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        Ok(self.snapshot_of(id).await?.job)
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut constraint = Constraint::farm_jobs();
        if let Some(tag) = &filter.tag {
            if farm_core::request::check_tag(tag).is_err() {
                return Ok(Vec::new());
            }
            constraint = constraint.and_tag(tag);
        }
        if let Some(name) = &filter.name {
            constraint = constraint.and_name(name);
        }
        if let Some(since) = filter.since {
            // QDate is in seconds; a job at second s was submitted at or after s*1000 ms.
            constraint = constraint.and_submitted_since(
                since.div_euclid(1000) + i64::from(since.rem_euclid(1000) != 0),
            );
        }
        let mut clusters: BTreeMap<u32, BTreeMap<u32, ProcAd>> = BTreeMap::new();
        for p in self.query(&constraint).await? {
            clusters.entry(p.cluster).or_default().insert(p.proc_id, p);
        }
        for p in self.history(&constraint, None).await? {
            clusters.entry(p.cluster).or_default().insert(p.proc_id, p);
        }
        let mut journaled: BTreeMap<u32, Entry> = self
            .journal
            .all()
            .into_iter()
            .map(|e| (e.cluster, e))
            .collect();
        let mut jobs = BTreeMap::new();
        for (cluster, procs) in clusters {
            let entry = journaled.remove(&cluster);
            if let Some(snapshot) = self.complete(cluster, procs, entry).await?
                && filter.matches(&snapshot.job)
            {
                jobs.insert(cluster, snapshot.job);
            }
        }
        // Journaled clusters neither the queue nor the history returned have left both,
        // unless the constraint excluded them: check what the entry says first.
        for (cluster, entry) in journaled {
            let excluded = filter.name.as_ref().is_some_and(|n| *n != entry.name)
                || filter.tag.as_ref().is_some_and(|t| !entry.tags.contains(t))
                // The entry is written just after condor_submit returns; QDate decides.
                || filter
                    .since
                    .is_some_and(|s| entry.submitted_ms < s - 60_000);
            if excluded {
                continue;
            }
            let job = match entry.finished.clone() {
                Some(job) => job,
                None => match self.complete(cluster, BTreeMap::new(), Some(entry)).await? {
                    Some(snapshot) => snapshot.job,
                    None => continue,
                },
            };
            if filter.matches(&job) {
                jobs.insert(cluster, job);
            }
        }
        Ok(jobs.into_values().collect())
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        Ok(self.snapshot_of(id).await?.job.render_log_filename)
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        let job = self.snapshot_of(id).await?.job;
        tail::read_log_file(
            job.render_log_filename.as_deref(),
            offset,
            job.state.is_terminal(),
        )
        .await
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        let snapshot = self.snapshot_of(id).await?;
        let cluster = snapshot.cluster(id)?;
        let held_in_queue = snapshot
            .procs
            .iter()
            .any(|p| p.status == 5 && !p.from_user_log);
        if !snapshot.job.state.is_terminal() {
            if held_in_queue {
                let out = self.cli.act(Action::Release, cluster).await?;
                parse::parse_action(Action::Release, cluster, &out)?;
            }
            return Ok(id.clone());
        }
        let Some(layout) = snapshot.layout else {
            return Err(FarmError::scheduler(format!(
                "job {id} has no farm job directory (no UserLog), so there is no submit file to run again"
            )));
        };
        if held_in_queue {
            // Held past hold_timeout: take the old procs out before the new attempt.
            let out = self.cli.act(Action::Remove, cluster).await?;
            parse::parse_action(Action::Remove, cluster, &out)?;
        }
        let attempt = i64::from(snapshot.job.attempt) + 1;
        let append = [
            format!("+{} = {attempt}", attr::ATTEMPT),
            format!("+{} = {cluster}", attr::RESTART_OF),
        ];
        let out = self
            .cli
            .resubmit(&layout.file(SUBMIT_FILE), &append)
            .await?;
        if !out.success() {
            return Err(parse::command_error("condor_submit", &out));
        }
        let (new_cluster, _) = parse::parse_terse(&out)?;
        let identity = snapshot
            .procs
            .first()
            .cloned()
            .or_else(|| self.tracked(cluster).map(|e| e.identity()))
            .unwrap_or_default();
        let identity = with_identity(
            ProcAd {
                qdate: Some(self.judge().now),
                ..ProcAd::default()
            },
            &ProcAd {
                attempt: Some(attempt),
                user_log: Some(layout.user_log()),
                ..identity
            },
        );
        self.track(new_cluster, identity);
        Ok(JobId::new(new_cluster.to_string()))
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        let snapshot = self.snapshot_of(id).await?;
        if snapshot.job.state.is_terminal() {
            return Ok(());
        }
        let cluster = snapshot.cluster(id)?;
        let out = self.cli.act(Action::Remove, cluster).await?;
        match parse::parse_action(Action::Remove, cluster, &out)? {
            ActionOutcome::Done | ActionOutcome::NothingToDo => Ok(()),
        }
    }
}

/// Most bytes one `read_log` call returns; the caller continues from `next_offset`.
pub use farm_core::tail::LOG_CHUNK_BYTES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_procs_take_the_largest_record() {
        let t = ProcAd {
            tasks: Some(4),
            ..ProcAd::default()
        };
        let found = [ProcAd {
            proc_id: 6,
            ..ProcAd::default()
        }];
        assert_eq!(expected_procs(found.iter(), Some(&t)), 7);
        assert_eq!(expected_procs([].iter(), Some(&t)), 4);
        assert_eq!(expected_procs([].iter(), None), 0);
    }
}
