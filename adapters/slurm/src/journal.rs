//! The jobs this adapter submitted, remembered on the submitting host.
//!
//! Slurm forgets a finished job after `MinJobAge` (and, without accounting, for good), and
//! slurmrestd has no requeue. The journal is what lets the adapter still answer: a job it
//! submitted that Slurm no longer knows is *lost* (or reports the terminal state last seen),
//! not "unknown", and `start` can submit it again from its request. The storage (one JSON
//! file per job, shared by separate `farm` processes) is `farm_core::journal`; what a Slurm
//! entry holds is here.

use farm_core::journal::JournalEntry;
#[cfg(test)]
use farm_core::now_millis;
use farm_core::{EpochMillis, Job};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Entries older than this are dropped when the journal is opened.
pub use farm_core::journal::RETENTION;

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

impl JournalEntry for Entry {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }

    fn recorded_ms(&self) -> EpochMillis {
        self.submitted_ms
    }

    fn finished_mut(&mut self) -> Option<&mut Option<Job>> {
        Some(&mut self.finished)
    }
}

/// The adapter's journal: farm-core's, filing [`Entry`]s.
pub type Journal = farm_core::Journal<Entry>;

/// The newest job submitted for a render context (restarts submit it again).
pub fn by_context(journal: &Journal, render_context: Uuid) -> Option<u64> {
    journal
        .find(|e| e.render_context == render_context)
        .into_iter()
        .max_by_key(|e| (e.attempt, e.id))
        .map(|e| e.id)
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
            let j = Journal::in_state_directory(Some(dir.path().to_path_buf()));
            j.record(entry(10, ctx, 1));
            j.record(entry(14, ctx, 2));
            let mut done = Job::new("10", "job 10", farm_core::JobState::Failed);
            done.reason = Some("exit code 3".into());
            j.set_finished(&10, Some(&done));
        }
        let j = Journal::in_state_directory(Some(dir.path().to_path_buf()));
        assert_eq!(by_context(&j, ctx), Some(14));
        assert_eq!(
            j.get(&10).unwrap().finished.unwrap().reason.as_deref(),
            Some("exit code 3")
        );
        assert_eq!(j.all().len(), 2);
        assert_eq!(j.get(&99), None);
    }

    #[test]
    fn old_entries_are_pruned_and_memory_only_journals_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = entry(1, Uuid::new_v4(), 1);
        old.submitted_ms -= RETENTION.as_millis() as i64 + 1000;
        Journal::in_state_directory(Some(dir.path().to_path_buf())).record(old);
        assert!(
            Journal::in_state_directory(Some(dir.path().to_path_buf()))
                .get(&1)
                .is_none()
        );
        let mem = Journal::in_state_directory(None);
        mem.record(entry(2, Uuid::new_v4(), 1));
        assert!(mem.get(&2).is_some());
    }
}
