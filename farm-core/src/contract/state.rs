//! The five job states every scheduler is mapped onto.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a job, as Katana's `FarmAPI.Job.State` defines it.
///
/// Every adapter maps its scheduler's native states onto exactly these five. The native word
/// is kept beside it in [`Job::native_state`](crate::Job::native_state) so nothing is lost
/// for debugging. Requeued or preempted jobs are `Waiting` again: only `Completed`,
/// `Cancelled` and `Failed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobState {
    /// Accepted by the scheduler, not running yet (queued, held, requeued, waiting on a
    /// dependency).
    Waiting,
    /// At least one of the job's commands is executing.
    Running,
    /// Every command of every frame exited with status 0.
    Completed,
    /// Stopped by a user or an administrator before it finished.
    Cancelled,
    /// Ended without completing: a non-zero exit, a signal, a timeout, a lost node, an
    /// unknown native state.
    Failed,
}

impl JobState {
    /// All five states, in Katana's `kAllStates` order.
    pub const ALL: [JobState; 5] = [
        JobState::Waiting,
        JobState::Running,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Failed,
    ];

    /// The exact word used on the wire and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "Waiting",
            JobState::Running => "Running",
            JobState::Completed => "Completed",
            JobState::Cancelled => "Cancelled",
            JobState::Failed => "Failed",
        }
    }

    /// Whether the job can no longer change state on its own (only `start` revives it).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Failed
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five state words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state {found:?}: expected one of Waiting, Running, Completed, Cancelled, Failed"
)]
pub struct UnknownJobState {
    /// The rejected input.
    pub found: String,
}

impl FromStr for JobState {
    type Err = UnknownJobState;

    /// Parses the exact words (as Katana does); anything else is an error naming the five.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState {
                found: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_and_serde_use_the_same_five_words() {
        for state in JobState::ALL {
            let word = state.to_string();
            assert_eq!(word.parse::<JobState>().unwrap(), state);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{word}\"")
            );
            assert_eq!(
                serde_json::from_str::<JobState>(&format!("\"{word}\"")).unwrap(),
                state
            );
        }
        let words: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            ["Waiting", "Running", "Completed", "Cancelled", "Failed"]
        );
    }

    #[test]
    fn other_strings_are_rejected_with_the_valid_five_named() {
        for bad in ["waiting", "RUNNING", "Done", "", " Failed"] {
            let err = bad.parse::<JobState>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("Waiting, Running, Completed, Cancelled, Failed"));
        }
        assert!(serde_json::from_str::<JobState>("\"Pending\"").is_err());
    }

    #[test]
    fn only_completed_cancelled_and_failed_are_terminal() {
        let terminal: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [JobState::Completed, JobState::Cancelled, JobState::Failed]
        );
    }
}
