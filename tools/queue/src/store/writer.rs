//! The one writer connection, with group commit: each change runs in a savepoint of an
//! open transaction, and the transaction commits once no other change is waiting for the
//! writer, or the batch holds 32 changes, or it is 2 ms old. A caller returns only after
//! its batch committed, so an acknowledged change is as durable as before; a change that
//! fails is rolled back to its savepoint alone, and its render-log appends are cut back.
//! Under load, changes that touch the same pages (a job's row, the ends of the indexes)
//! write them to the WAL once per batch instead of once per change, and the commit's own
//! cost is shared.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rusqlite::Connection;

use super::{APPENDED, Effects, Result, StoreError};

/// Changes one batch holds at most, and how long it stays open at most: a steady stream
/// of writers must not hold back the first caller's reply for long (a lease's latency is
/// what 1,000 agents feel).
const MAX_BATCH: usize = 32;
const MAX_BATCH_AGE: std::time::Duration = std::time::Duration::from_millis(2);

/// Failures remembered for callers still waiting to hear how their batch ended.
const FAILURES_KEPT: usize = 64;

/// The writer connection and the batch it has open.
struct Batch {
    conn: Connection,
    /// A transaction is open, holding changes whose callers wait for its commit.
    open: bool,
    /// The open (or last) batch's number.
    number: u64,
    /// Changes in the open batch.
    changes: usize,
    /// When the open batch began.
    opened: std::time::Instant,
    /// Render-log appends of the open batch, with each log's length before: cut back if the
    /// batch does not commit.
    appended: Vec<(PathBuf, u64)>,
    /// What the open batch's changes asked for once committed.
    effects: Effects,
}

/// How batches ended, for the callers waiting on them.
#[derive(Default)]
struct Commits {
    /// The last batch that committed or failed.
    done: u64,
    /// Recent batches that failed to commit, with SQLite's error.
    failures: VecDeque<(u64, rusqlite::ffi::Error, Option<String>)>,
}

/// The store's single writer.
pub(super) struct Writer {
    batch: Mutex<Batch>,
    /// Callers waiting for the writer: while there are some, the batch stays open.
    queued: AtomicUsize,
    /// How long a batch stays open at most ([`MAX_BATCH_AGE`]; longer in tests).
    max_age: std::time::Duration,
    commits: Mutex<Commits>,
    committed: Condvar,
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Writer {
        Writer::with_max_age(conn, MAX_BATCH_AGE)
    }

    fn with_max_age(conn: Connection, max_age: std::time::Duration) -> Writer {
        Writer {
            batch: Mutex::new(Batch {
                conn,
                open: false,
                number: 0,
                changes: 0,
                opened: std::time::Instant::now(),
                appended: Vec::new(),
                effects: Effects::default(),
            }),
            queued: AtomicUsize::new(0),
            max_age,
            commits: Mutex::new(Commits::default()),
            committed: Condvar::new(),
        }
    }

    /// Runs `f` as one change and returns once it is committed, with the effects to fire.
    pub(super) fn change<T>(
        &self,
        f: impl FnOnce(&Connection, &mut Effects) -> Result<T>,
    ) -> Result<(T, Effects)> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut batch = self.batch.lock().expect("writer poisoned");
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !batch.open {
            batch.conn.execute_batch("BEGIN IMMEDIATE")?;
            batch.open = true;
            batch.number += 1;
            batch.changes = 0;
            batch.opened = std::time::Instant::now();
        }
        let number = batch.number;
        APPENDED.with(|a| a.borrow_mut().clear());
        let mut effects = Effects::default();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            batch.conn.prepare_cached("SAVEPOINT change")?.execute([])?;
            match f(&batch.conn, &mut effects) {
                Ok(value) => {
                    batch.conn.prepare_cached("RELEASE change")?.execute([])?;
                    Ok(value)
                }
                Err(e) => {
                    undo_change(&batch.conn);
                    Err(e)
                }
            }
        }));
        let appended = APPENDED.with(|a| std::mem::take(&mut *a.borrow_mut()));
        match &outcome {
            Ok(Ok(_)) => {
                batch.appended.extend(appended);
                batch.effects.work |= effects.work;
                batch.effects.control |= effects.control;
            }
            Ok(Err(_)) => cut_back(&appended),
            Err(_) => {
                undo_change(&batch.conn);
                cut_back(&appended);
            }
        }
        batch.changes += 1;
        let commit_now = self.queued.load(Ordering::SeqCst) == 0
            || batch.changes >= MAX_BATCH
            || batch.opened.elapsed() >= self.max_age;
        let ended = if commit_now {
            Some(self.commit(&mut batch))
        } else {
            None
        };
        drop(batch);
        let value = match outcome {
            Ok(value) => value,
            Err(panic) => resume_unwind(panic),
        };
        match ended {
            Some(Ok(fx)) => value.map(|v| (v, fx)),
            Some(Err(e)) => value.and(Err(e)),
            // A failed change has nothing in the batch: no need to wait for it.
            None => value.and_then(|v| self.wait_for(number).map(|()| (v, Effects::default()))),
        }
    }

    /// Commits the open batch and tells its waiting callers how it ended; returns the
    /// batch's effects (fired by the committer for everyone).
    fn commit(&self, batch: &mut Batch) -> Result<Effects> {
        let result = batch.conn.execute_batch("COMMIT");
        if result.is_err() {
            let _ = batch.conn.execute_batch("ROLLBACK");
            cut_back(&batch.appended);
        }
        batch.open = false;
        batch.appended.clear();
        let effects = std::mem::take(&mut batch.effects);
        let mut commits = self.commits.lock().expect("commits poisoned");
        commits.done = batch.number;
        if let Err(rusqlite::Error::SqliteFailure(code, message)) = &result {
            commits
                .failures
                .push_back((batch.number, *code, message.clone()));
        } else if let Err(other) = &result {
            commits.failures.push_back((
                batch.number,
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(other.to_string()),
            ));
        }
        while commits.failures.len() > FAILURES_KEPT {
            commits.failures.pop_front();
        }
        drop(commits);
        self.committed.notify_all();
        result.map(|()| effects).map_err(StoreError::from)
    }

    /// Waits until batch `number` has ended: `Err` when it did not commit.
    fn wait_for(&self, number: u64) -> Result<()> {
        let mut commits = self.commits.lock().expect("commits poisoned");
        while commits.done < number {
            commits = self.committed.wait(commits).expect("commits poisoned");
        }
        match commits.failures.iter().find(|(n, _, _)| *n == number) {
            Some((_, code, message)) => Err(StoreError::Db(rusqlite::Error::SqliteFailure(
                *code,
                message.clone(),
            ))),
            None => Ok(()),
        }
    }

    /// Runs `f` on the connection outside any batch (tests).
    #[cfg(test)]
    pub(super) fn raw<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let batch = self.batch.lock().expect("writer poisoned");
        assert!(!batch.open, "a batch is open");
        f(&batch.conn)
    }
}

/// Rolls back the change in progress, leaving the batch's earlier changes.
fn undo_change(conn: &Connection) {
    let undone = conn
        .execute_batch("ROLLBACK TO change")
        .and_then(|()| conn.execute_batch("RELEASE change"));
    if let Err(e) = undone {
        tracing::error!(error = %e, "cannot roll back a failed change");
    }
}

/// Cuts render logs back to their lengths before the appends, latest first.
fn cut_back(appended: &[(PathBuf, u64)]) {
    for (path, len) in appended.iter().rev() {
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(*len))
        {
            tracing::error!(log = %path.display(), error = %e, "cannot cut back a render log after a failed change");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    use super::*;

    #[test]
    fn waiting_changes_share_one_commit_and_a_failed_one_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
            .unwrap();
        // Long enough that holding the first change open does not end the batch.
        let writer = Arc::new(Writer::with_max_age(conn, Duration::from_secs(600)));
        let insert = |c: &Connection, v: i64| c.execute("INSERT INTO t VALUES (?1)", [v]);
        let (release, held) = mpsc::channel::<()>();
        let first = {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                writer.change(|c, _| {
                    insert(c, 1)?;
                    held.recv().unwrap();
                    Ok(1)
                })
            })
        };
        while writer.batch.try_lock().is_ok() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let others: Vec<_> = [2, 3]
            .into_iter()
            .map(|v| {
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || {
                    writer.change(|c, fx| {
                        insert(c, v)?;
                        fx.work = true;
                        if v == 2 {
                            return Err(StoreError::Conflict("refused".into()));
                        }
                        Ok(v)
                    })
                })
            })
            .collect();
        while writer.queued.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap().0, 1);
        let mut results: Vec<_> = others.into_iter().map(|t| t.join().unwrap()).collect();
        let third = results.pop().unwrap();
        let second = results.pop().unwrap();
        assert!(matches!(second, Err(StoreError::Conflict(_))));
        assert_eq!(third.unwrap().0, 3);
        let kept: Vec<i64> = writer.raw(|c| {
            c.prepare("SELECT v FROM t ORDER BY v")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        });
        assert_eq!(kept, [1, 3], "the failed change alone was undone");
        assert_eq!(
            writer.commits.lock().unwrap().done,
            1,
            "three changes, one commit"
        );
    }
}
