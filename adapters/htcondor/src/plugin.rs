//! [`CondorFarm`]: the [`FarmPlugin`] implementation, wiring render, client and parse.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use farm_core::{
    Capabilities, CommandRunner, CommonSettings, FarmError, FarmPlugin, FarmSpec,
    InstallationMetadata, Job, JobFilter, JobId, JobRequest, LocalRunner, LogChunk, RenderedJob,
    Result, SshRunner,
};
use uuid::Uuid;

use crate::client::{CondorCli, Constraint};
use crate::config::CondorSettings;
use crate::journal::{self, Entry, Journal};
use crate::parse::{self, Action, ActionOutcome, Judge, ProcAd};
use crate::render::{self, JobLayout, SUBMIT_FILE, attr};

/// The adapter's name in farms files.
pub const ADAPTER: &str = "htcondor";

/// A farm driven through HTCondor's command-line tools.
pub struct CondorFarm {
    name: String,
    settings: CondorSettings,
    common: CommonSettings,
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
            .field("name", &self.name)
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

impl CondorFarm {
    /// Builds farm `name` from its farms-file entry: settings checked, commands run locally
    /// or over ssh as configured.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<CondorFarm> {
        let settings = CondorSettings::from_spec(name, spec)?;
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
        Ok(CondorFarm::with_runner(
            name,
            settings,
            spec.common(),
            runner,
        ))
    }

    /// A farm running its commands through `runner` (a simulator in tests). Its journal is
    /// in `settings.state_directory` (or the per-farm default), shared with every other
    /// instance using that directory.
    pub fn with_runner(
        name: &str,
        settings: CondorSettings,
        common: CommonSettings,
        runner: Arc<dyn CommandRunner>,
    ) -> CondorFarm {
        CondorFarm {
            name: name.to_owned(),
            cli: CondorCli::new(runner, &settings),
            journal: journal::open(settings.journal_directory(name)),
            settings,
            common,
            submit_lock: tokio::sync::Mutex::new(()),
        }
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
        let finished = job.state.is_terminal().then_some(&job);
        if entry.finished.as_ref() != finished {
            self.journal.update(&entry.cluster, |e| {
                e.finished = finished.cloned();
                true
            });
        }
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
            stage_files: self.common.can_stage(),
            list_jobs: true,
            render_log: true,
            read_log: true,
            stop: true,
            start: true,
            // HTCondor has no "after cluster X" for a plain submit; `render` writes a DAGMan
            // description for such requests instead (docs/htcondor.md).
            dependencies: false,
            idempotent_submit: true,
        }
    }

    async fn create_temp_directory(&self, render_context: Uuid) -> Result<String> {
        self.common
            .create_temp_directory(ADAPTER, render_context)
            .await
    }

    async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        self.common
            .copy_render_files(ADAPTER, files, render_context)
            .await
    }

    async fn installation_metadata(&self) -> Result<InstallationMetadata> {
        self.common.installation_metadata(&self.name)
    }

    async fn render_environment(&self, _render_context: Uuid) -> Result<BTreeMap<String, String>> {
        Ok(self.common.render_environment())
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
        let layout = JobLayout::for_request(request, &self.settings);
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
        let terminal = job.state.is_terminal();
        let Some(path) = job.render_log_filename else {
            return Ok(LogChunk {
                data: String::new(),
                next_offset: offset,
                complete: terminal,
            });
        };
        read_from(&path, offset, terminal).await
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        let snapshot = self.snapshot_of(id).await?;
        let cluster = snapshot
            .job
            .id
            .as_str()
            .parse::<u32>()
            .map_err(|_| FarmError::job_not_found(id))?;
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
        let cluster = snapshot
            .job
            .id
            .as_str()
            .parse::<u32>()
            .map_err(|_| FarmError::job_not_found(id))?;
        let out = self.cli.act(Action::Remove, cluster).await?;
        match parse::parse_action(Action::Remove, cluster, &out)? {
            ActionOutcome::Done | ActionOutcome::NothingToDo => Ok(()),
        }
    }
}

/// Most bytes one `read_log` call returns; the caller continues from `next_offset`.
pub const LOG_CHUNK_BYTES: u64 = 1024 * 1024;

/// Reads at most [`LOG_CHUNK_BYTES`] of a log from `offset`. While the job runs, the bytes
/// of a UTF-8 character cut by a concurrent write (or by the size cap) are left for the next
/// read, so a tail never shows a broken character. Once the job is terminal and the read
/// reaches the end, nothing more will come: dangling bytes (a renderer killed mid-write,
/// binary output) are returned lossily and the log is `complete`, so a follower stops.
async fn read_from(path: &str, offset: u64, terminal: bool) -> Result<LogChunk> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let failed = |e| FarmError::io(format!("cannot read render log {path}"), e);
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogChunk {
                data: String::new(),
                next_offset: offset,
                complete: terminal,
            });
        }
        Err(e) => return Err(failed(e)),
    };
    let size = file.metadata().await.map_err(failed)?.len();
    let want = size.saturating_sub(offset).min(LOG_CHUNK_BYTES);
    let mut bytes = Vec::with_capacity(want as usize);
    if want > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(failed)?;
        file.take(want)
            .read_to_end(&mut bytes)
            .await
            .map_err(failed)?;
    }
    let reached_end = offset + bytes.len() as u64 >= size;
    let keep = if terminal && reached_end {
        bytes.len()
    } else {
        farm_core::utf8_complete_len(&bytes)
    };
    let next_offset = offset + keep as u64;
    Ok(LogChunk {
        data: String::from_utf8_lossy(&bytes[..keep]).into_owned(),
        next_offset,
        complete: terminal && next_offset >= size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_log_ending_inside_a_character_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.1.log");
        // A renderer killed in the middle of writing "€" (e2 82 ac).
        std::fs::write(&path, b"frame 1 \xff ok \xe2\x82").unwrap();
        let p = path.display().to_string();
        let running = read_from(&p, 0, false).await.unwrap();
        assert_eq!(
            (running.data.as_str(), running.next_offset, running.complete),
            ("frame 1 \u{fffd} ok ", 13, false)
        );
        let done = read_from(&p, running.next_offset, true).await.unwrap();
        assert_eq!(
            (done.data.as_str(), done.next_offset, done.complete),
            ("\u{fffd}", 15, true)
        );
        let whole = read_from(&p, 0, true).await.unwrap();
        assert_eq!(
            (whole.data.as_str(), whole.next_offset, whole.complete),
            ("frame 1 \u{fffd} ok \u{fffd}", 15, true)
        );
    }

    #[tokio::test]
    async fn one_read_returns_at_most_a_chunk_and_following_it_gets_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.2.log");
        // "é" (2 bytes) straddles the chunk boundary; the log is two and a half chunks.
        let chunk = LOG_CHUNK_BYTES as usize;
        let mut text = "a".repeat(chunk - 1);
        text.push('é');
        while text.len() < chunk * 5 / 2 {
            text.push_str("frame ✓ done\n");
        }
        std::fs::write(&path, &text).unwrap();
        let p = path.display().to_string();
        let first = read_from(&p, 0, true).await.unwrap();
        assert_eq!((first.data.len(), first.complete), (chunk - 1, false));
        let (mut got, mut offset, mut reads) = (first.data, first.next_offset, 1);
        loop {
            let next = read_from(&p, offset, true).await.unwrap();
            assert!(
                next.data.len() <= chunk,
                "{} bytes in one read",
                next.data.len()
            );
            got.push_str(&next.data);
            offset = next.next_offset;
            reads += 1;
            if next.complete {
                break;
            }
            assert!(reads < 10, "the log never completed");
        }
        assert_eq!(reads, 3);
        assert_eq!(got, text);
        assert_eq!(offset, text.len() as u64);
    }

    #[test]
    fn only_a_sequence_cut_at_the_end_is_held_back() {
        for (bytes, keep) in [
            (&b"abc"[..], 3),
            (b"", 0),
            (b"ab\xc3", 2),
            (b"ab\xe2\x82", 2),
            (b"ab\xf0\x9f\x8e", 2),
            (b"ab\xf0\x9f\x8e\xac", 6),
            (b"\xff\xe2\x82", 1),
            // Not the start of any character: shown lossily, never held back.
            (b"ab\xff", 3),
            (b"ab\xe0\x80", 4),
            (b"ab\x82", 3),
        ] {
            assert_eq!(farm_core::utf8_complete_len(bytes), keep, "{bytes:x?}");
        }
    }

    #[tokio::test]
    async fn log_reads_never_split_a_character() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.1.log");
        let text = "frame 1 é\n".as_bytes();
        std::fs::write(&path, &text[..text.len() - 2]).unwrap();
        let p = path.display().to_string();
        let first = read_from(&p, 0, false).await.unwrap();
        assert_eq!(first.data, "frame 1 ");
        assert!(!first.complete);
        std::fs::write(&path, text).unwrap();
        let rest = read_from(&p, first.next_offset, true).await.unwrap();
        assert_eq!(rest.data, "é\n");
        assert!(rest.complete);
        let missing = read_from("/nonexistent/render.log", 5, true).await.unwrap();
        assert_eq!(
            (missing.data.as_str(), missing.next_offset, missing.complete),
            ("", 5, true)
        );
    }

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
