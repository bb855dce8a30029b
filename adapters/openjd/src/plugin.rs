//! `OpenJdFarm`: the `FarmPlugin` for OpenJD bundles, run locally by `openjd run` or sent
//! to AWS Deadline Cloud with the `deadline` CLI.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use farm_core::journal::{Journal, JournalEntry};
use farm_core::tail::{self, LogRead};
use farm_core::{
    Capabilities, CheckReport, CommandRunner, CommonSettings, EpochMillis, FarmError, FarmPlugin,
    FarmSpec, Job, JobFilter, JobId, JobRequest, KatanaServices, LocalRunner, LogChunk,
    RenderedJob, Result, now_millis,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::{self, DeadlineCli, JobRecord, LocalRuns, new_local_id, write_bundle};
use crate::config::{OpenJdSettings, Transport};
use crate::parse;
use crate::render;

/// Most bytes one `read_log` call returns.
pub const LOG_CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// How long the deadline-cloud journal keeps a job.
const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// What the deadline-cloud transport remembers of a job it submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    /// Deadline Cloud's `job-...` id.
    pub id: String,
    /// The request's name.
    pub name: String,
    /// The request's render context.
    pub render_context: Uuid,
    /// The request's tags.
    pub tags: Vec<String>,
    /// When it was submitted.
    pub submitted_ms: EpochMillis,
    /// 1 + the times `start` requeued it.
    pub attempt: u32,
}

impl JournalEntry for Submitted {
    type Id = String;
    fn id(&self) -> String {
        self.id.clone()
    }
    fn recorded_ms(&self) -> EpochMillis {
        self.submitted_ms
    }
}

/// The adapter's name in farms files and messages.
pub const ADAPTER: &str = "openjd";

#[derive(Debug)]
enum Backend {
    Local {
        runs: LocalRuns,
        /// Runs `openjd check` (`check`).
        runner: Arc<dyn CommandRunner>,
        openjd: String,
    },
    Deadline {
        cli: DeadlineCli,
        journal: Journal<Submitted>,
        bundles: PathBuf,
    },
}

/// An Open Job Description farm.
#[derive(Debug)]
pub struct OpenJdFarm {
    katana: KatanaServices,
    backend: Backend,
}

impl OpenJdFarm {
    /// Builds farm `name` from its farms-file entry.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<OpenJdFarm> {
        let settings: OpenJdSettings = spec.settings_as(name)?;
        OpenJdFarm::from_settings(name, settings, spec.common())
    }

    /// Builds a farm from settings; the deadline-cloud transport runs the CLI locally.
    pub fn from_settings(
        name: &str,
        settings: OpenJdSettings,
        common: CommonSettings,
    ) -> Result<OpenJdFarm> {
        let runner = Arc::new(LocalRunner::new(settings.command_timeout));
        OpenJdFarm::with_runner(name, settings, common, runner)
    }

    /// Builds a farm whose `deadline` commands go through `runner` (tests replay recorded
    /// output through it).
    pub fn with_runner(
        name: &str,
        settings: OpenJdSettings,
        common: CommonSettings,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<OpenJdFarm> {
        settings.validate(name)?;
        let root = settings.data_root(name)?;
        let backend = match settings.transport {
            Transport::Local => Backend::Local {
                runs: LocalRuns::new(root, settings.openjd_bin.clone(), settings.stop_grace),
                runner,
                openjd: settings.openjd_bin.clone(),
            },
            Transport::DeadlineCloud => Backend::Deadline {
                cli: DeadlineCli::new(
                    runner,
                    settings.deadline_bin.clone(),
                    settings.farm_id.as_deref(),
                    settings.queue_id.as_deref(),
                    settings.profile.as_deref(),
                    settings.region.as_deref(),
                ),
                journal: Journal::open(Some(root.join("journal")), RETENTION),
                bundles: root.join("bundles"),
            },
        };
        Ok(OpenJdFarm {
            katana: KatanaServices::new(name, common),
            backend,
        })
    }

    fn local_job(&self, runs: &LocalRuns, id: &JobId) -> Result<Job> {
        let record = runs
            .record(id.as_str())
            .ok_or_else(|| FarmError::job_not_found(id.clone()))?;
        let facts = runs.facts(&record.id, record.attempt);
        let log_path = runs.log_path(&record.id, record.attempt);
        let log = if facts.exit.is_some_and(|(c, _)| c != 0) {
            client::log_tail(&log_path, 256 * 1024)
        } else {
            String::new()
        };
        let (state, reason, end) = parse::local_state(&facts, &log);
        let mut job = Job::new(id.clone(), record.name.clone(), state);
        job.native_state = Some(match facts.exit {
            Some((code, _)) => format!("openjd run exited {code}"),
            None if facts.started_ms.is_some() => "openjd run running".into(),
            None => "launched".into(),
        });
        job.reason = reason;
        job.attempt = record.attempt;
        job.submit_time = Some(record.submitted_ms);
        job.start_time = facts.started_ms.map(|s| s.max(record.submitted_ms));
        job.end_time = end.map(|e| e.max(job.start_time.unwrap_or(record.submitted_ms)));
        job.render_log_filename = Some(log_path.display().to_string());
        job.render_context = Some(record.render_context);
        job.tags = record.tags.clone();
        Ok(job)
    }

    async fn deadline_job(
        &self,
        cli: &DeadlineCli,
        journal: &Journal<Submitted>,
        id: &JobId,
    ) -> Result<Job> {
        if !parse::is_deadline_job_id(id.as_str()) {
            return Err(FarmError::job_not_found(id.clone()));
        }
        let text = cli.get(id).await?;
        let mut job = parse::deadline_job_record(&parse::parse_deadline_job(&text)?)?;
        if let Some(entry) = journal.get(&id.to_string()) {
            job.render_context = Some(entry.render_context);
            job.tags = entry.tags;
            job.attempt = job.attempt.max(entry.attempt);
            job.submit_time = job.submit_time.or(Some(entry.submitted_ms));
        }
        Ok(job)
    }

    fn unsupported(&self, operation: &'static str) -> FarmError {
        FarmError::unsupported(operation, format!("openjd ({})", self.katana.farm()))
    }
}

/// A chunk of a log held in memory (Deadline Cloud's logs come from the CLI), cut like a
/// log file read from `offset`.
fn chunk_of(bytes: &[u8], offset: u64, terminal: bool) -> LogChunk {
    let start = (offset as usize).min(bytes.len());
    let end = bytes.len().min(start + tail::LOG_CHUNK_BYTES as usize);
    let read = LogRead {
        size: bytes.len() as u64,
        bytes: bytes[start..end].to_vec(),
    };
    tail::chunk(start as u64, Some(read), terminal)
}

#[async_trait]
impl FarmPlugin for OpenJdFarm {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            stage_files: self.katana.can_stage(),
            list_jobs: true,
            render_log: matches!(self.backend, Backend::Local { .. }),
            read_log: true,
            stop: true,
            start: true,
            dependencies: false,
            idempotent_submit: true,
            retry_failed: false,
            // `openjd check` of the bundle (local); Deadline Cloud has no check call.
            check: matches!(self.backend, Backend::Local { .. }),
            // OpenJD knows no farm's resources: host requirements are matched by a fleet.
            check_resources: false,
            job_times: true,
        }
    }

    fn katana_services(&self) -> Option<&KatanaServices> {
        Some(&self.katana)
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        Ok(render::render(request)?.into_rendered())
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        let bundle = self.render(request).await?;
        match &self.backend {
            Backend::Local { runs, .. } => {
                if let Some(id) = runs.ids().into_iter().find(|id| {
                    runs.record(id)
                        .is_some_and(|r| r.render_context == request.render_context)
                }) {
                    return Ok(JobId::new(id));
                }
                let record = JobRecord {
                    id: new_local_id(),
                    name: request.name.clone(),
                    render_context: request.render_context,
                    tags: request.tags.clone(),
                    submitted_ms: now_millis(),
                    attempt: 1,
                    frames: request.frame_count(),
                };
                runs.create(&record, &bundle)?;
                runs.launch(&record.id, 1)?;
                Ok(JobId::new(record.id))
            }
            Backend::Deadline {
                cli,
                journal,
                bundles,
            } => {
                if let Some(e) = journal
                    .find(|e| e.render_context == request.render_context)
                    .into_iter()
                    .next()
                {
                    return Ok(JobId::new(e.id));
                }
                let dir = bundles.join(request.render_context.to_string());
                write_bundle(&dir, &bundle)?;
                let id = cli
                    .submit(&dir, render::deadline_priority(request.priority))
                    .await?;
                journal.record(Submitted {
                    id: id.clone(),
                    name: request.name.clone(),
                    render_context: request.render_context,
                    tags: request.tags.clone(),
                    submitted_ms: now_millis(),
                    attempt: 1,
                });
                Ok(JobId::new(id))
            }
        }
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        match &self.backend {
            Backend::Local { runs, .. } => self.local_job(runs, id),
            Backend::Deadline { cli, journal, .. } => self.deadline_job(cli, journal, id).await,
        }
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let ids: Vec<String> = match &self.backend {
            Backend::Local { runs, .. } => runs.ids(),
            // Only this client's jobs: a queue holds every submitter's.
            Backend::Deadline { journal, .. } => journal.all().into_iter().map(|e| e.id).collect(),
        };
        let mut out = Vec::new();
        for id in ids {
            match self.job(&JobId::new(id)).await {
                Ok(job) if filter.matches(&job) => out.push(job),
                Ok(_) | Err(FarmError::JobNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        match &self.backend {
            Backend::Local { .. } => Ok(self.job(id).await?.render_log_filename),
            Backend::Deadline { .. } => Err(self.unsupported("render_log_filename")),
        }
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        let job = self.job(id).await?;
        let terminal = job.state.is_terminal();
        match &self.backend {
            Backend::Local { .. } => {
                tail::read_log_file(job.render_log_filename.as_deref(), offset, terminal).await
            }
            Backend::Deadline { cli, .. } => {
                let text = cli.logs(id).await?;
                Ok(chunk_of(text.as_bytes(), offset, terminal))
            }
        }
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        let job = self.job(id).await?;
        if !job.state.is_terminal() {
            return Ok(id.clone());
        }
        match &self.backend {
            Backend::Local { runs, .. } => {
                let mut record = runs
                    .record(id.as_str())
                    .ok_or_else(|| FarmError::job_not_found(id.clone()))?;
                record.attempt += 1;
                runs.save(&record)?;
                runs.launch(&record.id, record.attempt)?;
            }
            Backend::Deadline { cli, journal, .. } => {
                cli.requeue(id).await?;
                journal.update(&id.to_string(), |e| {
                    e.attempt = e.attempt.max(job.attempt) + 1;
                    true
                });
            }
        }
        Ok(id.clone())
    }

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        let Backend::Local {
            runs,
            runner,
            openjd,
        } = &self.backend
        else {
            return Err(FarmError::unsupported(
                "check",
                format!(
                    "openjd ({}): the deadline-cloud transport has no check call (Deadline \
                     Cloud validates a template only when CreateJob creates the job; host \
                     requirements against the queue's fleets are not compared: see \
                     docs/openjd.md); `farm render` then `openjd check` validates the bundle",
                    self.katana.farm()
                ),
            ));
        };
        let bundle = self.render(request).await?;
        let dir = runs.check_dir();
        write_bundle(&dir, &bundle)?;
        let argv = vec![
            openjd.clone(),
            "check".to_owned(),
            dir.join("template.yaml").display().to_string(),
        ];
        let output = runner.run(&argv, None).await;
        let _ = std::fs::remove_dir_all(&dir);
        parse::openjd_check(&output?, &dir.join("template.yaml").display().to_string())
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        let job = self.job(id).await?;
        if job.state.is_terminal() {
            return Ok(());
        }
        match &self.backend {
            Backend::Local { runs, .. } => runs.stop(id.as_str(), job.attempt).await,
            Backend::Deadline { cli, .. } => cli.cancel(id).await,
        }
    }
}
