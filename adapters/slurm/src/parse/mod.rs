//! Slurm's output -> job records, and job records -> [`Job`]. No I/O.
//!
//! Three sources describe a job, all reduced to [`TaskRecord`]s (one per array task, or
//! one per pending remainder of an array):
//! - `squeue --json` and slurmrestd's `GET .../jobs`, `GET .../job/{id}` (the same
//!   v0.0.38 job objects) while slurmctld still holds the job;
//! - `sacct -X -n -P` after slurmctld forgot it (`MinJobAge`), when accounting exists;
//! - the `jobcomp/filetxt` log, when configured.
//!
//! [`assemble`] folds a job's tasks into one [`Job`]: our job id is the array's id, and an
//! array is one job whose state is the combination of its tasks'.

use std::collections::BTreeMap;

use farm_core::tail::LogRead;
use farm_core::{FarmError, Job, JobId, JobState, Progress, Result};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::render::FarmComment;

mod archive;
mod states;
mod test_only;

pub use archive::{SACCT_FORMAT, parse_jobcomp, parse_sacct, sacct_is_disabled};
use states::lookup;
pub use states::{ExitStatus, NEVER_RUNS, SLURM_STATES, SlurmState, map_state, never_runs};
pub use test_only::parse_test_only;

/// Which task(s) of a job a record describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKey {
    /// A job that is not an array: its one task, index 0.
    Single,
    /// One array task.
    Index(u32),
    /// Array tasks not started yet, which Slurm keeps as one record (`2-3`, `0-9%2`).
    Pending(Vec<u32>),
}

/// One task (or pending group of tasks) of a job, from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The job id `submit` returned (the array's id for array tasks).
    pub master: u64,
    /// Which task(s).
    pub task: TaskKey,
    /// Slurm's job name.
    pub name: String,
    /// The job's comment (`farm=1;...` for ours).
    pub comment: String,
    /// Slurm's state word.
    pub state: String,
    /// Slurm's reason (`Priority`, `NonZeroExitCode`, `DependencyNeverSatisfied`), or empty.
    pub state_reason: String,
    /// How the processes ended.
    pub exit: ExitStatus,
    /// `scontrol requeue` count.
    pub restart_cnt: u32,
    /// Seconds since the epoch, 0 when unknown.
    pub submit: i64,
    /// Seconds since the epoch, 0 when unknown (an estimate while pending).
    pub start: i64,
    /// Seconds since the epoch, 0 when unknown (an estimate while active).
    pub end: i64,
    /// Slurm's output pattern for this task, when the source says (resolved by
    /// [`TaskRecord::log`] only when asked: most records of a poll never are).
    pub output: Option<OutputSpec>,
}

/// An output pattern and what expanding it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// `standard_output` as Slurm holds it (`/logs/%x-%j.log`, or empty for the default).
    pub pattern: String,
    /// The job's working directory (relative patterns and the default live there).
    pub cwd: String,
    /// This task's own job id (`%j`).
    pub job_id: u64,
    /// This task's array index (`%a`).
    pub task: Option<u32>,
}

impl TaskRecord {
    /// Whether this record belongs to job `id`.
    pub fn is_of(&self, id: u64) -> bool {
        self.master == id
    }

    /// The file this task writes its output to, when known.
    pub fn log(&self) -> Option<String> {
        let o = self.output.as_ref()?;
        resolve_output(
            &o.pattern,
            &o.cwd,
            o.job_id,
            self.master,
            o.task,
            &self.name,
        )
    }
}

fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One job object of `squeue --json` / slurmrestd v0.0.38 (only the fields we read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiJob {
    #[serde(deserialize_with = "null_default")]
    job_id: u64,
    #[serde(deserialize_with = "null_default")]
    array_job_id: u64,
    array_task_id: Option<u32>,
    #[serde(deserialize_with = "null_default")]
    array_task_string: String,
    #[serde(deserialize_with = "null_default")]
    name: String,
    #[serde(deserialize_with = "null_default")]
    comment: String,
    #[serde(deserialize_with = "null_default")]
    job_state: String,
    #[serde(deserialize_with = "null_default")]
    state_reason: String,
    exit_code: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    restart_cnt: u32,
    #[serde(deserialize_with = "null_default")]
    submit_time: i64,
    #[serde(deserialize_with = "null_default")]
    start_time: i64,
    #[serde(deserialize_with = "null_default")]
    end_time: i64,
    #[serde(deserialize_with = "null_default")]
    standard_output: String,
    #[serde(deserialize_with = "null_default")]
    current_working_directory: String,
}

/// One entry of slurmrestd's `errors[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ApiError {
    /// Short text (`Invalid job id specified`).
    #[serde(deserialize_with = "null_default")]
    pub error: String,
    /// Slurm's error number (2017 is an invalid job id).
    #[serde(alias = "error_code", deserialize_with = "null_default")]
    pub error_number: i64,
    /// Longer text (`Unable to find JobId=99999999`).
    #[serde(deserialize_with = "null_default")]
    pub description: String,
    /// The Slurm call that failed.
    #[serde(deserialize_with = "null_default")]
    pub source: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if !self.error.is_empty() {
            parts.push(self.error.clone());
        }
        if !self.description.is_empty() && self.description != self.error {
            parts.push(self.description.clone());
        }
        if !self.source.is_empty() {
            parts.push(format!("in {}", self.source));
        }
        write!(f, "{} (error {})", parts.join(": "), self.error_number)
    }
}

/// The errors and jobs of a v0.0.38 reply.
#[derive(Debug, Clone, Default)]
pub struct JobsReply {
    /// `errors[]`.
    pub errors: Vec<ApiError>,
    /// The task records, in reply order.
    pub records: Vec<TaskRecord>,
}

#[derive(Deserialize)]
struct RawReply {
    #[serde(default, deserialize_with = "null_default")]
    errors: Vec<ApiError>,
    #[serde(default, deserialize_with = "null_default")]
    jobs: Vec<ApiJob>,
}

fn garbage(
    what: &str,
    text: &str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> FarmError {
    let excerpt: String = text.chars().take(300).collect();
    FarmError::Scheduler {
        message: format!("unreadable {what}: {excerpt:?}"),
        source: Some(Box::new(err)),
    }
}

/// Parses `squeue --json` or a slurmrestd jobs reply. Anything that is not such a document
/// is a `Scheduler` error quoting it.
pub fn parse_jobs(text: &str) -> Result<JobsReply> {
    let raw: RawReply =
        serde_json::from_str(text).map_err(|e| garbage("Slurm job list", text, e))?;
    let records = raw.jobs.into_iter().map(record_from_api).collect();
    Ok(JobsReply {
        errors: raw.errors,
        records,
    })
}

/// Parses a reply that only carries `errors[]` (DELETE, or an error reply of any call).
pub fn parse_errors(text: &str) -> Result<Vec<ApiError>> {
    let raw: RawReply =
        serde_json::from_str(text).map_err(|e| garbage("slurmrestd reply", text, e))?;
    Ok(raw.errors)
}

/// The job id of a slurmrestd `job/submit` reply, or its errors when it made no job.
pub fn parse_submit_reply(text: &str) -> Result<std::result::Result<u64, Vec<ApiError>>> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default, deserialize_with = "null_default")]
        errors: Vec<ApiError>,
        job_id: Option<u64>,
    }
    let reply: Reply =
        serde_json::from_str(text).map_err(|e| garbage("slurmrestd submit reply", text, e))?;
    // A reply with a job id made a job, even when `errors[]` is not empty (a held job
    // comes back with "Job is in held state, pending scheduler release"): losing track of a
    // job that exists would be worse than ignoring a remark.
    match reply.job_id {
        Some(id) if id > 0 => {
            for e in &reply.errors {
                tracing::info!(job = id, remark = %e, "slurmrestd accepted the job with a remark");
            }
            Ok(Ok(id))
        }
        _ => Ok(Err(reply.errors)),
    }
}

/// The job id `sbatch --parsable` printed (`123`, or `123;cluster`).
pub fn parse_sbatch_parsable(stdout: &str) -> Result<u64> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let id = line.split(';').next().unwrap_or("");
    id.parse::<u64>().map_err(|_| {
        FarmError::scheduler(format!(
            "sbatch printed no job id: {:?}",
            stdout.chars().take(300).collect::<String>()
        ))
    })
}

fn record_from_api(j: ApiJob) -> TaskRecord {
    let master = if j.array_job_id != 0 {
        j.array_job_id
    } else {
        j.job_id
    };
    let task = match (j.array_job_id, j.array_task_id) {
        (0, _) => TaskKey::Single,
        (_, Some(t)) => TaskKey::Index(t),
        (_, None) => TaskKey::Pending(parse_task_ranges(&j.array_task_string)),
    };
    let output = Some(OutputSpec {
        pattern: j.standard_output,
        cwd: j.current_working_directory,
        job_id: j.job_id,
        task: j.array_task_id,
    });
    TaskRecord {
        master,
        task,
        name: j.name,
        comment: j.comment,
        state: j.job_state,
        state_reason: j.state_reason,
        exit: j.exit_code.map_or(ExitStatus::Unknown, ExitStatus::Raw),
        restart_cnt: j.restart_cnt,
        submit: j.submit_time,
        start: j.start_time,
        end: j.end_time,
        output,
    }
}

/// Task ids of an array expression: `2-3`, `0-9%2`, `1,3,5-7`, `[1-3]`.
pub fn parse_task_ranges(text: &str) -> Vec<u32> {
    let text = text.trim().trim_start_matches('[').trim_end_matches(']');
    let text = text.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, step) = match piece.split_once(':') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
            None => (piece, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    // Arrays are at most MaxArraySize (default 1001) long; never expand a
                    // typo into billions of entries.
                    out.extend((a..=b.min(a.saturating_add(4_000_000))).step_by(step as usize));
                }
            }
            None => out.extend(range.parse::<u32>().ok()),
        }
    }
    out
}

/// The file an output pattern names for one task, as slurmd would open it: `%%`, `%j`,
/// `%A`, `%a`, `%x` expanded; a pattern with a backslash has its backslashes removed and
/// nothing expanded; an empty one is Slurm's default `slurm-%j.out` in the working
/// directory (`slurm-%A_%a.out` for array tasks).
pub fn resolve_output(
    pattern: &str,
    cwd: &str,
    job_id: u64,
    master: u64,
    task: Option<u32>,
    name: &str,
) -> Option<String> {
    let pattern = if pattern.is_empty() {
        if cwd.is_empty() {
            return None;
        }
        match task {
            Some(_) => format!("{}/slurm-%A_%a.out", cwd.trim_end_matches('/')),
            None => format!("{}/slurm-%j.out", cwd.trim_end_matches('/')),
        }
    } else if !pattern.starts_with('/') && !cwd.is_empty() {
        format!("{}/{pattern}", cwd.trim_end_matches('/'))
    } else {
        pattern.to_owned()
    };
    if pattern.contains('\\') {
        return Some(pattern.replace('\\', ""));
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // An optional zero-padding width (`%5j`) is accepted and ignored.
        while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            chars.next();
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('j') => out.push_str(&job_id.to_string()),
            Some('A') => out.push_str(&master.to_string()),
            Some('a') => {
                out.push_str(&task.map_or_else(|| "4294967294".to_owned(), |t| t.to_string()))
            }
            Some('x') => out.push_str(name),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    Some(out)
}

/// Parses our `--comment` (see [`FarmComment`]); `None` for any other comment.
pub fn parse_comment(comment: &str) -> Option<FarmComment> {
    let mut fields = comment.split(';');
    if fields.next()? != "farm=1" {
        return None;
    }
    let mut ctx = None;
    let mut c = FarmComment {
        render_context: Uuid::nil(),
        attempt: 1,
        tasks: 1,
        chunk_size: 1,
        frames: 1,
        tags: vec![],
    };
    for field in fields {
        let (k, v) = field.split_once('=')?;
        match k {
            "ctx" => ctx = Uuid::parse_str(v).ok(),
            "attempt" => c.attempt = v.parse().ok()?,
            "tasks" => c.tasks = v.parse().ok()?,
            "chunk" => c.chunk_size = v.parse().ok()?,
            "frames" => c.frames = v.parse().ok()?,
            "tags" => {
                c.tags = v
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            _ => {} // fields from newer versions
        }
    }
    c.render_context = ctx?;
    Some(c)
}

/// What the adapter itself remembers about a job it submitted, used where Slurm's records
/// lack it (sacct and jobcomp carry no comment, and no output path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobHint {
    /// The request's name.
    pub name: Option<String>,
    /// The comment it was submitted with.
    pub comment: Option<FarmComment>,
    /// Its render log.
    pub log: Option<String>,
}

/// A job assembled from its task records.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembly {
    /// The job.
    pub job: Job,
    /// Tasks the comment says exist but no record mentions.
    pub missing: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct TaskView<'a> {
    state: JobState,
    /// The table row, `None` for a word the table does not know.
    row: Option<&'static SlurmState>,
    record: &'a TaskRecord,
}

impl TaskView<'_> {
    fn word(&self) -> &str {
        self.record.state.split_whitespace().next().unwrap_or("")
    }

    fn start(&self) -> i64 {
        if self.state == JobState::Waiting {
            0
        } else {
            self.record.start
        }
    }

    fn end(&self) -> i64 {
        if self.state.is_terminal() {
            self.record.end
        } else {
            0
        }
    }

    /// Why the task is in its state, in words (built only for the task that decides the
    /// job's reason).
    fn reason(&self) -> String {
        let r = self.record;
        let table_reason = match self.row {
            Some(row) => row.reason.to_owned(),
            None => map_state(&r.state).1,
        };
        let slurm_reason = match r.state_reason.as_str() {
            "" | "None" => None,
            other => Some(other),
        };
        match self.state {
            JobState::Waiting | JobState::Running => {
                // A pending reason meaning "never" is said in words, whatever else applies.
                if let Some(never) = slurm_reason.and_then(never_runs) {
                    return never;
                }
                match (table_reason.is_empty(), slurm_reason) {
                    (true, Some(sr)) => sr.to_owned(),
                    (false, Some(sr)) => format!("{table_reason} ({sr})"),
                    (_, None) => table_reason,
                }
            }
            JobState::Completed => String::new(),
            JobState::Cancelled => match slurm_reason {
                Some("DependencyNeverSatisfied") => {
                    "cancelled: a dependency did not complete (DependencyNeverSatisfied)".to_owned()
                }
                _ => table_reason,
            },
            JobState::Failed => {
                let exit = r.exit.describe();
                match (self.row.is_some_and(|row| row.name == "FAILED"), exit) {
                    (true, Some(exit)) => exit,
                    (false, Some(exit)) => format!("{table_reason}; {exit}"),
                    (_, None) => match slurm_reason {
                        Some(sr) => format!("{table_reason} ({sr})"),
                        None => table_reason,
                    },
                }
            }
        }
    }
}

fn task_view(r: &TaskRecord) -> TaskView<'_> {
    let row = lookup(&r.state);
    TaskView {
        state: row.map_or(JobState::Failed, |row| row.state),
        row,
        record: r,
    }
}

fn millis(secs: i64) -> Option<i64> {
    (secs > 0).then(|| secs * 1000)
}

/// Folds job `id`'s records (already filtered with [`TaskRecord::is_of`]) into one job.
///
/// The state: Running if any task runs, else Waiting if any waits, else (every task
/// finished) Failed if any failed, Cancelled if any was cancelled, Completed otherwise.
/// Tasks the comment announces but no record mentions are listed in
/// [`Assembly::missing`] (the caller looks further, and calls them lost if they stay
/// missing); while any are missing, a job whose known tasks all finished is reported by
/// the caller, not here.
pub fn assemble(id: u64, records: &[&TaskRecord], hint: &JobHint) -> Assembly {
    let comment = records
        .iter()
        .find_map(|r| parse_comment(&r.comment))
        .or_else(|| hint.comment.clone());
    let mut tasks: BTreeMap<u32, TaskView> = BTreeMap::new();
    for r in records {
        let view = task_view(r);
        match &r.task {
            TaskKey::Single => {
                tasks.insert(0, view);
            }
            TaskKey::Index(t) => {
                tasks.insert(*t, view);
            }
            TaskKey::Pending(list) => {
                for t in list {
                    tasks.entry(*t).or_insert(view);
                }
            }
        }
    }
    let expected = comment.as_ref().map_or(0, |c| c.tasks);
    let missing: Vec<u32> = (0..expected).filter(|t| !tasks.contains_key(t)).collect();
    let is_array = expected > 1 || tasks.keys().any(|t| *t > 0);
    let label = |t: u32| {
        if is_array {
            format!("chunk {t}: ")
        } else {
            String::new()
        }
    };

    let any = |s: JobState| tasks.values().any(|v| v.state == s);
    let state = if any(JobState::Running) {
        JobState::Running
    } else if any(JobState::Waiting) {
        JobState::Waiting
    } else if any(JobState::Failed) {
        JobState::Failed
    } else if any(JobState::Cancelled) {
        JobState::Cancelled
    } else if tasks.is_empty() {
        JobState::Failed
    } else {
        JobState::Completed
    };
    let deciding: Vec<(u32, &TaskView)> = tasks
        .iter()
        .filter(|(_, v)| v.state == state)
        .map(|(t, v)| (*t, v))
        .collect();
    let reason = match deciding.first().map(|(t, v)| (t, v.reason())) {
        Some((t, reason)) if !reason.is_empty() => {
            let more = deciding.len() - 1;
            let extra = if state == JobState::Failed && more > 0 {
                format!(" (and {more} more chunks failed)")
            } else {
                String::new()
            };
            Some(format!("{}{reason}{extra}", label(*t)))
        }
        _ if tasks.is_empty() => Some("lost: Slurm returned no task of this job".to_owned()),
        _ => None,
    };
    let mut words: BTreeMap<&str, usize> = BTreeMap::new();
    for v in tasks.values() {
        *words.entry(v.word()).or_default() += 1;
    }
    let native_state = match words.len() {
        0 => None,
        1 => words.keys().next().map(|w| (*w).to_owned()),
        _ => Some(
            words
                .iter()
                .map(|(w, n)| format!("{n} {w}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    let submit = tasks
        .values()
        .map(|v| v.record.submit)
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(0);
    let start = tasks
        .values()
        .map(|v| v.start())
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(0);
    let end = if state.is_terminal() {
        tasks.values().map(|v| v.end()).max().unwrap_or(0)
    } else {
        0
    };
    let restarts = tasks
        .values()
        .map(|v| v.record.restart_cnt)
        .max()
        .unwrap_or(0);
    let name = records
        .first()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| hint.name.clone())
        .unwrap_or_default();
    let progress = comment.as_ref().map(|c| {
        let done = tasks
            .iter()
            .filter(|(_, v)| v.state == JobState::Completed)
            .map(|(t, _)| {
                let first = u64::from(*t) * u64::from(c.chunk_size);
                c.frames.saturating_sub(first).min(u64::from(c.chunk_size))
            })
            .sum();
        Progress {
            frames_done: done,
            frames_total: c.frames,
        }
    });
    let job = Job {
        id: JobId::new(id.to_string()),
        name,
        state,
        native_state,
        reason,
        attempt: comment.as_ref().map_or(1, |c| c.attempt) + restarts,
        submit_time: millis(submit),
        start_time: millis(start),
        end_time: millis(end).filter(|_| state.is_terminal()),
        render_log_filename: hint
            .log
            .clone()
            .or_else(|| records.iter().find_map(|r| r.log())),
        render_context: comment.as_ref().map(|c| c.render_context),
        tags: comment.map(|c| c.tags).unwrap_or_default(),
        progress,
    };
    Assembly { job, missing }
}

/// What the log-reading command printed: the file's size, then the bytes read from the
/// offset, base64-encoded. `None` when the file does not exist (yet).
pub fn parse_log_read(stdout: &str) -> Result<Option<LogRead>> {
    use base64::Engine as _;
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    if first == "missing" {
        return Ok(None);
    }
    let size = first
        .strip_prefix("size ")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            FarmError::scheduler(format!("unexpected reply while reading a log: {:?}", first))
        })?;
    let data: String = lines.collect::<Vec<_>>().join("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| FarmError::Scheduler {
            message: "log bytes were not base64".into(),
            source: Some(Box::new(e)),
        })?;
    Ok(Some(LogRead { size, bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/slurm")
            .join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn job_of(records: &[TaskRecord], id: u64) -> Assembly {
        let mine: Vec<&TaskRecord> = records.iter().filter(|r| r.is_of(id)).collect();
        assemble(id, &mine, &JobHint::default())
    }

    #[test]
    fn every_state_code_squeue_documents_is_mapped() {
        let doc = fixture("squeue-job-state-codes.txt");
        let mut seen = 0;
        for line in doc.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [code, name, ..] = words[..]
                && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && code.chars().all(|c| c.is_ascii_uppercase())
                && code.len() <= 3
                && line.starts_with(' ')
                && name.len() > 2
            {
                seen += 1;
                let row = SLURM_STATES
                    .iter()
                    .find(|s| s.name == name)
                    .unwrap_or_else(|| panic!("{name} is not in SLURM_STATES"));
                assert_eq!(row.code, code, "{name}");
                assert_eq!(map_state(code).0, row.state);
            }
        }
        assert!(seen >= 24, "only {seen} codes found in the documented list");
        for (word, state) in [
            ("CANCELLED by 1000", JobState::Cancelled),
            ("REQUEUED", JobState::Waiting),
            ("PREEMPTED", JobState::Waiting),
            ("COMPLETING", JobState::Running),
            ("OOM", JobState::Failed),
        ] {
            assert_eq!(map_state(word).0, state, "{word}");
        }
        let (state, reason) = map_state("EXPLODED");
        assert_eq!(state, JobState::Failed);
        assert!(reason.contains("EXPLODED"), "{reason}");
    }

    #[test]
    fn squeue_json_maps_states_exit_codes_and_arrays() {
        let reply = parse_jobs(&fixture("cli/squeue-finished.json")).unwrap();
        assert!(reply.errors.is_empty());
        let failed = job_of(&reply.records, 3).job;
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (JobState::Failed, Some("exit code 1"))
        );
        assert_eq!(failed.native_state.as_deref(), Some("FAILED"));
        assert_eq!(
            failed.render_log_filename.as_deref(),
            Some("/tmp/slurm-lab/jobs/out/fail-3.out")
        );
        let cancelled = job_of(&reply.records, 4).job;
        assert_eq!(cancelled.state, JobState::Cancelled);
        let array = job_of(&reply.records, 2);
        assert_eq!(array.job.state, JobState::Completed);
        assert_eq!(array.job.name, "render-array");
        assert!(
            array.job.start_time <= array.job.end_time
                && array.job.submit_time <= array.job.start_time
        );
        // All three tasks (job ids 6, 7 and 2) belong to array 2; none is a job of its own.
        assert!(
            reply
                .records
                .iter()
                .filter(|r| r.is_of(6) || r.is_of(7))
                .count()
                == 0
        );
    }

    #[test]
    fn a_pending_array_remainder_counts_as_waiting_tasks() {
        let reply = parse_jobs(&fixture("rest/get-job-array-active.response.json")).unwrap();
        let a = job_of(&reply.records, 9);
        assert_eq!(a.job.state, JobState::Running);
        assert_eq!(a.job.native_state.as_deref(), Some("2 PENDING, 1 RUNNING"));
        assert_eq!(reply.records[0].task, TaskKey::Pending(vec![2, 3]));
        let early = parse_jobs(&fixture("cli/squeue-early.json")).unwrap();
        let pending = job_of(&early.records, 2).job;
        assert_eq!(pending.state, JobState::Waiting);
        assert_eq!(
            pending.start_time, None,
            "estimates of pending jobs are not start times"
        );
    }

    #[test]
    fn rest_replies_carry_raw_wait_statuses() {
        let failed = parse_jobs(&fixture("rest/get-job-FAILED.response.json")).unwrap();
        assert_eq!(
            job_of(&failed.records, 11).job.reason.as_deref(),
            Some("exit code 3")
        );
        let cancelled = parse_jobs(&fixture("rest/get-job-CANCELLED.response.json")).unwrap();
        assert_eq!(
            job_of(&cancelled.records, 12).job.state,
            JobState::Cancelled
        );
        let running = parse_jobs(&fixture("rest/get-job-RUNNING.response.json")).unwrap();
        let r = job_of(&running.records, 12).job;
        assert_eq!(
            (r.state, r.end_time),
            (JobState::Running, None),
            "end times of running jobs are estimates"
        );
        let unknown = parse_jobs(&fixture("rest/get-job-unknown.response.json")).unwrap();
        assert_eq!(unknown.errors[0].error_number, 2017);
        assert!(unknown.records.is_empty());
        let noenv = parse_submit_reply(&fixture("rest/submit-noenv.response.json"))
            .unwrap()
            .unwrap_err();
        assert_eq!(noenv[0].error, "environment must be set");
        assert_eq!(noenv[0].error_number, 2127);
        assert_eq!(
            parse_submit_reply(&fixture("rest/submit-basic.response.json"))
                .unwrap()
                .unwrap(),
            8
        );
    }

    #[test]
    fn exit_statuses_decode_both_encodings() {
        assert_eq!(
            ExitStatus::Raw(256).describe().as_deref(),
            Some("exit code 1")
        );
        assert_eq!(
            ExitStatus::Raw(768).describe().as_deref(),
            Some("exit code 3")
        );
        assert_eq!(
            ExitStatus::Raw(15).describe().as_deref(),
            Some("killed by signal 15")
        );
        assert_eq!(ExitStatus::Raw(0).describe(), None);
        assert_eq!(
            ExitStatus::Pair(3, 0).describe().as_deref(),
            Some("exit code 3")
        );
        assert_eq!(
            ExitStatus::Pair(0, 9).describe().as_deref(),
            Some("killed by signal 9")
        );
    }

    #[test]
    fn garbage_is_a_scheduler_error() {
        for text in ["<html>502</html>", "", "{\"jobs\": 3}", "\u{0}{\"ok\":"] {
            let err = parse_jobs(text).unwrap_err();
            assert_eq!(err.kind(), farm_core::ErrorKind::Scheduler, "{text:?}");
        }
    }

    #[test]
    fn comments_round_trip_and_foreign_comments_are_ignored() {
        let c = FarmComment {
            render_context: Uuid::parse_str("6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91").unwrap(),
            attempt: 3,
            tasks: 5,
            chunk_size: 2,
            frames: 10,
            tags: vec!["show:demo".into(), "a=b".into()],
        };
        assert_eq!(parse_comment(&c.encode()), Some(c));
        for foreign in [
            "",
            "my comment",
            "farm=2;ctx=x",
            "farm=1;ctx=not-a-uuid",
            "farm=1;attempt=x;ctx=6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91",
        ] {
            assert_eq!(parse_comment(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn attempts_progress_and_failures_of_arrays() {
        let c = FarmComment {
            render_context: Uuid::nil(),
            attempt: 2,
            tasks: 3,
            chunk_size: 4,
            frames: 10,
            tags: vec![],
        };
        let rec = |t: u32, state: &str, exit: i64| TaskRecord {
            master: 7,
            task: TaskKey::Index(t),
            name: "n".into(),
            comment: c.encode(),
            state: state.into(),
            state_reason: String::new(),
            exit: ExitStatus::Raw(exit),
            restart_cnt: 1,
            submit: 100,
            start: 110,
            end: 120,
            output: None,
        };
        let recs = [
            rec(0, "COMPLETED", 0),
            rec(1, "FAILED", 512),
            rec(2, "COMPLETED", 0),
        ];
        let a = job_of(&recs, 7);
        assert_eq!(a.job.state, JobState::Failed);
        assert_eq!(a.job.reason.as_deref(), Some("chunk 1: exit code 2"));
        assert_eq!(a.job.attempt, 3);
        assert_eq!(
            a.job.progress,
            Some(Progress {
                frames_done: 6,
                frames_total: 10
            })
        );
        let partial = job_of(&recs[..2], 7);
        assert_eq!(partial.missing, vec![2]);
    }

    #[test]
    fn a_pending_reason_meaning_never_is_said_in_words() {
        let rec = |reason: &str| TaskRecord {
            master: 8,
            task: TaskKey::Single,
            name: "n".into(),
            comment: String::new(),
            state: "PENDING".into(),
            state_reason: reason.into(),
            exit: ExitStatus::Unknown,
            restart_cnt: 0,
            submit: 100,
            start: 0,
            end: 0,
            output: None,
        };
        let never = job_of(&[rec("PartitionConfig")], 8).job;
        assert_eq!(never.state, JobState::Waiting);
        assert_eq!(
            never.reason.as_deref(),
            Some("can never run here: PartitionConfig — the partition cannot satisfy the request")
        );
        let busy = job_of(&[rec("Resources")], 8).job;
        assert_eq!(busy.reason.as_deref(), Some("Resources"));
        for (reason, why) in NEVER_RUNS {
            assert!(!why.is_empty() && !reason.contains(' '), "{reason}");
        }
    }

    #[test]
    fn sacct_and_jobcomp_records() {
        let sacct = fixture("acct/sacct-X-cli-jobs.txt");
        let body: String = sacct
            .lines()
            .skip(1)
            .map(|l| format!("{l}|||x\n"))
            .collect::<String>()
            .replace(
                "|||x",
                "|2026-11-22T11:35:30|2026-11-22T11:35:31|2026-11-22T11:35:32||name|with|bars",
            );
        let recs = parse_sacct(&body).unwrap();
        let failed = job_of(&recs, 3).job;
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (JobState::Failed, Some("exit code 1"))
        );
        assert_eq!(failed.name, "name|with|bars");
        assert_eq!(job_of(&recs, 4).job.state, JobState::Cancelled);
        assert_eq!(job_of(&recs, 2).job.state, JobState::Completed);
        assert!(parse_sacct("nonsense\n").is_err());
        assert!(sacct_is_disabled(
            &fixture("cli/sacct-without-slurmdbd.txt"),
            ""
        ));

        let comp = parse_jobcomp(&fixture("cli/jobcomp-filetxt.log"));
        let failed = job_of(&comp, 3).job;
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (JobState::Failed, Some("exit code 1"))
        );
        assert_eq!(failed.name, "render-fail");
        let array = job_of(&comp, 2);
        assert_eq!(array.job.state, JobState::Completed);
        assert_eq!(comp.iter().filter(|r| r.is_of(2)).count(), 3);
        let spaced = parse_jobcomp(
            "JobId=9 UserId=root(0) GroupId=root(0) Name=a b  c JobState=FAILED Partition=debug WorkDir=/x y ExitCode=2:0 \n",
        );
        assert_eq!(spaced[0].name, "a b  c");
        assert_eq!(spaced[0].exit, ExitStatus::Pair(2, 0));
    }

    #[test]
    fn output_patterns_resolve_like_slurmd() {
        assert_eq!(
            resolve_output("/l/a-%j-%A_%a-%%-%x.log", "", 5, 2, Some(1), "n").as_deref(),
            Some("/l/a-5-2_1-%-n.log")
        );
        assert_eq!(
            resolve_output("/l/b\\s/%j.log", "", 5, 5, None, "n").as_deref(),
            Some("/l/bs/%j.log")
        );
        assert_eq!(
            resolve_output("", "/w", 5, 5, None, "n").as_deref(),
            Some("/w/slurm-5.out")
        );
        assert_eq!(
            resolve_output("out.log", "/w", 5, 5, None, "n").as_deref(),
            Some("/w/out.log")
        );
        assert_eq!(parse_task_ranges("0-9%2"), (0..10).collect::<Vec<_>>());
        assert_eq!(parse_task_ranges("1,3,5-7"), vec![1, 3, 5, 6, 7]);
        assert_eq!(parse_task_ranges("[0-4:2]"), vec![0, 2, 4]);
    }

    #[test]
    fn sbatch_and_log_replies() {
        assert_eq!(parse_sbatch_parsable("42\n").unwrap(), 42);
        assert_eq!(parse_sbatch_parsable("42;lab\n").unwrap(), 42);
        assert!(parse_sbatch_parsable("Submitted batch job 1\n").is_err());
        assert_eq!(parse_log_read("missing\n").unwrap(), None);
        assert_eq!(
            parse_log_read("size 5\naGk=\n").unwrap(),
            Some(LogRead {
                size: 5,
                bytes: b"hi".to_vec()
            })
        );
        assert!(parse_log_read("garbage").is_err());
    }
}
