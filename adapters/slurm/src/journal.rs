//! The jobs this adapter submitted, remembered on the submitting host.
//!
//! Slurm forgets a finished job after `MinJobAge` (and, without accounting, for good), and
//! slurmrestd has no requeue. The journal is what lets the adapter still answer: a job it
//! submitted that Slurm no longer knows is *lost* (or reports the terminal state last seen),
//! not "unknown", and `start` can submit it again from its request. One small JSON file per
//! job, written atomically, so separate `farm` processes share it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use farm_core::{Job, now_millis};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Entries older than this are dropped when the journal is opened.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the adapter remembers about one job it submitted (or re-attached to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The Slurm job id (the array's id).
    pub id: u64,
    /// The request's name.
    pub name: String,
    /// The request's render context.
    pub render_context: Uuid,
    /// The request's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Array tasks.
    pub tasks: u32,
    /// Frames per chunk.
    pub chunk_size: u32,
    /// Frames in the job.
    pub frames: u64,
    /// The attempt it was submitted as.
    pub attempt: u32,
    /// The render log.
    #[serde(default)]
    pub log: Option<String>,
    /// The request as JSON, for submitting it again; absent for jobs re-attached from Slurm.
    #[serde(default)]
    pub request: Option<String>,
    /// When it was submitted (ms since the epoch).
    pub submitted_ms: i64,
    /// The terminal state last seen, for when Slurm has forgotten the job.
    #[serde(default)]
    pub finished: Option<Job>,
}

/// The journal: in memory, and in a directory when one is usable.
#[derive(Debug)]
pub struct Journal {
    dir: Option<PathBuf>,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Journal {
    /// A journal kept in `dir` (created if needed); in memory only when `dir` is `None` or
    /// cannot be created.
    pub fn open(dir: Option<PathBuf>) -> Journal {
        let dir = dir.and_then(|d| {
            let jobs = d.join("jobs");
            match std::fs::create_dir_all(&jobs) {
                Ok(()) => Some(jobs),
                Err(e) => {
                    tracing::warn!(dir = %jobs.display(), error = %e, "cannot create the Slurm job journal; keeping it in memory");
                    None
                }
            }
        });
        let journal = Journal {
            dir,
            entries: Mutex::new(HashMap::new()),
        };
        journal.reload(true);
        journal
    }

    fn file(&self, id: u64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id}.json")))
    }

    /// Reads every entry on disk into memory (another process may have added some).
    fn reload(&self, prune: bool) {
        let Some(dir) = &self.dir else { return };
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        let oldest = now_millis() - RETENTION.as_millis() as i64;
        let mut loaded = Vec::new();
        for item in listing.flatten() {
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_entry(&path) {
                Some(entry) if prune && entry.submitted_ms < oldest => {
                    let _ = std::fs::remove_file(&path);
                }
                Some(entry) => loaded.push(entry),
                None => {}
            }
        }
        let mut entries = self.entries.lock().expect("journal poisoned");
        for entry in loaded {
            entries.insert(entry.id, entry);
        }
    }

    fn write(&self, entry: &Entry) {
        let Some(path) = self.file(entry.id) else {
            return;
        };
        let tmp = path.with_extension(format!("json.{:08x}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(entry).expect("entries serialise");
        let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot write the Slurm job journal");
        }
    }

    /// Remembers a job.
    pub fn record(&self, entry: Entry) {
        self.write(&entry);
        self.entries
            .lock()
            .expect("journal poisoned")
            .insert(entry.id, entry);
    }

    /// The entry of job `id`.
    pub fn get(&self, id: u64) -> Option<Entry> {
        if let Some(e) = self.entries.lock().expect("journal poisoned").get(&id) {
            return Some(e.clone());
        }
        let entry = read_entry(&self.file(id)?)?;
        self.entries
            .lock()
            .expect("journal poisoned")
            .insert(id, entry.clone());
        Some(entry)
    }

    /// The newest job submitted for a render context (restarts submit it again).
    pub fn by_context(&self, render_context: Uuid) -> Option<u64> {
        let find = |j: &Journal| {
            j.entries
                .lock()
                .expect("journal poisoned")
                .values()
                .filter(|e| e.render_context == render_context)
                .max_by_key(|e| (e.attempt, e.id))
                .map(|e| e.id)
        };
        find(self).or_else(|| {
            self.reload(false);
            find(self)
        })
    }

    /// Remembers the terminal state seen for job `id` (or forgets it, with `None`, when the
    /// job runs again).
    pub fn set_finished(&self, id: u64, job: Option<&Job>) {
        let updated = {
            let mut entries = self.entries.lock().expect("journal poisoned");
            match entries.get_mut(&id) {
                Some(e) if e.finished.as_ref() != job => {
                    e.finished = job.cloned();
                    Some(e.clone())
                }
                _ => None,
            }
        };
        if let Some(entry) = updated {
            self.write(&entry);
        }
    }

    /// Every entry, after picking up what other processes wrote.
    pub fn all(&self) -> Vec<Entry> {
        self.reload(false);
        let mut all: Vec<Entry> = self
            .entries
            .lock()
            .expect("journal poisoned")
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|e| e.id);
        all
    }
}

fn read_entry(path: &Path) -> Option<Entry> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, ctx: Uuid, attempt: u32) -> Entry {
        Entry {
            id,
            name: format!("job {id}"),
            render_context: ctx,
            tags: vec![],
            tasks: 1,
            chunk_size: 1,
            frames: 1,
            attempt,
            log: None,
            request: None,
            submitted_ms: now_millis(),
            finished: None,
        }
    }

    #[test]
    fn entries_survive_reopening_and_contexts_find_the_newest_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Uuid::new_v4();
        {
            let j = Journal::open(Some(dir.path().to_path_buf()));
            j.record(entry(10, ctx, 1));
            j.record(entry(14, ctx, 2));
            let mut done = Job::new("10", "job 10", farm_core::JobState::Failed);
            done.reason = Some("exit code 3".into());
            j.set_finished(10, Some(&done));
        }
        let j = Journal::open(Some(dir.path().to_path_buf()));
        assert_eq!(j.by_context(ctx), Some(14));
        assert_eq!(
            j.get(10).unwrap().finished.unwrap().reason.as_deref(),
            Some("exit code 3")
        );
        assert_eq!(j.all().len(), 2);
        assert_eq!(j.get(99), None);
    }

    #[test]
    fn old_entries_are_pruned_and_memory_only_journals_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = entry(1, Uuid::new_v4(), 1);
        old.submitted_ms -= RETENTION.as_millis() as i64 + 1000;
        Journal::open(Some(dir.path().to_path_buf())).record(old);
        assert!(
            Journal::open(Some(dir.path().to_path_buf()))
                .get(1)
                .is_none()
        );
        let mem = Journal::open(None);
        mem.record(entry(2, Uuid::new_v4(), 1));
        assert!(mem.get(2).is_some());
    }
}
