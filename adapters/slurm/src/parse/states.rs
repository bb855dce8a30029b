//! The state table: every Slurm state word mapped onto the five states, and exit statuses
//! in words. Data, kept apart from the parsers that use it so the table reads as one.

use farm_core::JobState;

/// One row of the state table: a Slurm state word (and its compact squeue code) mapped
/// onto the five states, with the reason a user reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlurmState {
    /// The long name (`PENDING`), as `squeue --json`, slurmrestd and sacct print it.
    pub name: &'static str,
    /// The compact code (`PD`) of `squeue -o %t`; empty for flags squeue never prints.
    pub code: &'static str,
    /// The state it maps to.
    pub state: JobState,
    /// Why, in words (`time limit reached`); empty when the state says it all.
    pub reason: &'static str,
}

const fn st(
    name: &'static str,
    code: &'static str,
    state: JobState,
    reason: &'static str,
) -> SlurmState {
    SlurmState {
        name,
        code,
        state,
        reason,
    }
}

/// Every Slurm job state and state flag, mapped. `docs/state-mapping.md` shows this table;
/// a test checks it covers every code of squeue's `JOB STATE CODES` list.
///
/// Requeue, preemption, holds, suspension and SIGSTOP return a job to Waiting: Slurm may
/// run it again, so none of them is terminal.
pub const SLURM_STATES: &[SlurmState] = &[
    st("PENDING", "PD", JobState::Waiting, ""),
    st(
        "CONFIGURING",
        "CF",
        JobState::Waiting,
        "nodes are being configured",
    ),
    st("REQUEUED", "RQ", JobState::Waiting, "requeued"),
    st("REQUEUE_HOLD", "RH", JobState::Waiting, "requeued and held"),
    st(
        "REQUEUE_FED",
        "RF",
        JobState::Waiting,
        "requeued by the federation",
    ),
    st(
        "RESV_DEL_HOLD",
        "RD",
        JobState::Waiting,
        "held: its reservation was deleted",
    ),
    st(
        "SPECIAL_EXIT",
        "SE",
        JobState::Waiting,
        "requeued and held after a special exit",
    ),
    st("PREEMPTED", "PR", JobState::Waiting, "preempted"),
    st("SUSPENDED", "S", JobState::Waiting, "suspended"),
    st("STOPPED", "ST", JobState::Waiting, "stopped with SIGSTOP"),
    st(
        "POWER_UP_NODE",
        "",
        JobState::Waiting,
        "waiting for nodes to power up",
    ),
    st("RUNNING", "R", JobState::Running, ""),
    st("COMPLETING", "CG", JobState::Running, "completing"),
    st("RESIZING", "RS", JobState::Running, "resizing"),
    st("SIGNALING", "SI", JobState::Running, "being signaled"),
    st("STAGE_OUT", "SO", JobState::Running, "staging out files"),
    st(
        "UPDATE_DB",
        "",
        JobState::Running,
        "updating the accounting database",
    ),
    st("COMPLETED", "CD", JobState::Completed, ""),
    st("CANCELLED", "CA", JobState::Cancelled, "cancelled"),
    st(
        "REVOKED",
        "RV",
        JobState::Cancelled,
        "revoked: another cluster of the federation runs it",
    ),
    st("FAILED", "F", JobState::Failed, "failed"),
    st("TIMEOUT", "TO", JobState::Failed, "time limit reached"),
    st("NODE_FAIL", "NF", JobState::Failed, "a node failed"),
    st("BOOT_FAIL", "BF", JobState::Failed, "a node failed to boot"),
    st("DEADLINE", "DL", JobState::Failed, "deadline reached"),
    st("OUT_OF_MEMORY", "OOM", JobState::Failed, "out of memory"),
    st("LAUNCH_FAILED", "", JobState::Failed, "launch failed"),
    st(
        "RECONFIG_FAIL",
        "",
        JobState::Failed,
        "node reconfiguration failed",
    ),
];

/// Pending reasons that mean the job can never run as submitted, in words users
/// understand. A `PENDING` job with one of these stays Waiting (Slurm keeps it, and an
/// administrator may still change the partition or limits), but its reason says so:
/// `can never run here: PartitionConfig — the partition cannot satisfy the request`.
/// `docs/state-mapping.md` shows this table.
pub const NEVER_RUNS: &[(&str, &str)] = &[
    (
        "PartitionConfig",
        "the partition cannot satisfy the request",
    ),
    (
        "PartitionNodeLimit",
        "the request needs more nodes than the partition allows",
    ),
    (
        "PartitionTimeLimit",
        "the time limit is longer than the partition allows",
    ),
    (
        "BadConstraints",
        "no node has the requested features or resources",
    ),
    ("InvalidAccount", "the account is not valid"),
    ("InvalidQOS", "the quality of service is not valid"),
    (
        "AssocMaxCpuPerJobLimit",
        "the request needs more CPUs than the account allows one job",
    ),
    (
        "AssocMaxNodePerJobLimit",
        "the request needs more nodes than the account allows one job",
    ),
    (
        "AssocMaxWallDurationPerJobLimit",
        "the time limit is longer than the account allows one job",
    ),
    (
        "QOSMaxCpuPerJobLimit",
        "the request needs more CPUs than the quality of service allows one job",
    ),
    (
        "QOSMaxNodePerJobLimit",
        "the request needs more nodes than the quality of service allows one job",
    ),
    (
        "QOSMaxMemoryPerJob",
        "the request needs more memory than the quality of service allows one job",
    ),
    (
        "QOSMaxWallDurationPerJobLimit",
        "the time limit is longer than the quality of service allows one job",
    ),
    (
        "DependencyNeverSatisfied",
        "a dependency ended without completing",
    ),
];

/// `can never run here: <reason> — <why>` for a pending reason of [`NEVER_RUNS`].
pub fn never_runs(slurm_reason: &str) -> Option<String> {
    NEVER_RUNS
        .iter()
        .find(|(reason, _)| *reason == slurm_reason)
        .map(|(reason, why)| format!("can never run here: {reason} — {why}"))
}

/// Maps a state word (long name, compact code, or sacct's `CANCELLED by 1000`) onto a state
/// and a reason. An unknown word is `Failed` naming it: never a silent success.
pub fn map_state(word: &str) -> (JobState, String) {
    match lookup(word) {
        Some(s) => (s.state, s.reason.to_owned()),
        None => {
            let word = word.split_whitespace().next().unwrap_or("");
            (JobState::Failed, format!("unknown Slurm state {word:?}"))
        }
    }
}

/// How a task's processes ended, as each source reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitStatus {
    /// Not reported.
    #[default]
    Unknown,
    /// A raw wait status (`squeue --json`, slurmrestd): 256 is exit 1, 15 is signal 15.
    Raw(i64),
    /// sacct's and jobcomp's `code:signal`.
    Pair(i64, i64),
}

impl ExitStatus {
    /// `exit code N` or `killed by signal N`; `None` for a clean or unknown exit.
    pub fn describe(self) -> Option<String> {
        let (code, signal) = match self {
            ExitStatus::Unknown => return None,
            ExitStatus::Raw(w) => {
                if w & 0x7f == 0 {
                    (w >> 8, 0)
                } else {
                    (0, w & 0x7f)
                }
            }
            ExitStatus::Pair(c, s) => (c, s),
        };
        match (code, signal) {
            (0, 0) => None,
            (_, 0) => Some(format!("exit code {code}")),
            (_, s) => Some(format!("killed by signal {s}")),
        }
    }
}

/// The table row of a state word (long name, compact code, or sacct's `CANCELLED by N`).
pub(super) fn lookup(word: &str) -> Option<&'static SlurmState> {
    let word = word
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+');
    SLURM_STATES
        .iter()
        .find(|s| s.name == word || (!s.code.is_empty() && s.code == word))
}
