//! Job records, ids, list filters and render-log chunks.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::JobState;

/// A job's identifier on its farm, as returned by `submit` (Slurm `1234`, HTCondor `56.0`,
/// an HTTP scheduler's UUID). Opaque to everything but the adapter that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// Wraps a scheduler's id.
    pub fn new(id: impl Into<String>) -> JobId {
        JobId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for JobId {
    fn from(id: String) -> Self {
        JobId(id)
    }
}

impl From<&str> for JobId {
    fn from(id: &str) -> Self {
        JobId(id.to_owned())
    }
}

impl From<&JobId> for JobId {
    fn from(id: &JobId) -> Self {
        id.clone()
    }
}

/// Milliseconds since the Unix epoch, the unit Katana's `FarmAPI.Job` uses for times.
pub type EpochMillis = i64;

/// The current time in [`EpochMillis`].
pub fn now_millis() -> EpochMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as EpochMillis)
        .unwrap_or(0)
}

/// How far a multi-frame job has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Frames whose chunk finished successfully.
    pub frames_done: u64,
    /// Frames in the job.
    pub frames_total: u64,
}

/// What a farm knows about one job: Katana's `FarmAPI.Job` plus what users debug with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The farm's id for the job.
    pub id: JobId,
    /// The request's name.
    pub name: String,
    /// The job's state, mapped onto the five.
    pub state: JobState,
    /// The scheduler's own word for the state (`PENDING`, `JobStatus=5`, `Queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_state: Option<String>,
    /// Why the job is in this state, when the scheduler says (`TIMEOUT`, `exit code 3`,
    /// `held: via condor_hold`, `lost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which run of the job this is, from 1; `start` on a finished job adds one.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When it was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<EpochMillis>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<EpochMillis>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<EpochMillis>,
    /// Path of the render log, readable from the submitting host, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_log_filename: Option<String>,
    /// The request's render context, when the scheduler kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_context: Option<Uuid>,
    /// The request's tags, when the scheduler kept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Frame progress, for jobs with frames on schedulers that report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

fn first_attempt() -> u32 {
    1
}

impl Job {
    /// A job record with only the required fields set; adapters fill in the rest.
    pub fn new(id: impl Into<JobId>, name: impl Into<String>, state: JobState) -> Job {
        Job {
            id: id.into(),
            name: name.into(),
            state,
            native_state: None,
            reason: None,
            attempt: 1,
            submit_time: None,
            start_time: None,
            end_time: None,
            render_log_filename: None,
            render_context: None,
            tags: Vec::new(),
            progress: None,
        }
    }
}

/// Which jobs `list_jobs` returns. Empty fields match everything; set fields must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    /// Only jobs in one of these states (empty: any state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<JobState>,
    /// Only jobs with exactly this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only jobs carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only jobs submitted at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<EpochMillis>,
}

impl JobFilter {
    /// Whether `job` passes the filter. Adapters whose scheduler cannot filter natively use
    /// this on what they fetched, so every adapter filters with the same semantics.
    ///
    /// A job without a known submit time passes a `since` filter: better a stale row than a
    /// job the user cannot find.
    pub fn matches(&self, job: &Job) -> bool {
        (self.states.is_empty() || self.states.contains(&job.state))
            && self.name.as_ref().is_none_or(|n| *n == job.name)
            && self.tag.as_ref().is_none_or(|t| job.tags.contains(t))
            && self
                .since
                .is_none_or(|since| job.submit_time.is_none_or(|at| at >= since))
    }
}

/// A piece of a render log, for tailing: read from `offset`, continue from `next_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    /// Log text from the requested offset (lossy UTF-8: logs are for people).
    pub data: String,
    /// Byte offset to ask for next time.
    pub next_offset: u64,
    /// True once the job is terminal and everything has been read: nothing more will come.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, state: JobState, tags: &[&str], submit: Option<i64>) -> Job {
        Job {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            submit_time: submit,
            ..Job::new("1", name, state)
        }
    }

    #[test]
    fn filter_fields_must_all_match() {
        let j = job(
            "beauty",
            JobState::Running,
            &["show:abc", "run:1"],
            Some(1000),
        );
        assert!(JobFilter::default().matches(&j));
        let by_state = JobFilter {
            states: vec![JobState::Waiting, JobState::Running],
            ..Default::default()
        };
        assert!(by_state.matches(&j));
        let wrong_state = JobFilter {
            states: vec![JobState::Completed],
            ..Default::default()
        };
        assert!(!wrong_state.matches(&j));
        let name_and_tag = JobFilter {
            name: Some("beauty".into()),
            tag: Some("run:1".into()),
            ..Default::default()
        };
        assert!(name_and_tag.matches(&j));
        let other_tag = JobFilter {
            name: Some("beauty".into()),
            tag: Some("run:2".into()),
            ..Default::default()
        };
        assert!(!other_tag.matches(&j));
        let name_prefix = JobFilter {
            name: Some("beaut".into()),
            ..Default::default()
        };
        assert!(!name_prefix.matches(&j), "names match exactly");
        let later = JobFilter {
            since: Some(2000),
            ..Default::default()
        };
        assert!(!later.matches(&j));
        assert!(later.matches(&job("x", JobState::Running, &[], None)));
    }

    #[test]
    fn job_json_round_trips_and_omits_empty_fields() {
        let j = Job {
            native_state: Some("PENDING".into()),
            reason: Some("Priority".into()),
            ..Job::new("77", "comp", JobState::Waiting)
        };
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(
            text,
            r#"{"id":"77","name":"comp","state":"Waiting","native_state":"PENDING","reason":"Priority","attempt":1}"#
        );
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), j);
    }
}
