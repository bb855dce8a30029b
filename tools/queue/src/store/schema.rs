//! The database schema, created on open, and the upgrade of databases of earlier versions.

/// The schema version this code writes (`PRAGMA user_version`): 2 added task counters,
/// placement and agent capacity; 3 added the agents' `disabled` flag.
pub(super) const VERSION: i64 = 3;

/// Upgrades a version-1 database: the columns and indexes version 2 added (per-job task
/// counters, placement requirements, per-task attempts and log offsets, agent capacity),
/// then the counters filled in from the tasks.
pub(super) const UPGRADE_FROM_1: &[&str] = &[
    "ALTER TABLE jobs ADD COLUMN n_blocked INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_queued INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_dispatched INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_running INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_done INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_failed INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN n_cancelled INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN served INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN req_cpus INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN req_memory INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN req_gpus INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN req_tags TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE jobs ADD COLUMN unplaceable TEXT",
    "ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE tasks ADD COLUMN frame_set TEXT",
    "ALTER TABLE tasks ADD COLUMN log_start INTEGER",
    "ALTER TABLE tasks ADD COLUMN log_end INTEGER",
    "ALTER TABLE agents ADD COLUMN slots INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE agents ADD COLUMN cpus INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE agents ADD COLUMN memory_mib INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE agents ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE agents ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
    "DROP INDEX IF EXISTS tasks_queue",
    "UPDATE jobs SET
        n_blocked = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'blocked'),
        n_queued = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'queued'),
        n_dispatched = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'dispatched'),
        n_running = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'running'),
        n_done = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'done'),
        n_failed = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'failed'),
        n_cancelled = (SELECT COUNT(*) FROM tasks t WHERE t.job_id = jobs.id AND t.state = 'cancelled')",
];

pub(super) const SCHEMA: &str = "
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
    log_path TEXT NOT NULL,
    n_blocked INTEGER NOT NULL DEFAULT 0,
    n_queued INTEGER NOT NULL DEFAULT 0,
    n_dispatched INTEGER NOT NULL DEFAULT 0,
    n_running INTEGER NOT NULL DEFAULT 0,
    n_done INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    n_cancelled INTEGER NOT NULL DEFAULT 0,
    served INTEGER NOT NULL DEFAULT 0,
    req_cpus INTEGER NOT NULL DEFAULT 0,
    req_memory INTEGER NOT NULL DEFAULT 0,
    req_gpus INTEGER NOT NULL DEFAULT 0,
    req_tags TEXT NOT NULL DEFAULT '[]',
    unplaceable TEXT
);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name);
CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs(priority DESC, served, id) WHERE n_queued > 0;
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
    attempt INTEGER NOT NULL DEFAULT 1,
    frame_set TEXT,
    log_start INTEGER,
    log_end INTEGER,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(job_id, idx) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS tasks_failed ON tasks(job_id, idx) WHERE state = 'failed';
CREATE INDEX IF NOT EXISTS tasks_cancelled ON tasks(job_id, idx) WHERE state = 'cancelled';
CREATE INDEX IF NOT EXISTS tasks_requeued ON tasks(job_id, idx) WHERE state = 'queued' AND reason IS NOT NULL;
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
    version TEXT NOT NULL,
    slots INTEGER NOT NULL DEFAULT 1,
    cpus INTEGER NOT NULL DEFAULT 0,
    memory_mib INTEGER NOT NULL DEFAULT 0,
    gpus INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0
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

/// Brings a database of schema `version` (an earlier one) up to this schema, in one
/// transaction: version 1 gets version 2's columns, then any database without the agents'
/// `disabled` flag gets it (some version-1 databases already have it).
pub(super) fn upgrade(conn: &mut rusqlite::Connection, version: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    if version < 2 {
        for statement in UPGRADE_FROM_1 {
            tx.execute(statement, [])?;
        }
    }
    let has_disabled: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('agents') WHERE name = 'disabled'",
        [],
        |r| r.get(0),
    )?;
    if has_disabled == 0 {
        tx.execute(
            "ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",
            [],
        )?;
    }
    tx.commit()
}
