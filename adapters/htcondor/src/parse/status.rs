//! The `JobStatus` table as data, one proc's state from it, and a cluster's procs folded
//! into one job.

use std::collections::BTreeMap;
use std::time::Duration;

use farm_core::{Job, JobId, JobState, Progress};
use uuid::Uuid;

use super::ProcAd;
use crate::vocabulary::JobLayout;

/// One row of the `JobStatus` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode {
    /// The `JobStatus` value.
    pub code: i64,
    /// HTCondor's name for it (`proc.h`).
    pub name: &'static str,
    /// The state it maps to before exit codes, holds and timeouts are looked at.
    pub state: JobState,
    /// Why, for the documentation table.
    pub note: &'static str,
}

/// `JobStatus` -> state: every value HTCondor defines (`proc.h`, through 25.x), as data.
/// Values not listed are Failed with the raw number in the reason.
pub const JOB_STATUS: &[StatusCode] = &[
    StatusCode {
        code: 1,
        name: "Idle",
        state: JobState::Waiting,
        note: "queued",
    },
    StatusCode {
        code: 2,
        name: "Running",
        state: JobState::Running,
        note: "",
    },
    StatusCode {
        code: 3,
        name: "Removed",
        state: JobState::Cancelled,
        note: "`RemoveReason`, e.g. `via condor_rm`",
    },
    StatusCode {
        code: 4,
        name: "Completed",
        state: JobState::Completed,
        note: "only if `ExitBySignal` is false and `ExitCode` is 0; otherwise Failed with `exit code N` or `killed by signal N`",
    },
    StatusCode {
        code: 5,
        name: "Held",
        state: JobState::Waiting,
        note: "`held: HoldReason (HoldReasonCode N, subcode M)`; Failed once held longer than `hold_timeout`, or at once for duration-limit holds (codes 46, 47)",
    },
    StatusCode {
        code: 6,
        name: "TransferringOutput",
        state: JobState::Running,
        note: "the job ran and its output is being copied back",
    },
    StatusCode {
        code: 7,
        name: "Suspended",
        state: JobState::Waiting,
        note: "paused on its execute node (not executing); resumes in place",
    },
    StatusCode {
        code: 8,
        name: "Failed",
        state: JobState::Failed,
        note: "reserved by HTCondor for future use",
    },
    StatusCode {
        code: 9,
        name: "Blocked",
        state: JobState::Waiting,
        note: "reserved by HTCondor for future use",
    },
    StatusCode {
        code: 10,
        name: "Preparing",
        state: JobState::Waiting,
        note: "HTCondor 25.13+: being prepared before it can be matched",
    },
];

/// [`JOB_STATUS`] as the Markdown table of `docs/state-mapping.md` (a test keeps the two
/// equal).
pub fn status_table_markdown() -> String {
    let mut out =
        String::from("| `JobStatus` | Name | State | Reason, notes |\n|---|---|---|---|\n");
    for row in JOB_STATUS {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            row.code, row.name, row.state, row.note
        ));
    }
    out.push_str("| anything else | | Failed | `unknown JobStatus N` |\n");
    out
}

/// The table row for a `JobStatus` value.
pub fn status_code(code: i64) -> Option<&'static StatusCode> {
    JOB_STATUS.iter().find(|s| s.code == code)
}

fn status_name(code: i64) -> String {
    status_code(code).map_or_else(|| format!("JobStatus {code}"), |s| s.name.to_owned())
}

/// Hold codes meaning a duration limit was exceeded: the job will never succeed as is.
const DURATION_LIMIT_HOLDS: &[i64] = &[46, 47];

/// The state of one proc, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcState {
    /// Mapped state.
    pub state: JobState,
    /// Why, when there is something to say.
    pub reason: Option<String>,
}

/// Applies [`JOB_STATUS`] to one proc. `now` is seconds since the epoch.
pub fn proc_state(ad: &ProcAd, now: i64, hold_timeout: Option<Duration>) -> ProcState {
    let plain = |state| ProcState {
        state,
        reason: None,
    };
    let Some(row) = status_code(ad.status) else {
        return ProcState {
            state: JobState::Failed,
            reason: Some(format!("unknown JobStatus {}", ad.status)),
        };
    };
    match ad.status {
        3 => ProcState {
            state: JobState::Cancelled,
            reason: Some(ad.remove_reason.clone().unwrap_or_else(|| "removed".into())),
        },
        4 => match (ad.exit_by_signal, ad.exit_code) {
            (Some(true), _) => ProcState {
                state: JobState::Failed,
                reason: Some(match ad.exit_signal {
                    Some(sig) => format!("killed by signal {sig}"),
                    None => "killed by a signal".into(),
                }),
            },
            (_, Some(0)) => plain(JobState::Completed),
            (_, Some(code)) => ProcState {
                state: JobState::Failed,
                reason: Some(format!("exit code {code}")),
            },
            (_, None) => ProcState {
                state: JobState::Failed,
                reason: Some("completed without an exit code".into()),
            },
        },
        5 => {
            let mut held = format!(
                "held: {}",
                ad.hold_reason.as_deref().unwrap_or("no reason given")
            );
            if let Some(code) = ad.hold_code {
                held.push_str(&format!(
                    " (HoldReasonCode {code}, subcode {})",
                    ad.hold_subcode.unwrap_or(0)
                ));
            }
            if ad
                .hold_code
                .is_some_and(|c| DURATION_LIMIT_HOLDS.contains(&c))
            {
                return ProcState {
                    state: JobState::Failed,
                    reason: Some(format!("time limit exceeded: {held}")),
                };
            }
            if let (Some(limit), Some(since)) = (hold_timeout, ad.entered_status)
                && now.saturating_sub(since) > limit.as_secs() as i64
            {
                return ProcState {
                    state: JobState::Failed,
                    reason: Some(format!(
                        "{held}; held for more than {} (hold_timeout), it stays held in the queue until released or removed",
                        humantime::format_duration(limit)
                    )),
                };
            }
            ProcState {
                state: JobState::Waiting,
                reason: Some(held),
            }
        }
        7 => ProcState {
            state: JobState::Waiting,
            reason: Some("suspended on its execute node".into()),
        },
        8..=10 => ProcState {
            state: row.state,
            reason: Some(format!("JobStatus {} ({})", row.code, row.name)),
        },
        _ => plain(row.state),
    }
}

/// How [`cluster_job`] judges time.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// Seconds since the epoch.
    pub now: i64,
    /// The `hold_timeout` setting.
    pub hold_timeout: Option<Duration>,
}

/// Folds the procs found for a cluster into one job. `missing` lists procs that no record
/// knows: each is lost, so the job cannot complete. A job is terminal only when every proc
/// is; then one failed proc fails it, else one removed proc cancels it.
pub fn cluster_job(cluster: u32, procs: &[ProcAd], missing: &[u32], judge: Judge) -> Job {
    let first = procs.first();
    let name = first
        .and_then(|p| p.farm_name.clone().or_else(|| p.batch_name.clone()))
        .or_else(|| {
            first
                .and_then(|p| p.cmd.as_deref())
                .map(|c| c.rsplit('/').next().unwrap_or(c).to_owned())
        })
        .unwrap_or_else(|| format!("cluster {cluster}"));
    let mut job = Job::new(JobId::new(cluster.to_string()), name, JobState::Waiting);
    if let Some(p) = first {
        job.tags = p
            .farm_tags
            .as_deref()
            .map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        job.render_context = p
            .render_context
            .as_deref()
            .and_then(|c| Uuid::parse_str(c).ok());
        job.attempt = p
            .attempt
            .and_then(|a| u32::try_from(a).ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1);
    }
    job.render_log_filename = procs
        .iter()
        .find_map(|p| p.user_log.as_deref().and_then(JobLayout::from_user_log))
        .map(|layout| layout.render_log(cluster));

    let multi = procs.len() + missing.len() > 1;
    let label = |proc_id: u32, reason: &str| {
        if multi {
            format!("proc {cluster}.{proc_id}: {reason}")
        } else {
            reason.to_owned()
        }
    };
    let mut states: Vec<(u32, ProcState)> = procs
        .iter()
        .map(|p| (p.proc_id, proc_state(p, judge.now, judge.hold_timeout)))
        .collect();
    for m in missing {
        states.push((
            *m,
            ProcState {
                state: JobState::Failed,
                reason: Some(
                    "lost: the job is in neither condor_q, condor_history nor its user log".into(),
                ),
            },
        ));
    }
    states.sort_by_key(|(p, _)| *p);

    let terminal = states.iter().all(|(_, s)| s.state.is_terminal());
    let pick = |want: JobState| states.iter().find(|(_, s)| s.state == want);
    let (state, deciding) = if !terminal {
        if let Some(running) = pick(JobState::Running) {
            (JobState::Running, Some(running))
        } else {
            (
                JobState::Waiting,
                states
                    .iter()
                    .find(|(_, s)| !s.state.is_terminal() && s.reason.is_some()),
            )
        }
    } else if let Some(failed) = pick(JobState::Failed) {
        (JobState::Failed, Some(failed))
    } else if let Some(cancelled) = pick(JobState::Cancelled) {
        (JobState::Cancelled, Some(cancelled))
    } else {
        (JobState::Completed, None)
    };
    job.state = state;
    job.reason = deciding.and_then(|(p, s)| s.reason.as_deref().map(|r| label(*p, r)));

    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for p in procs {
        *counts.entry(p.status).or_default() += 1;
    }
    let mut native: Vec<String> = if multi {
        counts
            .iter()
            .map(|(code, n)| format!("{n} {}", status_name(*code)))
            .collect()
    } else {
        counts.keys().map(|code| status_name(*code)).collect()
    };
    if !missing.is_empty() {
        native.push(format!("{} lost", missing.len()));
    }
    if procs.iter().any(|p| p.from_user_log) {
        native.push("(from the user log)".into());
    }
    job.native_state = Some(native.join(", "));

    let secs = |v: Option<i64>| v.filter(|t| *t > 0);
    job.submit_time = procs
        .iter()
        .filter_map(|p| secs(p.qdate))
        .min()
        .map(|t| t * 1000);
    job.start_time = procs
        .iter()
        .filter_map(|p| secs(p.start_date).or(secs(p.current_start)))
        .min()
        .map(|t| t * 1000);
    if state.is_terminal() {
        job.end_time = procs
            .iter()
            .filter_map(|p| secs(p.completion_date).or(secs(p.entered_status)))
            .max()
            .map(|t| t * 1000);
        if let (Some(start), Some(end)) = (job.start_time, job.end_time)
            && end < start
        {
            job.end_time = Some(start);
        }
    }

    if let Some(p) = first
        && let (Some(frames), Some(chunk)) =
            (p.frames.filter(|f| *f > 0), p.chunk_size.filter(|c| *c > 0))
    {
        let done: i64 = states
            .iter()
            .filter(|(_, s)| s.state == JobState::Completed)
            .map(|(proc_id, _)| chunk.min(frames - i64::from(*proc_id) * chunk).max(0))
            .sum();
        job.progress = Some(Progress {
            frames_done: done as u64,
            frames_total: frames as u64,
        });
    }
    job
}
