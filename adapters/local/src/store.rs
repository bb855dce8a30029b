//! Durable queue state in SQLite: jobs, their tasks (one per chunk), attempts (one per time a
//! task is handed to an agent), agents, state transitions and idempotency keys.
//!
//! Every change is one transaction that also re-derives the job's state from its tasks
//! ([`crate::state::derive`]), so a crash between two statements cannot leave a job whose
//! record disagrees with its tasks. The database runs in WAL mode: a killed server loses
//! nothing that was acknowledged, and readers never wait for the writer.
//!
//! Agent liveness (when each agent was last heard from) is deliberately not stored: after a
//! restart every agent gets a fresh timeout to reconnect, which is what lets running tasks
//! be re-attached instead of requeued.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use farm_core::{Job, JobId, JobRequest, JobState, Progress, now_millis};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::state::{Derived, JobFacts, TaskCounts, TaskState, derive};

/// What can go wrong in a store operation; the server maps each to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No job with this id.
    #[error("job {0} not found")]
    JobNotFound(String),
    /// The request refers to something that does not exist or cannot be used.
    #[error("{field}: {problem}")]
    Invalid {
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The job's state or an earlier request forbids this.
    #[error("{0}")]
    Conflict(String),
    /// The agent or assignment is no longer valid (lost, revoked, unknown).
    #[error("{0}")]
    Gone(String),
    /// A log upload skipped bytes: the server has this many.
    #[error("log upload starts past byte {0}, which the server has not received")]
    LogGap(u64),
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A log file could not be written or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of a listing and, when there are more, the `(updated_at, id)` to continue after.
pub type Page = (Vec<JobRecord>, Option<(i64, i64)>);

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// How durable a commit is before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Survives the server being killed; the last moments may be lost on power failure.
    #[default]
    Normal,
    /// Every commit reaches the disk before the reply (slower).
    Full,
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Times a task may be handed to an agent (lost or interrupted runs count) before it
    /// fails.
    pub max_tries: u32,
    /// Commit durability.
    pub durability: Durability,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_tries: 3,
            durability: Durability::Normal,
        }
    }
}

/// A job as the protocol returns it: the shared record plus `updated_at` for delta polling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// The record every adapter returns.
    #[serde(flatten)]
    pub job: Job,
    /// When the record last changed (ms since the epoch; never decreases across changes).
    pub updated_at: i64,
}

/// A task handed to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// Identifies this run of the task; the agent quotes it in every report.
    pub assignment_id: i64,
    /// The job's id.
    pub job_id: String,
    /// The task (chunk) index, from 0.
    pub task_index: u32,
    /// The job's attempt (grows when a finished job is started again).
    pub attempt: u32,
    /// Which time this task is handed out within the attempt, from 1.
    pub r#try: u32,
    /// The job request, as submitted (canonical JSON object).
    pub request: serde_json::Value,
}

/// How an agent says a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum TaskReport {
    /// Every command exited 0.
    Succeeded,
    /// A command failed (`exit code N` in the reason), or the task could not run.
    Failed {
        /// Human-readable cause.
        reason: String,
        /// The failing command's exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// Stopped because the server asked (the job was stopped).
    Cancelled,
    /// Stopped because the agent itself was shutting down; the task is requeued.
    Interrupted,
}

/// Filters of a list call, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Any of these states (empty: all).
    pub states: Vec<JobState>,
    /// Exact name.
    pub name: Option<String>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Submitted at or after.
    pub since: Option<i64>,
    /// Changed at or after.
    pub updated_since: Option<i64>,
    /// Strictly after this `(updated_at, id)`.
    pub after: Option<(i64, i64)>,
    /// Page size.
    pub limit: u32,
}

/// What a log read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The bytes read (cut at a character boundary).
    pub data: Vec<u8>,
    /// Where to read next.
    pub next_offset: u64,
    /// The job is finished and everything was read.
    pub complete: bool,
}

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// The server's id for it.
    pub id: i64,
    /// Its chosen name.
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Its process id on that host.
    pub pid: i64,
    /// `local` (launched by this server) or `remote`.
    pub kind: String,
}

/// An agent as the web page shows it: whether it is alive and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// The server's id for it.
    pub id: i64,
    /// Its chosen name.
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Its process id on that host.
    pub pid: i64,
    /// `local` (launched by this server) or `remote`.
    pub kind: String,
    /// False once it is lost, stopped or replaced.
    pub alive: bool,
    /// When it registered.
    pub registered_at: i64,
    /// When it stopped being alive.
    pub ended_at: Option<i64>,
    /// The job it is running, if any.
    pub job_id: Option<String>,
    /// That job's name.
    pub job_name: Option<String>,
    /// The task (chunk) of that job.
    pub task: Option<i64>,
}

/// What registering an agent needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentHello {
    /// A name for people (`local-1`, `render07-0`).
    pub name: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i64,
    /// Whether the server launched it.
    #[serde(default)]
    pub local: bool,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
}

/// Parses our job ids: positive decimal integers without sign or leading zeros.
pub fn parse_job_id(id: &str) -> Option<i64> {
    let valid = !id.is_empty()
        && id.len() <= 18
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0');
    valid.then(|| id.parse().ok()).flatten()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    request TEXT NOT NULL,
    render_context TEXT NOT NULL,
    priority INTEGER NOT NULL,
    tags TEXT NOT NULL,
    state TEXT NOT NULL,
    native_state TEXT NOT NULL,
    reason TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    submit_time INTEGER NOT NULL,
    start_time INTEGER,
    end_time INTEGER,
    updated_at INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    task_count INTEGER NOT NULL,
    frames_total INTEGER,
    frames_done INTEGER NOT NULL DEFAULT 0,
    log_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name);
CREATE TABLE IF NOT EXISTS job_tags (
    tag TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (tag, job_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deps (
    job_id INTEGER NOT NULL,
    depends_on INTEGER NOT NULL,
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deps_reverse ON deps(depends_on, job_id);
CREATE TABLE IF NOT EXISTS tasks (
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    first_frame INTEGER,
    last_frame INTEGER,
    tries INTEGER NOT NULL DEFAULT 0,
    assignment_id INTEGER,
    reason TEXT,
    exit_code INTEGER,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks(priority DESC, job_id, idx) WHERE state = 'queued';
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    try INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    dispatched_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    reason TEXT,
    exit_code INTEGER,
    log_received INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS assignments_active ON assignments(agent_id) WHERE state IN ('dispatched', 'running');
CREATE TABLE IF NOT EXISTS agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    ended_at INTEGER,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    native_state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions(job_id);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
";

const JOB_COLUMNS: &str = "id, name, state, native_state, reason, attempt, submit_time, start_time, end_time, \
     updated_at, log_path, render_context, tags, frames_total, frames_done";

/// The queue's durable state. Methods block (SQLite and file I/O): call them from
/// `spawn_blocking`.
pub struct Store {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    clock: Mutex<i64>,
    liveness: Mutex<HashMap<i64, Instant>>,
    logs_dir: PathBuf,
    options: StoreOptions,
    /// Woken when a task becomes ready to run.
    pub work: Notify,
    /// Woken when a running task must be cancelled.
    pub control: Notify,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("logs_dir", &self.logs_dir)
            .finish_non_exhaustive()
    }
}

/// Side effects a transaction asks for once it has committed.
#[derive(Default)]
struct Effects {
    work: bool,
    control: bool,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, with job logs under `logs_dir`.
    pub fn open(path: &Path, logs_dir: &Path, options: StoreOptions) -> Result<Store> {
        let open = |path: &Path| -> Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(30))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let sync = match options.durability {
                Durability::Normal => "NORMAL",
                Durability::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", sync)?;
            Ok(conn)
        };
        let writer = open(path)?;
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", 1)?;
        let reader = open(path)?;
        let last: i64 =
            writer.query_row("SELECT COALESCE(MAX(updated_at), 0) FROM jobs", [], |r| {
                r.get(0)
            })?;
        std::fs::create_dir_all(logs_dir)
            .map_err(io_err(format!("cannot create {}", logs_dir.display())))?;
        Ok(Store {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            clock: Mutex::new(last),
            liveness: Mutex::new(HashMap::new()),
            logs_dir: logs_dir.to_path_buf(),
            options,
            work: Notify::new(),
            control: Notify::new(),
        })
    }

    /// A timestamp that never goes back, even if the wall clock does: delta polling relies
    /// on it.
    fn tick(&self) -> i64 {
        let mut clock = self.clock.lock().expect("clock poisoned");
        *clock = (*clock).max(now_millis());
        *clock
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>, &mut Effects) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().expect("writer poisoned");
        let tx = conn.transaction()?;
        let mut effects = Effects::default();
        let value = f(&tx, &mut effects)?;
        tx.commit()?;
        drop(conn);
        if effects.work {
            self.work.notify_waiters();
        }
        if effects.control {
            self.control.notify_waiters();
        }
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader.lock().expect("reader poisoned");
        f(&conn)
    }

    /// Holds the read connection, so tests can make every read wait.
    #[cfg(test)]
    pub(crate) fn hold_reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().expect("reader poisoned")
    }

    /// Prepares the state a previous run left: tasks handed out but never confirmed go back
    /// to the queue (their agent will be refused if it tries to start them), and every
    /// known agent gets a fresh timeout to reconnect.
    pub fn recover(&self) -> Result<usize> {
        let now = self.tick();
        let agents = self.write(|tx, fx| {
            let mut stmt = tx.prepare("SELECT id, job_id, idx FROM assignments WHERE state = 'dispatched'")?;
            let pending: Vec<(i64, i64, i64)> =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
            for (assignment, job, idx) in pending {
                tx.execute("UPDATE assignments SET state = 'revoked', ended_at = ?2 WHERE id = ?1", params![assignment, now])?;
                tx.execute(
                    "UPDATE tasks SET state = 'queued', tries = MAX(tries - 1, 0), assignment_id = NULL \
                     WHERE job_id = ?1 AND idx = ?2 AND assignment_id = ?3",
                    params![job, idx, assignment],
                )?;
                self.recompute(tx, job, now, fx)?;
                fx.work = true;
            }
            let mut stmt = tx.prepare("SELECT id FROM agents WHERE state = 'alive'")?;
            let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(ids)
        })?;
        let mut live = self.liveness.lock().expect("liveness poisoned");
        let now = Instant::now();
        for id in &agents {
            live.insert(*id, now);
        }
        Ok(agents.len())
    }

    // ----- jobs -----

    /// Stores a validated request. With an idempotency key seen before, returns that job
    /// (`false`: nothing created) if the body is the same, or a conflict if it differs.
    pub fn submit(
        &self,
        request: &JobRequest,
        key: Option<&str>,
        body: &str,
    ) -> Result<(JobRecord, bool)> {
        let canonical = serde_json::to_string(request).expect("a JobRequest always serialises");
        let (id, created) = self.write(|tx, fx| {
            if let Some(key) = key {
                let seen: Option<(i64, String)> = tx
                    .query_row("SELECT job_id, body FROM idempotency WHERE key = ?1", [key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((job, seen_body)) = seen {
                    if seen_body == body {
                        return Ok((job, false));
                    }
                    return Err(StoreError::Conflict(format!(
                        "the idempotency key was already used for job {job} with a different request"
                    )));
                }
            }
            let mut deps: Vec<i64> = Vec::new();
            for (i, dep) in request.depends_on.iter().enumerate() {
                let found = parse_job_id(dep.as_str())
                    .map(|d| tx.query_row("SELECT id FROM jobs WHERE id = ?1", [d], |r| r.get::<_, i64>(0)).optional())
                    .transpose()?
                    .flatten();
                match found {
                    Some(d) if !deps.contains(&d) => deps.push(d),
                    Some(_) => {}
                    None => {
                        return Err(StoreError::Invalid {
                            field: format!("depends_on[{i}]"),
                            problem: format!("there is no job {dep} on this queue"),
                        });
                    }
                }
            }
            let now = self.tick();
            let tasks = request.tasks();
            let tags = serde_json::to_string(&request.tags).expect("tags serialise");
            let frames_total = request.frames.as_ref().map(|f| f.len() as i64);
            tx.execute(
                "INSERT INTO jobs (name, request, render_context, priority, tags, state, native_state, submit_time, \
                 updated_at, task_count, frames_total, log_path) VALUES (?1, ?2, ?3, ?4, ?5, 'Waiting', 'QUEUED', ?6, ?6, ?7, ?8, '')",
                params![
                    request.name,
                    canonical,
                    request.render_context.to_string(),
                    request.priority,
                    tags,
                    now,
                    tasks.len() as i64,
                    frames_total
                ],
            )?;
            let id = tx.last_insert_rowid();
            let log_path = self.log_path_for(id, request)?;
            tx.execute("UPDATE jobs SET log_path = ?2 WHERE id = ?1", params![id, log_path.display().to_string()])?;
            for tag in &request.tags {
                tx.execute("INSERT OR IGNORE INTO job_tags (tag, job_id) VALUES (?1, ?2)", params![tag, id])?;
            }
            for dep in &deps {
                tx.execute("INSERT INTO deps (job_id, depends_on) VALUES (?1, ?2)", params![id, dep])?;
            }
            let (initial, reason) = Self::initial_task_state(tx, id)?;
            let mut insert = tx.prepare(
                "INSERT INTO tasks (job_id, idx, state, priority, frames, first_frame, last_frame, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for task in &tasks {
                let (count, first, last) = match &task.frames {
                    Some(f) => (f.len() as i64, Some(f.first()), Some(f.last())),
                    None => (1, None, None),
                };
                insert.execute(params![id, task.index, initial.as_str(), request.priority, count, first, last, reason])?;
            }
            if let Some(key) = key {
                tx.execute("INSERT INTO idempotency (key, job_id, body) VALUES (?1, ?2, ?3)", params![key, id, body])?;
            }
            self.recompute(tx, id, now, fx)?;
            fx.work |= initial == TaskState::Queued;
            Ok((id, true))
        })?;
        Ok((self.job(&id.to_string())?, created))
    }

    fn log_path_for(&self, id: i64, request: &JobRequest) -> Result<PathBuf> {
        match &request.log_directory {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Invalid {
                    field: "log_directory".into(),
                    problem: format!("the queue cannot create {dir}: {e}"),
                })?;
                Ok(Path::new(dir).join(format!("job-{id}.log")))
            }
            None => Ok(self.logs_dir.join(format!("{id}.log"))),
        }
    }

    /// Where a job's tasks start, given its dependencies: cancelled if one ended without
    /// completing, blocked while one is unfinished, queued otherwise.
    fn initial_task_state(tx: &Transaction<'_>, job: i64) -> Result<(TaskState, Option<String>)> {
        let mut stmt = tx.prepare("SELECT j.id, j.state FROM deps d JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ?1 ORDER BY j.id")?;
        let deps: Vec<(i64, String)> = stmt
            .query_map([job], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some((dep, state)) = deps.iter().find(|(_, s)| s == "Failed" || s == "Cancelled") {
            return Ok((
                TaskState::Cancelled,
                Some(format!("dependency {dep} ended {state}")),
            ));
        }
        if deps.iter().any(|(_, s)| s != "Completed") {
            return Ok((TaskState::Blocked, None));
        }
        Ok((TaskState::Queued, None))
    }

    /// Re-derives a job's state from its tasks, records a transition when it changed, and
    /// releases or cancels its dependents when it just finished.
    fn recompute(&self, tx: &Transaction<'_>, job: i64, now: i64, fx: &mut Effects) -> Result<()> {
        let mut pending = vec![job];
        while let Some(job) = pending.pop() {
            let (old_state, old_native, old_reason, stop, end_time, attempt, old_done): (String, String, Option<String>, bool, Option<i64>, i64, i64) =
                tx.query_row(
                    "SELECT state, native_state, reason, stop_requested, end_time, attempt, frames_done FROM jobs WHERE id = ?1",
                    [job],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                )?;
            let mut counts = TaskCounts::default();
            let mut task_count = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT state, COUNT(*) FROM tasks WHERE job_id = ?1 GROUP BY state",
                )?;
                let mut rows = stmt.query([job])?;
                while let Some(row) = rows.next()? {
                    let word: String = row.get(0)?;
                    let n: i64 = row.get(1)?;
                    task_count += n;
                    if let Some(state) = TaskState::parse(&word) {
                        counts.add(state, n as u64);
                    }
                }
            }
            let reason_of = |state: TaskState| -> Result<Option<(i64, String)>> {
                if counts.get(state) == 0 {
                    return Ok(None);
                }
                Ok(tx
                    .prepare_cached(
                        "SELECT idx, reason FROM tasks WHERE job_id = ?1 AND state = ?2 AND reason IS NOT NULL ORDER BY idx LIMIT 1",
                    )?
                    .query_row(params![job, state.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?)
            };
            let facts = JobFacts {
                stop_requested: stop,
                first_failure: reason_of(TaskState::Failed)?.map(|(idx, reason)| {
                    if task_count > 1 {
                        format!("task {idx}: {reason}")
                    } else {
                        reason
                    }
                }),
                cancel_reason: reason_of(TaskState::Cancelled)?.map(|(_, r)| r),
                requeue_reason: reason_of(TaskState::Queued)?.map(|(_, r)| r),
            };
            let Derived {
                state,
                native,
                reason,
            } = derive(&counts, &facts);
            let frames_done: i64 = if counts.get(TaskState::Done) == 0 {
                0
            } else {
                tx.prepare_cached("SELECT COALESCE(SUM(frames), 0) FROM tasks WHERE job_id = ?1 AND state = 'done'")?
                    .query_row([job], |r| r.get(0))?
            };
            let was_terminal = old_state
                .parse::<JobState>()
                .is_ok_and(JobState::is_terminal);
            let state_changed = old_state != state.as_str() || old_native != native;
            if !state_changed && old_reason == reason && old_done == frames_done {
                continue;
            }
            let end = if state.is_terminal() {
                Some(end_time.unwrap_or(now))
            } else {
                None
            };
            tx.execute(
                "UPDATE jobs SET state = ?2, native_state = ?3, reason = ?4, frames_done = ?5, end_time = ?6, updated_at = ?7 WHERE id = ?1",
                params![job, state.as_str(), native, reason, frames_done, end, now],
            )?;
            if state_changed {
                tx.execute(
                    "INSERT INTO transitions (job_id, at, attempt, state, native_state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![job, now, attempt, state.as_str(), native, reason],
                )?;
            }
            if state.is_terminal() && !was_terminal {
                let mut stmt =
                    tx.prepare_cached("SELECT job_id FROM deps WHERE depends_on = ?1")?;
                let dependents: Vec<i64> = stmt
                    .query_map([job], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for dependent in dependents {
                    if state == JobState::Completed {
                        let unfinished: i64 = tx.query_row(
                            "SELECT COUNT(*) FROM deps d JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ?1 AND j.state != 'Completed'",
                            [dependent],
                            |r| r.get(0),
                        )?;
                        if unfinished == 0 {
                            let n = tx.execute("UPDATE tasks SET state = 'queued' WHERE job_id = ?1 AND state = 'blocked'", [dependent])?;
                            fx.work |= n > 0;
                        }
                    } else {
                        tx.execute(
                            "UPDATE tasks SET state = 'cancelled', reason = ?2 WHERE job_id = ?1 AND state = 'blocked'",
                            params![dependent, format!("dependency {job} ended {state}")],
                        )?;
                    }
                    pending.push(dependent);
                }
            }
        }
        Ok(())
    }

    /// The job's record.
    pub fn job(&self, id: &str) -> Result<JobRecord> {
        let missing = || StoreError::JobNotFound(id.to_owned());
        let num = parse_job_id(id).ok_or_else(missing)?;
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([num], job_from_row)
                .optional()?
                .ok_or_else(missing)
        })
    }

    /// One page of jobs matching `query`, ordered by `(updated_at, id)`, and the cursor of
    /// the next page when there is one.
    pub fn list(&self, query: &ListQuery) -> Result<Page> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if !query.states.is_empty() {
            sql.push_str(&format!(
                " AND state IN ({})",
                vec!["?"; query.states.len()].join(", ")
            ));
            args.extend(query.states.iter().map(|s| Value::Text(s.as_str().into())));
        }
        if let Some(name) = &query.name {
            sql.push_str(" AND name = ?");
            args.push(Value::Text(name.clone()));
        }
        if let Some(tag) = &query.tag {
            sql.push_str(" AND id IN (SELECT job_id FROM job_tags WHERE tag = ?)");
            args.push(Value::Text(tag.clone()));
        }
        if let Some(since) = query.since {
            sql.push_str(" AND submit_time >= ?");
            args.push(Value::Integer(since));
        }
        if let Some(since) = query.updated_since {
            sql.push_str(" AND updated_at >= ?");
            args.push(Value::Integer(since));
        }
        if let Some((at, id)) = query.after {
            sql.push_str(" AND (updated_at, id) > (?, ?)");
            args.push(Value::Integer(at));
            args.push(Value::Integer(id));
        }
        sql.push_str(" ORDER BY updated_at, id LIMIT ?");
        args.push(Value::Integer(i64::from(query.limit) + 1));
        let mut jobs = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), job_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let next = if jobs.len() > query.limit as usize {
            jobs.truncate(query.limit as usize);
            jobs.last()
                .map(|j| (j.updated_at, parse_job_id(j.job.id.as_str()).unwrap_or(0)))
        } else {
            None
        };
        Ok((jobs, next))
    }

    /// Jobs not finished yet (Waiting or Running).
    pub fn unfinished_jobs(&self) -> Result<u64> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('Waiting', 'Running')",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// Stops a job: a finished job is left alone; unstarted tasks are cancelled at once and
    /// agents running the others are told to stop them.
    pub fn stop(&self, id: &str) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        self.write(|tx, fx| {
            let state: String = tx
                .query_row("SELECT state FROM jobs WHERE id = ?1", [num], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if state.parse::<JobState>().is_ok_and(JobState::is_terminal) {
                return Ok(());
            }
            let now = self.tick();
            tx.execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?1", [num])?;
            tx.execute(
                "UPDATE assignments SET state = 'revoked', ended_at = ?2 WHERE job_id = ?1 AND state = 'dispatched'",
                params![num, now],
            )?;
            tx.execute(
                "UPDATE tasks SET state = 'cancelled', reason = ?2 WHERE job_id = ?1 AND state IN ('blocked', 'queued', 'dispatched')",
                params![num, crate::state::STOPPED_BY_USER],
            )?;
            self.recompute(tx, num, now, fx)?;
            fx.control = true;
            Ok(())
        })?;
        self.job(id)
    }

    /// Starts a job: a finished one runs again as a new attempt (its log is kept and
    /// continues); a waiting or running one is left alone; one still stopping is a conflict.
    pub fn start(&self, id: &str) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        self.write(|tx, fx| {
            let (state, native, attempt, log_path): (String, String, i64, String) = tx
                .query_row("SELECT state, native_state, attempt, log_path FROM jobs WHERE id = ?1", [num], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if native == "STOPPING" {
                return Err(StoreError::Conflict(format!("job {id} is still stopping; start it once it is Cancelled")));
            }
            if !state.parse::<JobState>().is_ok_and(JobState::is_terminal) {
                return Ok(());
            }
            let now = self.tick();
            let (initial, reason) = Self::initial_task_state(tx, num)?;
            tx.execute(
                "UPDATE jobs SET attempt = attempt + 1, stop_requested = 0, start_time = NULL, end_time = NULL WHERE id = ?1",
                [num],
            )?;
            tx.execute(
                "UPDATE tasks SET state = ?2, tries = 0, assignment_id = NULL, reason = ?3, exit_code = NULL WHERE job_id = ?1",
                params![num, initial.as_str(), reason],
            )?;
            append_to_log(Path::new(&log_path), format!("farm: attempt {} queued\n", attempt + 1).as_bytes())?;
            self.recompute(tx, num, now, fx)?;
            fx.work |= initial == TaskState::Queued;
            Ok(())
        })?;
        self.job(id)
    }

    /// Reads a job's render log from `offset`, at most `limit` bytes, cut so that no UTF-8
    /// character is split at the end.
    pub fn read_log(&self, id: &str, offset: u64, limit: usize) -> Result<LogRead> {
        let record = self.job(id)?;
        let path = record.job.render_log_filename.clone().unwrap_or_default();
        let mut data = Vec::new();
        let len = match std::fs::File::open(&path) {
            Ok(mut file) => {
                let len = file
                    .metadata()
                    .map_err(io_err(format!("cannot read {path}")))?
                    .len();
                if offset < len {
                    file.seek(SeekFrom::Start(offset))
                        .map_err(io_err(format!("cannot read {path}")))?;
                    file.take(limit as u64)
                        .read_to_end(&mut data)
                        .map_err(io_err(format!("cannot read {path}")))?;
                }
                len
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(format!("cannot read {path}"))(e)),
        };
        if let Err(e) = std::str::from_utf8(&data)
            && e.error_len().is_none()
            && e.valid_up_to() > 0
        {
            data.truncate(e.valid_up_to());
        }
        let next_offset = offset + data.len() as u64;
        let complete = record.job.state.is_terminal() && next_offset >= len;
        Ok(LogRead {
            data,
            next_offset: next_offset.max(offset),
            complete,
        })
    }

    // ----- agents -----

    /// Registers an agent and returns its id.
    pub fn register_agent(&self, hello: &AgentHello) -> Result<i64> {
        let now = self.tick();
        let id = self.write(|tx, _| {
            tx.execute(
                "INSERT INTO agents (name, hostname, pid, kind, state, registered_at, version) VALUES (?1, ?2, ?3, ?4, 'alive', ?5, ?6)",
                params![hello.name, hello.hostname, hello.pid, if hello.local { "local" } else { "remote" }, now, hello.version],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        self.touch(id);
        Ok(id)
    }

    fn touch(&self, agent: i64) {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .insert(agent, Instant::now());
    }

    /// Notes that an agent was heard from; `Gone` if it is not (or no longer) registered.
    pub fn agent_seen(&self, agent: i64) -> Result<()> {
        let mut live = self.liveness.lock().expect("liveness poisoned");
        match live.get_mut(&agent) {
            Some(at) => {
                *at = Instant::now();
                Ok(())
            }
            None => Err(StoreError::Gone(format!(
                "agent {agent} is not registered (lost, stopped, or unknown); register again"
            ))),
        }
    }

    /// Agents registered and not lost.
    pub fn agents(&self) -> Result<Vec<AgentInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, name, hostname, pid, kind FROM agents WHERE state = 'alive' ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(AgentInfo { id: r.get(0)?, name: r.get(1)?, hostname: r.get(2)?, pid: r.get(3)?, kind: r.get(4)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Live agents, and those that ended since `ended_since` (ms), with what each runs.
    pub fn agent_statuses(&self, ended_since: i64) -> Result<Vec<AgentStatus>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT a.id, a.name, a.hostname, a.pid, a.kind, a.state = 'alive', a.registered_at, a.ended_at,
                        s.job_id, j.name, s.idx
                 FROM agents a
                 LEFT JOIN assignments s ON s.agent_id = a.id AND s.state IN ('dispatched', 'running')
                 LEFT JOIN jobs j ON j.id = s.job_id
                 WHERE a.state = 'alive' OR a.ended_at >= ?1
                 ORDER BY a.state = 'alive' DESC, a.id",
            )?;
            let rows = stmt.query_map([ended_since], |r| {
                Ok(AgentStatus {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    hostname: r.get(2)?,
                    pid: r.get(3)?,
                    kind: r.get(4)?,
                    alive: r.get(5)?,
                    registered_at: r.get(6)?,
                    ended_at: r.get(7)?,
                    job_id: r.get::<_, Option<i64>>(8)?.map(|id| id.to_string()),
                    job_name: r.get(9)?,
                    task: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Hands the next ready task (highest priority, then oldest job, then lowest chunk) to
    /// `agent`, or `None` when nothing is ready.
    pub fn lease(&self, agent: i64) -> Result<Option<Assignment>> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let next: Option<(i64, i64, i64)> = tx
                .prepare_cached("SELECT job_id, idx, tries FROM tasks WHERE state = 'queued' ORDER BY priority DESC, job_id, idx LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((job, idx, tries)) = next else { return Ok(None) };
            let now = self.tick();
            let (attempt, request): (i64, String) =
                tx.query_row("SELECT attempt, request FROM jobs WHERE id = ?1", [job], |r| Ok((r.get(0)?, r.get(1)?)))?;
            tx.prepare_cached(
                "INSERT INTO assignments (job_id, idx, attempt, try, agent_id, state, dispatched_at) VALUES (?1, ?2, ?3, ?4, ?5, 'dispatched', ?6)",
            )?
            .execute(params![job, idx, attempt, tries + 1, agent, now])?;
            let assignment = tx.last_insert_rowid();
            tx.prepare_cached("UPDATE tasks SET state = 'dispatched', tries = tries + 1, assignment_id = ?3 WHERE job_id = ?1 AND idx = ?2")?
                .execute(params![job, idx, assignment])?;
            self.recompute(tx, job, now, fx)?;
            Ok(Some(Assignment {
                assignment_id: assignment,
                job_id: job.to_string(),
                task_index: idx as u32,
                attempt: attempt as u32,
                r#try: (tries + 1) as u32,
                request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
            }))
        })
    }

    fn active_assignment(
        tx: &Transaction<'_>,
        agent: i64,
        assignment: i64,
    ) -> Result<(String, i64, i64, i64, i64)> {
        let row: Option<(String, i64, i64, i64, i64, i64)> = tx
            .prepare_cached("SELECT state, agent_id, job_id, idx, try, log_received FROM assignments WHERE id = ?1")?
            .query_row([assignment], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .optional()?;
        match row {
            Some((state, owner, job, idx, try_, received)) if owner == agent => {
                Ok((state, job, idx, try_, received))
            }
            _ => Err(StoreError::Gone(format!(
                "assignment {assignment} does not belong to agent {agent}"
            ))),
        }
    }

    /// The agent confirms it is starting the task. Refused (`Gone`) when the task was taken
    /// back meanwhile (stopped, or requeued after a restart): the agent must not run it.
    pub fn start_assignment(&self, agent: i64, assignment: i64, agent_name: &str) -> Result<()> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let (state, job, idx, try_, _) = Self::active_assignment(tx, agent, assignment)?;
            match state.as_str() {
                "running" => return Ok(()),
                "dispatched" => {}
                other => {
                    return Err(StoreError::Gone(format!(
                        "assignment {assignment} is {other}; do not run it"
                    )));
                }
            }
            let now = self.tick();
            tx.prepare_cached(
                "UPDATE assignments SET state = 'running', started_at = ?2 WHERE id = ?1",
            )?
            .execute(params![assignment, now])?;
            tx.prepare_cached(
                "UPDATE tasks SET state = 'running', reason = NULL WHERE job_id = ?1 AND idx = ?2",
            )?
            .execute(params![job, idx])?;
            tx.prepare_cached(
                "UPDATE jobs SET start_time = COALESCE(start_time, ?2) WHERE id = ?1",
            )?
            .execute(params![job, now])?;
            let (log_path, task_count, attempt): (String, i64, i64) = tx.query_row(
                "SELECT log_path, task_count, attempt FROM jobs WHERE id = ?1",
                [job],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (first, last): (Option<i64>, Option<i64>) = tx.query_row(
                "SELECT first_frame, last_frame FROM tasks WHERE job_id = ?1 AND idx = ?2",
                params![job, idx],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let what = match (first, last) {
                (Some(a), Some(b)) if a == b => format!("task {idx} (frame {a})"),
                (Some(a), Some(b)) => format!("task {idx} (frames {a}-{b})"),
                _ if task_count > 1 => format!("task {idx}"),
                _ => "job".to_owned(),
            };
            let retry = if try_ > 1 {
                format!(", try {try_}")
            } else {
                String::new()
            };
            let line =
                format!("farm: {what} started on agent {agent_name}, attempt {attempt}{retry}\n");
            append_to_log(Path::new(&log_path), line.as_bytes())?;
            self.recompute(tx, job, now, fx)
        })
    }

    /// Appends log bytes `[offset, offset + data.len())` of an assignment's output. Bytes
    /// already received are skipped, so an agent can resend after a lost reply.
    pub fn append_log(&self, agent: i64, assignment: i64, offset: u64, data: &[u8]) -> Result<u64> {
        self.agent_seen(agent)?;
        self.write(|tx, _| {
            let (state, job, _, _, received) = Self::active_assignment(tx, agent, assignment)?;
            if state != "running" && state != "dispatched" {
                return Err(StoreError::Gone(format!(
                    "assignment {assignment} is {state}"
                )));
            }
            let received = received as u64;
            if offset > received {
                return Err(StoreError::LogGap(received));
            }
            let end = offset + data.len() as u64;
            if end <= received {
                return Ok(received);
            }
            let log_path: String =
                tx.query_row("SELECT log_path FROM jobs WHERE id = ?1", [job], |r| {
                    r.get(0)
                })?;
            append_to_log(Path::new(&log_path), &data[(received - offset) as usize..])?;
            tx.prepare_cached("UPDATE assignments SET log_received = ?2 WHERE id = ?1")?
                .execute(params![assignment, end as i64])?;
            Ok(end)
        })
    }

    /// Records how an assignment ended. Repeating the same report is harmless.
    pub fn finish_assignment(
        &self,
        agent: i64,
        assignment: i64,
        report: &TaskReport,
    ) -> Result<()> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let (state, job, idx, _, _) = Self::active_assignment(tx, agent, assignment)?;
            if state != "running" && state != "dispatched" {
                return if state == report_word(report) {
                    Ok(())
                } else {
                    Err(StoreError::Gone(format!(
                        "assignment {assignment} is already {state}"
                    )))
                };
            }
            let now = self.tick();
            self.end_assignment(tx, assignment, job, idx, report, now, fx)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn end_assignment(
        &self,
        tx: &Transaction<'_>,
        assignment: i64,
        job: i64,
        idx: i64,
        report: &TaskReport,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let (reason, exit_code) = match report {
            TaskReport::Failed { reason, exit_code } => (Some(reason.clone()), *exit_code),
            _ => (None, None),
        };
        tx.prepare_cached("UPDATE assignments SET state = ?2, ended_at = ?3, reason = ?4, exit_code = ?5 WHERE id = ?1")?
            .execute(params![assignment, report_word(report), now, reason, exit_code])?;
        let stop: bool = tx.query_row(
            "SELECT stop_requested FROM jobs WHERE id = ?1",
            [job],
            |r| r.get(0),
        )?;
        let (task_state, task_reason) = match report {
            TaskReport::Succeeded => (TaskState::Done, None),
            TaskReport::Failed { reason, .. } => (TaskState::Failed, Some(reason.clone())),
            _ if stop => (
                TaskState::Cancelled,
                Some(crate::state::STOPPED_BY_USER.to_owned()),
            ),
            TaskReport::Cancelled | TaskReport::Interrupted => {
                self.requeue_or_fail(tx, job, idx, "its agent stopped before it finished", fx)?;
                return self.recompute(tx, job, now, fx);
            }
        };
        tx.prepare_cached("UPDATE tasks SET state = ?3, reason = ?4, exit_code = ?5 WHERE job_id = ?1 AND idx = ?2")?
            .execute(params![job, idx, task_state.as_str(), task_reason, exit_code])?;
        self.recompute(tx, job, now, fx)
    }

    /// A task whose run ended without a result goes back to the queue, or fails (`lost`)
    /// once it has been handed out `max_tries` times.
    fn requeue_or_fail(
        &self,
        tx: &Transaction<'_>,
        job: i64,
        idx: i64,
        why: &str,
        fx: &mut Effects,
    ) -> Result<()> {
        let tries: i64 = tx.query_row(
            "SELECT tries FROM tasks WHERE job_id = ?1 AND idx = ?2",
            params![job, idx],
            |r| r.get(0),
        )?;
        let max = i64::from(self.options.max_tries);
        let log_path: String =
            tx.query_row("SELECT log_path FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })?;
        if tries < max {
            let reason = format!("requeued: {why} (try {tries} of {max})");
            tx.execute(
                "UPDATE tasks SET state = 'queued', assignment_id = NULL, reason = ?3 WHERE job_id = ?1 AND idx = ?2",
                params![job, idx, reason],
            )?;
            append_to_log(
                Path::new(&log_path),
                format!("farm: task {idx} {reason}\n").as_bytes(),
            )?;
            fx.work = true;
        } else {
            let reason = format!("lost: {why}, {tries} of {max} tries used");
            tx.execute(
                "UPDATE tasks SET state = 'failed', reason = ?3 WHERE job_id = ?1 AND idx = ?2",
                params![job, idx, reason],
            )?;
            append_to_log(
                Path::new(&log_path),
                format!("farm: task {idx} {reason}\n").as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Which of an agent's assignments it must cancel: those of stopped jobs, and any it
    /// reports running that the server took back.
    pub fn heartbeat(&self, agent: i64, running: &[i64]) -> Result<Vec<i64>> {
        self.agent_seen(agent)?;
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT a.id FROM assignments a JOIN jobs j ON j.id = a.job_id \
                 WHERE a.agent_id = ?1 AND a.state IN ('dispatched', 'running') AND j.stop_requested = 1",
            )?;
            let mut cancel: Vec<i64> = stmt.query_map([agent], |r| r.get(0))?.collect::<Result<_, _>>()?;
            for id in running {
                let state: Option<(String, i64)> = conn
                    .prepare_cached("SELECT state, agent_id FROM assignments WHERE id = ?1")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let ours = matches!(&state, Some((s, owner)) if *owner == agent && (s == "running" || s == "dispatched"));
                if !ours && !cancel.contains(id) {
                    cancel.push(*id);
                }
            }
            Ok(cancel)
        })
    }

    /// Marks agents lost: those not heard from within `timeout`, and `also` (local agents
    /// whose process ended). Their tasks are requeued or failed. Returns the lost ids.
    pub fn expire_agents(&self, timeout: Duration, also: &[i64], why: &str) -> Result<Vec<i64>> {
        let lost: Vec<i64> = {
            let mut live = self.liveness.lock().expect("liveness poisoned");
            let now = Instant::now();
            let ids: Vec<i64> = live
                .iter()
                .filter(|(id, seen)| also.contains(id) || now.duration_since(**seen) > timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                live.remove(id);
            }
            ids
        };
        if lost.is_empty() {
            return Ok(lost);
        }
        let now = self.tick();
        self.write(|tx, fx| {
            for agent in &lost {
                let (name, host): (String, String) = tx.query_row(
                    "SELECT name, hostname FROM agents WHERE id = ?1",
                    [agent],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let reason = if also.contains(agent) {
                    why.to_owned()
                } else {
                    format!("not heard from for {}", humantime::format_duration(timeout))
                };
                tx.execute(
                    "UPDATE agents SET state = 'lost', ended_at = ?2 WHERE id = ?1",
                    params![agent, now],
                )?;
                self.lose_assignments(
                    tx,
                    *agent,
                    &format!("agent {name} on {host} was lost ({reason})"),
                    now,
                    fx,
                )?;
            }
            Ok(())
        })?;
        Ok(lost)
    }

    fn lose_assignments(
        &self,
        tx: &Transaction<'_>,
        agent: i64,
        why: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let mut stmt = tx.prepare("SELECT id, job_id, idx FROM assignments WHERE agent_id = ?1 AND state IN ('dispatched', 'running')")?;
        let active: Vec<(i64, i64, i64)> = stmt
            .query_map([agent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (assignment, job, idx) in active {
            tx.execute(
                "UPDATE assignments SET state = 'lost', ended_at = ?2, reason = ?3 WHERE id = ?1",
                params![assignment, now, why],
            )?;
            let stop: bool = tx.query_row(
                "SELECT stop_requested FROM jobs WHERE id = ?1",
                [job],
                |r| r.get(0),
            )?;
            if stop {
                tx.execute(
                    "UPDATE tasks SET state = 'cancelled', reason = ?3 WHERE job_id = ?1 AND idx = ?2",
                    params![job, idx, crate::state::STOPPED_BY_USER],
                )?;
            } else {
                self.requeue_or_fail(tx, job, idx, why, fx)?;
            }
            self.recompute(tx, job, now, fx)?;
        }
        Ok(())
    }

    /// An agent leaves cleanly; whatever it still held is requeued.
    pub fn deregister_agent(&self, agent: i64) -> Result<()> {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .remove(&agent);
        let now = self.tick();
        self.write(|tx, fx| {
            let name: Option<String> = tx
                .query_row("SELECT name FROM agents WHERE id = ?1", [agent], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(name) = name else {
                return Err(StoreError::Gone(format!("agent {agent} is not registered")));
            };
            tx.execute(
                "UPDATE agents SET state = 'gone', ended_at = ?2 WHERE id = ?1",
                params![agent, now],
            )?;
            self.lose_assignments(tx, agent, &format!("agent {name} left"), now, fx)
        })
    }

    /// `(job id, terminal transitions)` for every job, for crash tests and audits.
    pub fn terminal_transition_counts(&self) -> Result<Vec<(i64, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT j.id, (SELECT COUNT(*) FROM transitions t WHERE t.job_id = j.id AND t.state IN ('Completed', 'Failed', 'Cancelled')) \
                 FROM jobs j ORDER BY j.id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Local agents registered as alive, with their process ids (to adopt after a restart).
    pub fn local_agents(&self) -> Result<Vec<(i64, i64)>> {
        Ok(self
            .agents()?
            .into_iter()
            .filter(|a| a.kind == "local")
            .map(|a| (a.id, a.pid))
            .collect())
    }

    /// The ids of every agent the store considers alive right now.
    pub fn live_agent_ids(&self) -> HashSet<i64> {
        self.liveness
            .lock()
            .expect("liveness poisoned")
            .keys()
            .copied()
            .collect()
    }
}

fn report_word(report: &TaskReport) -> &'static str {
    match report {
        TaskReport::Succeeded => "succeeded",
        TaskReport::Failed { .. } => "failed",
        TaskReport::Cancelled => "cancelled",
        TaskReport::Interrupted => "interrupted",
    }
}

fn append_to_log(path: &Path, data: &[u8]) -> Result<()> {
    let context = || format!("cannot write render log {}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(context()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(context()))?;
    file.write_all(data).map_err(io_err(context()))
}

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let id: i64 = r.get(0)?;
    let state: String = r.get(2)?;
    let tags: String = r.get(12)?;
    let context: String = r.get(11)?;
    let frames_total: Option<i64> = r.get(13)?;
    let frames_done: i64 = r.get(14)?;
    let job = Job {
        id: JobId::new(id.to_string()),
        name: r.get(1)?,
        state: state.parse().unwrap_or(JobState::Failed),
        native_state: Some(r.get(3)?),
        reason: r.get(4)?,
        attempt: r.get::<_, i64>(5)? as u32,
        submit_time: Some(r.get(6)?),
        start_time: r.get(7)?,
        end_time: r.get(8)?,
        render_log_filename: Some(r.get(10)?),
        render_context: Uuid::parse_str(&context).ok(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        progress: frames_total.map(|total| Progress {
            frames_done: frames_done as u64,
            frames_total: total as u64,
        }),
    };
    Ok(JobRecord {
        job,
        updated_at: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_core::Command;

    fn store(dir: &Path) -> Store {
        Store::open(
            &dir.join("q.db"),
            &dir.join("logs"),
            StoreOptions {
                max_tries: 2,
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn request(name: &str) -> JobRequest {
        JobRequest::new(name, vec![Command::Argv(vec!["true".into()])])
    }

    fn agent(s: &Store) -> i64 {
        s.register_agent(&AgentHello {
            name: "a".into(),
            hostname: "h".into(),
            pid: 1,
            local: false,
            version: String::new(),
        })
        .unwrap()
    }

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(parse_job_id("17"), Some(17));
        for bad in [
            "",
            "0",
            "017",
            "+1",
            "-1",
            "1.0",
            "farm-conformance-no-such-job",
            "9999999999999999999",
        ] {
            assert_eq!(parse_job_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_task_runs_through_lease_start_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (job, created) = s.submit(&request("one"), None, "{}").unwrap();
        assert!(created);
        assert_eq!(
            (job.job.state, job.job.native_state.as_deref()),
            (JobState::Waiting, Some("QUEUED"))
        );
        let a = agent(&s);
        let lease = s.lease(a).unwrap().expect("work");
        assert_eq!(
            s.job("1").unwrap().job.native_state.as_deref(),
            Some("DISPATCHED")
        );
        s.start_assignment(a, lease.assignment_id, "a").unwrap();
        assert_eq!(s.job("1").unwrap().job.state, JobState::Running);
        assert_eq!(
            s.append_log(a, lease.assignment_id, 0, b"hello\n").unwrap(),
            6
        );
        assert_eq!(
            s.append_log(a, lease.assignment_id, 0, b"hello\nworld\n")
                .unwrap(),
            12,
            "resent bytes are skipped"
        );
        assert!(matches!(
            s.append_log(a, lease.assignment_id, 20, b"x"),
            Err(StoreError::LogGap(12))
        ));
        s.finish_assignment(a, lease.assignment_id, &TaskReport::Succeeded)
            .unwrap();
        s.finish_assignment(a, lease.assignment_id, &TaskReport::Succeeded)
            .unwrap();
        let done = s.job("1").unwrap().job;
        assert_eq!(done.state, JobState::Completed);
        assert!(done.start_time.unwrap() <= done.end_time.unwrap());
        let log = s.read_log("1", 0, 1 << 20).unwrap();
        let text = String::from_utf8(log.data).unwrap();
        assert!(
            text.starts_with("farm: job started on agent a") && text.ends_with("hello\nworld\n"),
            "{text}"
        );
        assert!(log.complete);
        assert_eq!(s.terminal_transition_counts().unwrap(), [(1, 1)]);
    }

    #[test]
    fn idempotency_keys_return_the_first_job_or_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (a, _) = s.submit(&request("x"), Some("k"), "body").unwrap();
        let (b, created) = s.submit(&request("x"), Some("k"), "body").unwrap();
        assert_eq!((a.job.id, created), (b.job.id, false));
        assert!(matches!(
            s.submit(&request("y"), Some("k"), "other"),
            Err(StoreError::Conflict(_))
        ));
    }

    #[test]
    fn priority_then_submit_order_decides_what_runs_next() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.submit(&request("low"), None, "").unwrap();
        let mut high = request("high");
        high.priority = 10;
        s.submit(&high, None, "").unwrap();
        s.submit(&request("low2"), None, "").unwrap();
        let a = agent(&s);
        let order: Vec<String> = (0..3)
            .map(|_| s.lease(a).unwrap().unwrap().job_id)
            .collect();
        assert_eq!(order, ["2", "1", "3"]);
        assert!(s.lease(a).unwrap().is_none());
    }

    #[test]
    fn dependents_wait_and_are_cancelled_when_a_dependency_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.submit(&request("dep"), None, "").unwrap();
        let mut child = request("child");
        child.depends_on = vec![JobId::new("1")];
        let mut grandchild = request("grandchild");
        grandchild.depends_on = vec![JobId::new("2")];
        s.submit(&child, None, "").unwrap();
        s.submit(&grandchild, None, "").unwrap();
        assert_eq!(
            s.job("2").unwrap().job.native_state.as_deref(),
            Some("BLOCKED")
        );
        let a = agent(&s);
        let l = s.lease(a).unwrap().unwrap();
        assert!(
            s.lease(a).unwrap().is_none(),
            "blocked tasks are not handed out"
        );
        s.start_assignment(a, l.assignment_id, "a").unwrap();
        s.finish_assignment(
            a,
            l.assignment_id,
            &TaskReport::Failed {
                reason: "exit code 3".into(),
                exit_code: Some(3),
            },
        )
        .unwrap();
        let c = s.job("2").unwrap().job;
        assert_eq!(
            (c.state, c.reason.as_deref()),
            (JobState::Cancelled, Some("dependency 1 ended Failed"))
        );
        assert_eq!(
            s.job("3").unwrap().job.state,
            JobState::Cancelled,
            "cancellation cascades"
        );
        let mut late = request("late");
        late.depends_on = vec![JobId::new("1")];
        assert_eq!(
            s.submit(&late, None, "").unwrap().0.job.state,
            JobState::Cancelled
        );
        let mut unknown = request("unknown");
        unknown.depends_on = vec![JobId::new("99")];
        assert!(
            matches!(s.submit(&unknown, None, ""), Err(StoreError::Invalid { field, .. }) if field == "depends_on[0]")
        );
    }

    #[test]
    fn a_lost_agent_requeues_its_task_until_tries_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.submit(&request("x"), None, "").unwrap();
        for try_ in 1..=2 {
            let a = agent(&s);
            let l = s.lease(a).unwrap().unwrap();
            assert_eq!(l.r#try, try_);
            s.start_assignment(a, l.assignment_id, "a").unwrap();
            s.expire_agents(Duration::from_secs(3600), &[a], "process exited")
                .unwrap();
            assert!(matches!(
                s.finish_assignment(a, l.assignment_id, &TaskReport::Succeeded),
                Err(StoreError::Gone(_))
            ));
        }
        let job = s.job("1").unwrap().job;
        assert_eq!(job.state, JobState::Failed);
        assert!(
            job.reason.as_deref().unwrap().contains("lost"),
            "{:?}",
            job.reason
        );
    }

    #[test]
    fn stop_and_start_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.submit(&request("x"), None, "").unwrap();
        let a = agent(&s);
        let l = s.lease(a).unwrap().unwrap();
        s.start_assignment(a, l.assignment_id, "a").unwrap();
        assert_eq!(
            s.stop("1").unwrap().job.native_state.as_deref(),
            Some("STOPPING")
        );
        assert!(matches!(s.start("1"), Err(StoreError::Conflict(_))));
        assert_eq!(
            s.heartbeat(a, &[l.assignment_id]).unwrap(),
            [l.assignment_id]
        );
        s.finish_assignment(a, l.assignment_id, &TaskReport::Cancelled)
            .unwrap();
        assert_eq!(s.job("1").unwrap().job.state, JobState::Cancelled);
        assert_eq!(
            s.stop("1").unwrap().job.state,
            JobState::Cancelled,
            "stopping a finished job changes nothing"
        );
        let again = s.start("1").unwrap().job;
        assert_eq!((again.state, again.attempt), (JobState::Waiting, 2));
        assert_eq!(
            s.start("1").unwrap().job.attempt,
            2,
            "starting a waiting job changes nothing"
        );
        assert!(matches!(s.stop("42"), Err(StoreError::JobNotFound(_))));
    }

    #[test]
    fn a_restart_requeues_unconfirmed_tasks_and_refuses_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let (a, lease) = {
            let s = store(dir.path());
            s.submit(&request("x"), None, "").unwrap();
            let a = agent(&s);
            (a, s.lease(a).unwrap().unwrap())
        };
        let s = store(dir.path());
        assert_eq!(s.recover().unwrap(), 1);
        assert_eq!(
            s.job("1").unwrap().job.native_state.as_deref(),
            Some("QUEUED")
        );
        assert!(matches!(
            s.start_assignment(a, lease.assignment_id, "a"),
            Err(StoreError::Gone(_))
        ));
        let again = s.lease(a).unwrap().unwrap();
        assert_eq!(
            again.r#try, 1,
            "a handout that never started does not use up a try"
        );
    }

    #[test]
    fn listing_pages_by_update_order_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for i in 0..5 {
            let mut r = request(&format!("job{}", i % 2));
            r.tags = vec![format!("t{i}")];
            s.submit(&r, None, "").unwrap();
        }
        let mut q = ListQuery {
            limit: 2,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = s.list(&q).unwrap();
            seen.extend(page.into_iter().map(|j| j.job.id.to_string()));
            match next {
                Some(after) => q.after = Some(after),
                None => break,
            }
        }
        assert_eq!(seen, ["1", "2", "3", "4", "5"]);
        let by_name = s
            .list(&ListQuery {
                name: Some("job1".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .0;
        assert_eq!(
            by_name
                .iter()
                .map(|j| j.job.id.as_str())
                .collect::<Vec<_>>(),
            ["2", "4"]
        );
        let by_tag = s
            .list(&ListQuery {
                tag: Some("t3".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .0;
        assert_eq!(by_tag.len(), 1);
        let none = s
            .list(&ListQuery {
                states: vec![JobState::Failed],
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .0;
        assert!(none.is_empty());
    }

    #[test]
    fn log_reads_never_split_a_character() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.submit(&request("x"), None, "").unwrap();
        let a = agent(&s);
        let l = s.lease(a).unwrap().unwrap();
        s.start_assignment(a, l.assignment_id, "a").unwrap();
        let before = s.read_log("1", 0, 1 << 20).unwrap().next_offset;
        s.append_log(a, l.assignment_id, 0, "é漢".as_bytes())
            .unwrap();
        let r = s.read_log("1", before, 2).unwrap();
        assert_eq!((r.data.as_slice(), r.complete), ("é".as_bytes(), false));
        let next = s.read_log("1", r.next_offset, 2).unwrap();
        assert!(
            next.next_offset > r.next_offset,
            "a limit smaller than a character still makes progress"
        );
    }
}
