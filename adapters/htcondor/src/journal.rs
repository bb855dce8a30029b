//! The clusters this adapter submitted, remembered on this host across `farm` processes.
//!
//! HTCondor moves a finished proc from `condor_q` to `condor_history`, and the history
//! rotates. The user log is the last record, but only someone who knows where the job
//! directory is can read it. The journal keeps that knowledge (the job's identity, its user
//! log, the terminal state last seen) in `farm_core::journal`, so a later process still
//! tells a lost job (`Failed`, `lost`) from an unknown id, reads a finished job back from its
//! user log, restarts it from its `job.sub`, and finds an earlier submission of a render
//! context.
//!
//! No request is stored: `start` resubmits the job directory's `job.sub`, found through the
//! user log path.

use farm_core::journal::JournalEntry;
use farm_core::{EpochMillis, Job};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::parse::ProcAd;

/// Entries older than this are dropped when the journal is opened (as for Slurm).
pub use farm_core::journal::RETENTION;

/// What the adapter remembers about one cluster it submitted (or found by render context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The cluster id: the job id.
    pub cluster: u32,
    /// The request's name.
    pub name: String,
    /// The request's render context.
    #[serde(default)]
    pub render_context: Option<Uuid>,
    /// The request's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The attempt the cluster runs.
    pub attempt: u32,
    /// Procs (chunks) in the cluster; 0 when unknown.
    #[serde(default)]
    pub tasks: u32,
    /// Frames in the job; 0 when unknown.
    #[serde(default)]
    pub frames: u64,
    /// Frames per chunk; 0 when unknown.
    #[serde(default)]
    pub chunk_size: u32,
    /// The user log, which also locates the job directory (`job.sub`, render logs).
    #[serde(default)]
    pub user_log: Option<String>,
    /// When it was submitted (ms since the epoch).
    pub submitted_ms: EpochMillis,
    /// The terminal state last seen, for when no record of the job is left.
    #[serde(default)]
    pub finished: Option<Job>,
}

impl JournalEntry for Entry {
    type Id = u32;

    fn id(&self) -> u32 {
        self.cluster
    }

    fn recorded_ms(&self) -> EpochMillis {
        self.submitted_ms
    }

    fn finished_mut(&mut self) -> Option<&mut Option<Job>> {
        Some(&mut self.finished)
    }
}

fn positive<T: TryFrom<i64> + Default>(v: Option<i64>) -> T {
    v.filter(|v| *v > 0)
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or_default()
}

impl Entry {
    /// The entry for `cluster` from an ad carrying the job's identity (the one the adapter
    /// builds at submit, or one `condor_q` returned); `now` (seconds) when it has no `QDate`.
    pub fn from_ad(cluster: u32, ad: &ProcAd, now: i64) -> Entry {
        Entry {
            cluster,
            name: ad
                .farm_name
                .clone()
                .or_else(|| ad.batch_name.clone())
                .unwrap_or_else(|| format!("cluster {cluster}")),
            render_context: ad
                .render_context
                .as_deref()
                .and_then(|c| Uuid::parse_str(c).ok()),
            tags: ad
                .farm_tags
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            attempt: positive::<u32>(ad.attempt).max(1),
            tasks: positive(ad.tasks),
            frames: positive(ad.frames),
            chunk_size: positive(ad.chunk_size),
            user_log: ad.user_log.clone(),
            submitted_ms: ad.qdate.filter(|q| *q > 0).unwrap_or(now) * 1000,
            finished: None,
        }
    }

    /// The job's identity as an ad, the shape the plugin fills missing procs from.
    pub fn identity(&self) -> ProcAd {
        let known = |v: i64| (v > 0).then_some(v);
        ProcAd {
            cluster: self.cluster,
            farm_name: Some(self.name.clone()),
            farm_tags: Some(self.tags.join(",")),
            render_context: self.render_context.map(|c| c.to_string()),
            attempt: Some(i64::from(self.attempt)),
            tasks: known(i64::from(self.tasks)),
            frames: i64::try_from(self.frames).ok().and_then(known),
            chunk_size: known(i64::from(self.chunk_size)),
            user_log: self.user_log.clone(),
            qdate: Some(self.submitted_ms.div_euclid(1000)),
            ..ProcAd::default()
        }
    }
}

/// The adapter's journal: farm-core's, filing [`Entry`]s.
pub type Journal = farm_core::Journal<Entry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_survives_the_journal() {
        let qdate = farm_core::now_millis() / 1000 - 100;
        let ad = ProcAd {
            farm_name: Some("beauty, comp".into()),
            farm_tags: Some("show:x,run:2".into()),
            render_context: Some("00000000-0000-4000-8000-00000000000a".into()),
            attempt: Some(3),
            tasks: Some(4),
            frames: Some(7),
            chunk_size: Some(2),
            user_log: Some("/logs/ctx/condor.log".into()),
            qdate: Some(qdate),
            ..ProcAd::default()
        };
        let entry = Entry::from_ad(4243, &ad, 5);
        assert_eq!(entry.tags, ["show:x", "run:2"]);
        assert_eq!(entry.submitted_ms, qdate * 1000);
        let dir = tempfile::tempdir().unwrap();
        Journal::in_state_directory(Some(dir.path().to_path_buf())).record(entry.clone());
        assert!(dir.path().join("jobs/4243.json").exists());
        let read = Journal::in_state_directory(Some(dir.path().to_path_buf()))
            .get(&4243)
            .unwrap();
        assert_eq!(read, entry);
        assert_eq!(
            read.identity(),
            ProcAd {
                cluster: 4243,
                ..ad
            }
        );
    }

    #[test]
    fn an_ad_without_farm_attributes_still_makes_an_entry() {
        let entry = Entry::from_ad(9, &ProcAd::default(), 1_000);
        assert_eq!(
            (
                entry.name.as_str(),
                entry.attempt,
                entry.tasks,
                entry.submitted_ms
            ),
            ("cluster 9", 1, 0, 1_000_000)
        );
        let identity = entry.identity();
        assert_eq!(
            (identity.tasks, identity.frames, identity.render_context),
            (None, None, None)
        );
    }
}
