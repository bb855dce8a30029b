//! Durable queue state in SQLite: jobs, their tasks (one per chunk), attempts (one per time a
//! task is handed to an agent), agents, state transitions and idempotency keys.
//!
//! Every change is one savepoint that also re-derives the job's state from its tasks
//! ([`crate::state::derive`]), inside a transaction that changes waiting at the same moment
//! share (group commit, in `writer.rs`), so a crash between two statements cannot leave a job whose record
//! disagrees with its tasks. The database runs in WAL mode: a killed server loses nothing
//! that was acknowledged (no caller is answered before its transaction commits), and
//! readers never wait for the writer.
//!
//! Agent liveness (when each agent was last heard from) is deliberately not stored: after a
//! restart every agent gets a fresh timeout to reconnect, which is what lets running tasks
//! be re-attached instead of requeued.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use farm_core::{Job, JobId, JobRequest, JobState, Progress, now_millis};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::placement::{Capacity, Requirements};
use crate::state::{Derived, JobFacts, TaskCounts, TaskState, derive};
use crate::wire::{AgentHello, Assignment, Finished, TaskReport};

mod admin;
mod agents;
mod counts;
mod jobs;
#[cfg(test)]
mod one_call_tests;
mod placing;
mod retry;
mod schema;
mod task_list;
mod tasks;
#[cfg(test)]
mod tests;
mod writer;

pub use placing::Placement;
pub use task_list::{TaskPage, TaskQuery, TaskRecord};

use schema::SCHEMA;

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

impl StoreError {
    /// The file system under the data root is full (SQLite's `SQLITE_FULL`, or `ENOSPC` or
    /// `EDQUOT` writing a render log): nothing was changed, and retrying once space is back
    /// will work.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Io { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(nix::libc::ENOSPC | nix::libc::EDQUOT)
                ) || source.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of a listing and, when there are more, the `(updated_at, id)` to continue after.
pub type Page = (Vec<JobRecord>, Option<(i64, i64)>);

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// How durable a commit is before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// The job's priority (higher runs first); changed with `PATCH /v1/jobs/{id}`.
    pub priority: i64,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Tasks it runs at once.
    pub slots: i64,
    /// CPU cores it offers.
    pub cpus: i64,
    /// Memory it offers, in MiB.
    pub memory_mib: i64,
    /// GPUs it offers.
    pub gpus: i64,
    /// Its tags (pools).
    pub tags: Vec<String>,
    /// Every task it runs (the first is also in `job_id`, `job_name` and `task`).
    pub running: Vec<RunningTask>,
    /// That task's frames (`5-8`, `12`), when it has frames.
    pub task_frames: Option<String>,
    /// When that task started (or was handed out, until the agent confirms).
    pub task_since: Option<i64>,
    /// Taken out of service: it finishes what it runs but gets no new task.
    pub disabled: bool,
    /// When the queue last heard from it (ms since the epoch), while it is alive.
    pub last_seen: Option<i64>,
    /// Its host's load average (1 minute), as its last heartbeat reported it.
    pub load: Option<f64>,
}

/// A task an agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningTask {
    /// The job's id.
    pub job_id: String,
    /// The job's name.
    pub job_name: Option<String>,
    /// The task (chunk) index.
    pub task: i64,
}

/// Parses our job ids: positive decimal integers without sign or leading zeros.
pub fn parse_job_id(id: &str) -> Option<i64> {
    let valid = !id.is_empty()
        && id.len() <= 18
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0');
    valid.then(|| id.parse().ok()).flatten()
}

const JOB_COLUMNS: &str = "id, name, state, native_state, reason, attempt, submit_time, start_time, end_time, \
     updated_at, log_path, render_context, tags, frames_total, frames_done, priority";

/// The queue's durable state. Methods block (SQLite and file I/O): call them from
/// `spawn_blocking`.
pub struct Store {
    writer: writer::Writer,
    reader: Mutex<Connection>,
    clock: Mutex<i64>,
    liveness: Mutex<HashMap<i64, Instant>>,
    /// Each live agent's host load, from its heartbeats.
    loads: Mutex<HashMap<i64, f64>>,
    /// Who asked to stop a job that is still stopping, for the line that ends its log.
    stoppers: Mutex<HashMap<i64, String>>,
    logs_dir: PathBuf,
    /// The directory of the database (the data root), named when its disk is full.
    data_dir: PathBuf,
    options: StoreOptions,
    /// Last `served` stamp given to a job (round-robin between jobs of equal priority).
    served: AtomicI64,
    /// The capacities of the agents there are (and of the local agents the server will
    /// launch), distinct, for telling why a task fits nowhere.
    capacities: Mutex<Vec<Capacity>>,
    /// What the server's own local agents will offer once they register.
    expected_local: Mutex<Option<Capacity>>,
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
        let mut writer = open(path)?;
        writer.set_prepared_statement_cache_capacity(128);
        let version: i64 = writer.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let existing: i64 = writer.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
            [],
            |r| r.get(0),
        )?;
        if existing > 0 && version < schema::VERSION {
            schema::upgrade(&mut writer, version)?;
        }
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", schema::VERSION)?;
        let reader = open(path)?;
        reader.set_prepared_statement_cache_capacity(64);
        let last: i64 =
            writer.query_row("SELECT COALESCE(MAX(updated_at), 0) FROM jobs", [], |r| {
                r.get(0)
            })?;
        let served: i64 =
            writer.query_row("SELECT COALESCE(MAX(served), 0) FROM jobs", [], |r| {
                r.get(0)
            })?;
        std::fs::create_dir_all(logs_dir)
            .map_err(io_err(format!("cannot create {}", logs_dir.display())))?;
        Ok(Store {
            writer: writer::Writer::new(writer),
            reader: Mutex::new(reader),
            clock: Mutex::new(last),
            liveness: Mutex::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
            stoppers: Mutex::new(HashMap::new()),
            logs_dir: logs_dir.to_path_buf(),
            data_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            options,
            served: AtomicI64::new(served),
            capacities: Mutex::new(Vec::new()),
            expected_local: Mutex::new(None),
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

    /// The directory of the database: the data root.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs `f` as one change, in one transaction with the changes of other callers
    /// waiting at the same time (group commit), and returns once it is committed. Render-log
    /// appends are part of it: when it does not commit (a full disk, most often), they are
    /// cut back, so the log never holds bytes the database does not count and an agent's
    /// retried upload is not written twice.
    fn write<T>(&self, f: impl FnOnce(&Connection, &mut Effects) -> Result<T>) -> Result<T> {
        let (value, effects) = self.writer.change(f)?;
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
                let (from, frames) = Self::task_state(tx, job, idx)?;
                let n = tx.execute(
                    "UPDATE tasks SET state = 'queued', tries = MAX(tries - 1, 0), assignment_id = NULL \
                     WHERE job_id = ?1 AND idx = ?2 AND assignment_id = ?3",
                    params![job, idx, assignment],
                )?;
                if n > 0 {
                    Self::shift(tx, job, from, TaskState::Queued, frames, now)?;
                }
                self.recompute(tx, job, now, fx)?;
                fx.work = true;
            }
            let mut stmt = tx.prepare("SELECT id FROM agents WHERE state = 'alive'")?;
            let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(ids)
        })?;
        {
            let mut live = self.liveness.lock().expect("liveness poisoned");
            let now = Instant::now();
            for id in &agents {
                live.insert(*id, now);
            }
        }
        self.refresh_placement()?;
        Ok(agents.len())
    }

    // ----- jobs -----
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
        priority: r.get(15)?,
    })
}

thread_local! {
    /// Render logs appended to by the transaction running on this thread, with their length
    /// before, for [`Store::write`] to cut back if it does not commit.
    static APPENDED: RefCell<Vec<(PathBuf, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Appends to a render log, as part of the transaction running on this thread (see
/// [`Store::write`]); returns its length afterwards.
fn append_to_log(path: &Path, data: &[u8]) -> Result<u64> {
    let context = || format!("cannot write render log {}", path.display());
    let open = || OpenOptions::new().create(true).append(true).open(path);
    // The directory is made only when missing: a mkdir per append cost every task a
    // system call.
    let mut file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(context()))?;
            }
            open()
        }
        other => other,
    }
    .map_err(io_err(context()))?;
    let len = file.metadata().map_err(io_err(context()))?.len();
    APPENDED.with(|a| a.borrow_mut().push((path.to_path_buf(), len)));
    file.write_all(data).map_err(io_err(context()))?;
    Ok(len + data.len() as u64)
}

#[cfg(test)]
mod disk_full_tests {
    use super::*;

    #[test]
    fn a_change_that_does_not_commit_leaves_no_log_bytes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            &dir.path().join("q.db"),
            &dir.path().join("logs"),
            StoreOptions::default(),
        )
        .unwrap();
        assert_eq!(s.data_dir(), dir.path());
        let log = dir.path().join("logs/1.log");
        s.write(|_, _| append_to_log(&log, b"kept\n")).unwrap();
        let failed: Result<()> = s.write(|_, _| {
            append_to_log(&log, b"part of a change\n")?;
            append_to_log(&log, b"that never committed\n")?;
            Err(StoreError::Db(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            )))
        });
        let err = failed.unwrap_err();
        assert!(err.is_disk_full());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "kept\n");
    }

    #[test]
    fn full_disks_are_recognised() {
        let io = |code| StoreError::Io {
            context: "x".into(),
            source: std::io::Error::from_raw_os_error(code),
        };
        assert!(io(nix::libc::ENOSPC).is_disk_full());
        assert!(io(nix::libc::EDQUOT).is_disk_full());
        assert!(!io(nix::libc::EACCES).is_disk_full());
        assert!(!StoreError::Conflict("x".into()).is_disk_full());
    }
}
