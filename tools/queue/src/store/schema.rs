//! The database schema, created on open.

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

/// Brings a database created by an earlier version up to this schema.
pub(super) fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has_disabled: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('agents') WHERE name = 'disabled'",
        [],
        |r| r.get(0),
    )?;
    if has_disabled == 0 {
        conn.execute_batch("ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}
