//! The local queue's state table: task states, the native job words, and how a job's state
//! follows from its tasks. Pure data and functions, tested exhaustively; the store applies
//! them after every change so a job's record can never disagree with its tasks.

use farm_core::JobState;

/// Where one task (one chunk) of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Held until the job's dependencies complete.
    Blocked,
    /// Ready to run, waiting for a free agent.
    Queued,
    /// Handed to an agent that has not confirmed it started.
    Dispatched,
    /// Its agent runs it.
    Running,
    /// Every command exited 0.
    Done,
    /// A command failed, a time limit passed, or its agents were lost too often.
    Failed,
    /// Stopped, or never run because a dependency did not complete.
    Cancelled,
}

impl TaskState {
    /// Every task state, in the order above.
    pub const ALL: [TaskState; 7] = [
        TaskState::Blocked,
        TaskState::Queued,
        TaskState::Dispatched,
        TaskState::Running,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Blocked => "blocked",
            TaskState::Queued => "queued",
            TaskState::Dispatched => "dispatched",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored word.
    pub fn parse(word: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Whether the task can no longer change on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// The native job states of the local queue and the five-state word each maps to, with the
/// reason the record carries. This table is `docs/state-mapping.md`'s "Local queue" section.
pub const NATIVE_STATES: &[(&str, JobState, &str)] = &[
    (
        "QUEUED",
        JobState::Waiting,
        "none, or `requeued: ...` after a lost agent",
    ),
    ("BLOCKED", JobState::Waiting, "`waiting on dependencies`"),
    ("DISPATCHED", JobState::Waiting, "`sent to an agent`"),
    ("RUNNING", JobState::Running, ""),
    ("STOPPING", JobState::Running, "`stopped by user`"),
    ("DONE", JobState::Completed, ""),
    (
        "FAILED",
        JobState::Failed,
        "the failing task and `exit code N`, or `lost: ...`",
    ),
    (
        "CANCELLED",
        JobState::Cancelled,
        "`stopped by user`, or `dependency N ended Failed`",
    ),
];

/// The five-state word for a native state; unknown words are `Failed`, never a success.
pub fn map_native(native: &str) -> JobState {
    NATIVE_STATES
        .iter()
        .find(|(word, _, _)| *word == native)
        .map_or(JobState::Failed, |(_, state, _)| *state)
}

/// How many of a job's tasks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Tasks per state, indexed like [`TaskState::ALL`].
    pub counts: [u64; 7],
}

impl TaskCounts {
    /// Count of tasks in `state`.
    pub fn get(&self, state: TaskState) -> u64 {
        self.counts[state as usize]
    }

    /// Adds `n` tasks in `state`.
    pub fn add(&mut self, state: TaskState, n: u64) {
        self.counts[state as usize] += n;
    }

    fn unfinished(&self) -> u64 {
        [
            TaskState::Blocked,
            TaskState::Queued,
            TaskState::Dispatched,
            TaskState::Running,
        ]
        .into_iter()
        .map(|s| self.get(s))
        .sum()
    }
}

/// What the store knows about a job besides its task counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFacts {
    /// A user asked to stop it.
    pub stop_requested: bool,
    /// The reason of the lowest-numbered failed task, with its number when the job has
    /// several tasks.
    pub first_failure: Option<String>,
    /// Why cancelled tasks were cancelled (a dependency that did not complete).
    pub cancel_reason: Option<String>,
    /// Why a queued task is queued again (a lost agent).
    pub requeue_reason: Option<String>,
}

/// A job's derived state: the five-state word, the native word and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// One of the five states.
    pub state: JobState,
    /// One of [`NATIVE_STATES`].
    pub native: &'static str,
    /// Why, when there is something to say.
    pub reason: Option<String>,
}

/// The reason a stopped job carries.
pub const STOPPED_BY_USER: &str = "stopped by user";

/// A job's state from its tasks. Any failed task fails the job, but only once every task
/// has ended: the other chunks still run, as a scheduler's job array would.
pub fn derive(counts: &TaskCounts, facts: &JobFacts) -> Derived {
    let d = |state, native, reason: Option<String>| Derived {
        state,
        native,
        reason,
    };
    let active = counts.get(TaskState::Dispatched) + counts.get(TaskState::Running);
    if facts.stop_requested {
        return if counts.get(TaskState::Running) > 0 {
            d(JobState::Running, "STOPPING", Some(STOPPED_BY_USER.into()))
        } else {
            d(
                JobState::Cancelled,
                "CANCELLED",
                Some(STOPPED_BY_USER.into()),
            )
        };
    }
    if counts.unfinished() == 0 {
        if counts.get(TaskState::Failed) > 0 {
            let reason = facts
                .first_failure
                .clone()
                .unwrap_or_else(|| "a task failed".into());
            return d(JobState::Failed, "FAILED", Some(reason));
        }
        if counts.get(TaskState::Cancelled) > 0 {
            let reason = facts
                .cancel_reason
                .clone()
                .unwrap_or_else(|| STOPPED_BY_USER.into());
            return d(JobState::Cancelled, "CANCELLED", Some(reason));
        }
        return d(JobState::Completed, "DONE", None);
    }
    let finished = counts.get(TaskState::Done) + counts.get(TaskState::Failed);
    if counts.get(TaskState::Running) > 0
        || (finished > 0 && active + counts.get(TaskState::Queued) > 0)
    {
        return d(JobState::Running, "RUNNING", None);
    }
    if active > 0 {
        return d(
            JobState::Waiting,
            "DISPATCHED",
            Some("sent to an agent".into()),
        );
    }
    if counts.get(TaskState::Blocked) > 0 {
        return d(
            JobState::Waiting,
            "BLOCKED",
            Some("waiting on dependencies".into()),
        );
    }
    d(JobState::Waiting, "QUEUED", facts.requeue_reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(TaskState, u64)]) -> TaskCounts {
        let mut c = TaskCounts::default();
        for (s, n) in pairs {
            c.add(*s, *n);
        }
        c
    }

    #[test]
    fn every_native_word_derive_can_produce_is_in_the_table() {
        // Walk every combination of "none / some" tasks per state, with and without stop.
        let mut seen = std::collections::BTreeSet::new();
        for mask in 1u32..(1 << 7) {
            for stop in [false, true] {
                let pairs: Vec<_> = TaskState::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, s)| (*s, 1))
                    .collect();
                let facts = JobFacts {
                    stop_requested: stop,
                    ..Default::default()
                };
                let derived = derive(&counts(&pairs), &facts);
                assert_eq!(map_native(derived.native), derived.state, "{derived:?}");
                seen.insert(derived.native);
            }
        }
        let table: std::collections::BTreeSet<_> =
            NATIVE_STATES.iter().map(|(w, _, _)| *w).collect();
        assert_eq!(
            seen, table,
            "the table lists exactly the words derive produces"
        );
    }

    #[test]
    fn unknown_native_words_are_failed() {
        assert_eq!(map_native("PAUSED"), JobState::Failed);
        assert_eq!(map_native("DONE"), JobState::Completed);
    }

    #[test]
    fn task_words_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("Done"), None);
    }

    #[test]
    fn a_failed_task_fails_the_job_only_when_all_tasks_ended() {
        let facts = JobFacts {
            first_failure: Some("task 1: exit code 3".into()),
            ..Default::default()
        };
        let mid = derive(
            &counts(&[(TaskState::Failed, 1), (TaskState::Queued, 2)]),
            &facts,
        );
        assert_eq!((mid.state, mid.native), (JobState::Running, "RUNNING"));
        let end = derive(
            &counts(&[(TaskState::Failed, 1), (TaskState::Done, 2)]),
            &facts,
        );
        assert_eq!(end.state, JobState::Failed);
        assert_eq!(end.reason.as_deref(), Some("task 1: exit code 3"));
    }

    #[test]
    fn stopping_waits_for_running_tasks() {
        let facts = JobFacts {
            stop_requested: true,
            ..Default::default()
        };
        let stopping = derive(
            &counts(&[(TaskState::Running, 1), (TaskState::Cancelled, 3)]),
            &facts,
        );
        assert_eq!(
            (stopping.state, stopping.native),
            (JobState::Running, "STOPPING")
        );
        let stopped = derive(&counts(&[(TaskState::Cancelled, 4)]), &facts);
        assert_eq!(
            (stopped.state, stopped.reason.as_deref()),
            (JobState::Cancelled, Some(STOPPED_BY_USER))
        );
    }

    #[test]
    fn waiting_jobs_say_why() {
        let none = JobFacts::default();
        assert_eq!(
            derive(&counts(&[(TaskState::Blocked, 2)]), &none).native,
            "BLOCKED"
        );
        assert_eq!(
            derive(
                &counts(&[(TaskState::Dispatched, 1), (TaskState::Queued, 1)]),
                &none
            )
            .native,
            "DISPATCHED"
        );
        let requeued = JobFacts {
            requeue_reason: Some("requeued: agent lost".into()),
            ..Default::default()
        };
        let q = derive(&counts(&[(TaskState::Queued, 1)]), &requeued);
        assert_eq!(
            (q.state, q.native, q.reason.as_deref()),
            (JobState::Waiting, "QUEUED", Some("requeued: agent lost"))
        );
        let done = derive(&counts(&[(TaskState::Done, 3)]), &none);
        assert_eq!((done.state, done.reason), (JobState::Completed, None));
        let dep = JobFacts {
            cancel_reason: Some("dependency 4 ended Failed".into()),
            ..Default::default()
        };
        let c = derive(&counts(&[(TaskState::Cancelled, 2)]), &dep);
        assert_eq!(
            (c.state, c.reason.as_deref()),
            (JobState::Cancelled, Some("dependency 4 ended Failed"))
        );
    }
}
