//! HTCondor output -> job states and errors: pure functions, tested on recorded output
//! (`fixtures/htcondor/`).
//!
//! - [`parse_ads`]: `condor_q -json` / `condor_history -json` (an array of ads; `condor_q`
//!   prints nothing at all when no job matches, `condor_history` prints `[\n]\n`).
//! - [`JOB_STATUS`]: the `JobStatus` table, as data; [`proc_state`] applies it to one proc,
//!   [`cluster_job`] folds a cluster's procs into one [`Job`].
//! - [`parse_user_log`]: HTCondor's user (event) log, the record of last resort once a job
//!   has left both the queue and the history.
//! - [`parse_terse`], [`parse_action`]: `condor_submit -terse` and `condor_rm`/`condor_hold`/
//!   `condor_release` replies; [`command_error`] is the one place a failed command becomes a
//!   [`FarmError`].

use std::collections::BTreeMap;
use std::time::Duration;

use farm_core::{CommandOutput, FarmError, Job, JobId, JobState, Progress, Result};
use serde_json::Value;
use uuid::Uuid;

use crate::render::{JobLayout, attr};
use crate::syntax;

/// The cluster id a job id names: a positive decimal `int` without leading zeros. Anything
/// else names no HTCondor job.
pub fn cluster_id(id: &JobId) -> Option<u32> {
    let s = id.as_str();
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse::<u32>().ok().filter(|n| *n <= i32::MAX as u32)
}

/// Attributes the adapter asks `condor_q`/`condor_history` for (`-attributes`).
pub const QUERY_ATTRIBUTES: &[&str] = &[
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "RemoveReason",
    "EnteredCurrentStatus",
    "QDate",
    "JobStartDate",
    "JobCurrentStartDate",
    "CompletionDate",
    "JobBatchName",
    "Cmd",
    "UserLog",
    attr::NAME,
    attr::RENDER_CONTEXT,
    attr::TAGS,
    attr::ATTEMPT,
    attr::TASKS,
    attr::FRAMES,
    attr::CHUNK_SIZE,
];

/// What the adapter knows about one proc, from its job ad (or its user log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcAd {
    /// `ClusterId`.
    pub cluster: u32,
    /// `ProcId`.
    pub proc_id: u32,
    /// `JobStatus`.
    pub status: i64,
    /// `ExitCode` (undefined when killed by a signal).
    pub exit_code: Option<i64>,
    /// `ExitBySignal`.
    pub exit_by_signal: Option<bool>,
    /// `ExitSignal`.
    pub exit_signal: Option<i64>,
    /// `HoldReason`.
    pub hold_reason: Option<String>,
    /// `HoldReasonCode`.
    pub hold_code: Option<i64>,
    /// `HoldReasonSubCode`.
    pub hold_subcode: Option<i64>,
    /// `RemoveReason`.
    pub remove_reason: Option<String>,
    /// `EnteredCurrentStatus` (seconds since the epoch).
    pub entered_status: Option<i64>,
    /// `QDate`.
    pub qdate: Option<i64>,
    /// `JobStartDate`: first start.
    pub start_date: Option<i64>,
    /// `JobCurrentStartDate`: start of the current or last run.
    pub current_start: Option<i64>,
    /// `CompletionDate` (0 when the job did not complete).
    pub completion_date: Option<i64>,
    /// `JobBatchName`.
    pub batch_name: Option<String>,
    /// `Cmd`.
    pub cmd: Option<String>,
    /// `UserLog`.
    pub user_log: Option<String>,
    /// `FarmName`, decoded.
    pub farm_name: Option<String>,
    /// `FarmTags`.
    pub farm_tags: Option<String>,
    /// `FarmRenderContext`.
    pub render_context: Option<String>,
    /// `FarmAttempt`.
    pub attempt: Option<i64>,
    /// `FarmTasks`.
    pub tasks: Option<i64>,
    /// `FarmFrames`.
    pub frames: Option<i64>,
    /// `FarmChunkSize`.
    pub chunk_size: Option<i64>,
    /// Rebuilt from the user log rather than read from a job ad.
    pub from_user_log: bool,
}

/// The attributes read from one ad; every other key is skipped without being stored, which
/// keeps parsing full ads (50+ attributes each) cheap.
#[derive(serde::Deserialize)]
struct RawAd {
    #[serde(rename = "MyType")]
    my_type: Option<Value>,
    #[serde(rename = "ClusterId")]
    cluster: Option<Value>,
    #[serde(rename = "ProcId")]
    proc_id: Option<Value>,
    #[serde(rename = "JobStatus")]
    status: Option<Value>,
    #[serde(rename = "ExitCode")]
    exit_code: Option<Value>,
    #[serde(rename = "ExitBySignal")]
    exit_by_signal: Option<Value>,
    #[serde(rename = "ExitSignal")]
    exit_signal: Option<Value>,
    #[serde(rename = "HoldReason")]
    hold_reason: Option<Value>,
    #[serde(rename = "HoldReasonCode")]
    hold_code: Option<Value>,
    #[serde(rename = "HoldReasonSubCode")]
    hold_subcode: Option<Value>,
    #[serde(rename = "RemoveReason")]
    remove_reason: Option<Value>,
    #[serde(rename = "EnteredCurrentStatus")]
    entered_status: Option<Value>,
    #[serde(rename = "QDate")]
    qdate: Option<Value>,
    #[serde(rename = "JobStartDate")]
    start_date: Option<Value>,
    #[serde(rename = "JobCurrentStartDate")]
    current_start: Option<Value>,
    #[serde(rename = "CompletionDate")]
    completion_date: Option<Value>,
    #[serde(rename = "JobBatchName")]
    batch_name: Option<Value>,
    #[serde(rename = "Cmd")]
    cmd: Option<Value>,
    #[serde(rename = "UserLog")]
    user_log: Option<Value>,
    #[serde(rename = "FarmName")]
    farm_name: Option<Value>,
    #[serde(rename = "FarmTags")]
    farm_tags: Option<Value>,
    #[serde(rename = "FarmRenderContext")]
    render_context: Option<Value>,
    #[serde(rename = "FarmAttempt")]
    attempt: Option<Value>,
    #[serde(rename = "FarmTasks")]
    tasks: Option<Value>,
    #[serde(rename = "FarmFrames")]
    frames: Option<Value>,
    #[serde(rename = "FarmChunkSize")]
    chunk_size: Option<Value>,
}

fn int(v: &Option<Value>) -> Option<i64> {
    match v.as_ref()? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

fn string(v: &Option<Value>) -> Option<String> {
    match v.as_ref()? {
        // ClassAd JSON writes expressions as "/Expr(...)/" strings: not a plain value.
        Value::String(s) if s.starts_with("/Expr(") && s.ends_with(")/") => None,
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn boolean(v: &Option<Value>) -> Option<bool> {
    v.as_ref()?.as_bool()
}

/// Parses `condor_q -json` or `condor_history -json` output (also `-jsonl`). Empty output
/// means no ads. Anything that is not a list of job ads with `ClusterId`, `ProcId` and
/// `JobStatus` is a `Scheduler` error quoting the output, never a guessed state.
pub fn parse_ads(tool: &str, text: &str) -> Result<Vec<ProcAd>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let garbage = |why: String| {
        let head: String = trimmed.chars().take(200).collect();
        FarmError::scheduler(format!(
            "{tool} printed output that is not a list of job ads ({why}): {head:?}"
        ))
    };
    let raw: Vec<RawAd> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| garbage(e.to_string()))?
    } else {
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| garbage(e.to_string())))
            .collect::<Result<_>>()?
    };
    let mut ads = Vec::with_capacity(raw.len());
    for ad in &raw {
        if string(&ad.my_type).as_deref() == Some("Summary") {
            continue;
        }
        let (Some(cluster), Some(proc_id), Some(status)) =
            (int(&ad.cluster), int(&ad.proc_id), int(&ad.status))
        else {
            return Err(garbage(
                "an ad lacks an integer ClusterId, ProcId or JobStatus".into(),
            ));
        };
        let (Ok(cluster), Ok(proc_id)) = (u32::try_from(cluster), u32::try_from(proc_id)) else {
            return Err(garbage(format!(
                "job id {cluster}.{proc_id} is out of range"
            )));
        };
        ads.push(ProcAd {
            cluster,
            proc_id,
            status,
            exit_code: int(&ad.exit_code),
            exit_by_signal: boolean(&ad.exit_by_signal),
            exit_signal: int(&ad.exit_signal),
            hold_reason: string(&ad.hold_reason),
            hold_code: int(&ad.hold_code),
            hold_subcode: int(&ad.hold_subcode),
            remove_reason: string(&ad.remove_reason),
            entered_status: int(&ad.entered_status),
            qdate: int(&ad.qdate),
            start_date: int(&ad.start_date),
            current_start: int(&ad.current_start),
            completion_date: int(&ad.completion_date),
            batch_name: string(&ad.batch_name),
            cmd: string(&ad.cmd),
            user_log: string(&ad.user_log),
            farm_name: string(&ad.farm_name).map(|n| syntax::percent_decode(&n)),
            farm_tags: string(&ad.farm_tags),
            render_context: string(&ad.render_context),
            attempt: int(&ad.attempt),
            tasks: int(&ad.tasks),
            frames: int(&ad.frames),
            chunk_size: int(&ad.chunk_size),
            from_user_log: false,
        });
    }
    Ok(ads)
}

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

/// What a user log says about one proc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogProc {
    /// The `JobStatus` the events imply.
    pub status: i64,
    /// Exit code of a normal termination.
    pub exit_code: Option<i64>,
    /// Signal of an abnormal termination.
    pub exit_signal: Option<i64>,
    /// Hold or abort reason.
    pub reason: Option<String>,
    /// Hold code.
    pub hold_code: Option<i64>,
    /// Hold subcode.
    pub hold_subcode: Option<i64>,
    /// When it was submitted (seconds).
    pub submitted: Option<i64>,
    /// First execution.
    pub started: Option<i64>,
    /// Termination or abort.
    pub ended: Option<i64>,
    /// Time of the last event.
    pub last_event: Option<i64>,
}

impl LogProc {
    /// Whether the log records how the proc ended.
    pub fn is_final(&self) -> bool {
        matches!(self.status, 3 | 4)
    }

    /// The proc as an ad, for [`proc_state`].
    pub fn to_ad(&self, cluster: u32, proc_id: u32) -> ProcAd {
        ProcAd {
            cluster,
            proc_id,
            status: self.status,
            exit_code: self.exit_code,
            exit_by_signal: (self.status == 4).then_some(self.exit_signal.is_some()),
            exit_signal: self.exit_signal,
            hold_reason: (self.status == 5).then(|| self.reason.clone()).flatten(),
            hold_code: self.hold_code,
            hold_subcode: self.hold_subcode,
            remove_reason: (self.status == 3).then(|| self.reason.clone()).flatten(),
            entered_status: self.last_event,
            qdate: self.submitted,
            start_date: self.started,
            completion_date: self.ended,
            from_user_log: true,
            ..ProcAd::default()
        }
    }
}

/// Parses an HTCondor user log (the text event format) into the state of each proc,
/// keyed by `(cluster, proc)`. Unknown events are skipped; times are local time.
pub fn parse_user_log(text: &str) -> BTreeMap<(u32, u32), LogProc> {
    let mut procs: BTreeMap<(u32, u32), LogProc> = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((event, cluster, proc_id, time)) = parse_event_header(line) else {
            continue;
        };
        let mut body = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("...") {
                lines.next();
                break;
            }
            if parse_event_header(next).is_some() {
                break;
            }
            body.push(lines.next().unwrap_or_default().trim());
        }
        let p = procs.entry((cluster, proc_id)).or_insert_with(|| LogProc {
            status: 1,
            ..LogProc::default()
        });
        if time.is_some() {
            p.last_event = time;
        }
        match event {
            0 => {
                p.status = 1;
                p.submitted = time;
            }
            1 => {
                p.status = 2;
                p.started = p.started.or(time);
            }
            4 | 7 => p.status = 1,
            5 => {
                p.status = 4;
                p.ended = time;
                let first = body.first().copied().unwrap_or_default();
                if let Some(v) = number_after(first, "return value ") {
                    p.exit_code = Some(v);
                    p.exit_signal = None;
                } else if let Some(v) = number_after(first, "signal ") {
                    p.exit_signal = Some(v);
                    p.exit_code = None;
                }
            }
            9 => {
                p.status = 3;
                p.ended = time;
                p.reason = body
                    .first()
                    .map(|s| (*s).to_owned())
                    .filter(|s| !s.is_empty());
            }
            10 => p.status = 7,
            11 | 13 => p.status = if event == 11 { 2 } else { 1 },
            12 => {
                p.status = 5;
                p.reason = body
                    .first()
                    .map(|s| (*s).to_owned())
                    .filter(|s| !s.is_empty());
                if let Some(codes) = body.iter().find(|l| l.starts_with("Code ")) {
                    p.hold_code = number_after(codes, "Code ");
                    p.hold_subcode = number_after(codes, "Subcode ");
                }
            }
            _ => {}
        }
    }
    procs
}

fn number_after(text: &str, key: &str) -> Option<i64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `NNN (C.P.S) DATE TIME text` -> (event, cluster, proc, time).
fn parse_event_header(line: &str) -> Option<(u32, u32, u32, Option<i64>)> {
    let (code, rest) = line.split_once(' ')?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix('(')?;
    let (id, rest) = rest.split_once(')')?;
    let mut parts = id.split('.');
    let cluster = parts.next()?.parse().ok()?;
    let proc_id = parts.next()?.parse().ok()?;
    let mut words = rest.split_whitespace();
    let date = words.next().unwrap_or_default();
    let time = if date.contains('T') {
        parse_local_time(&date.replace('T', " "))
    } else {
        parse_local_time(&format!("{date} {}", words.next().unwrap_or_default()))
    };
    Some((code.parse().ok()?, cluster, proc_id, time))
}

fn parse_local_time(text: &str) -> Option<i64> {
    use chrono::TimeZone;
    let text = text.split('.').next()?.trim_end_matches('Z');
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
}

/// Formats a time as the user log writes it (local time).
pub fn format_log_time(secs: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Parses `condor_submit -terse` output: `C.first - C.last` -> `(cluster, procs)`.
pub fn parse_terse(out: &CommandOutput) -> Result<(u32, u32)> {
    let line = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let parsed = (|| {
        let (first, last) = line.split_once(" - ")?;
        let (c1, p1) = first.trim().split_once('.')?;
        let (c2, p2) = last.trim().split_once('.')?;
        let (c1, c2): (u32, u32) = (c1.parse().ok()?, c2.parse().ok()?);
        let (p1, p2): (u32, u32) = (p1.parse().ok()?, p2.parse().ok()?);
        (c1 == c2 && p1 == 0 && p2 >= p1).then_some((c1, p2 + 1))
    })();
    parsed.ok_or_else(|| {
        FarmError::scheduler(format!(
            "condor_submit -terse printed {:?}, not `C.0 - C.N`; stderr: {}",
            out.stdout.trim(),
            out.stderr.trim()
        ))
    })
}

/// The cluster-wide actions of `condor_rm`, `condor_hold` and `condor_release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `condor_rm`.
    Remove,
    /// `condor_hold`.
    Hold,
    /// `condor_release`.
    Release,
}

impl Action {
    /// The tool's name.
    pub fn tool(self) -> &'static str {
        match self {
            Action::Remove => "condor_rm",
            Action::Hold => "condor_hold",
            Action::Release => "condor_release",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Remove => "remove",
            Action::Hold => "hold",
            Action::Release => "release",
        }
    }
}

/// What an action did to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// The tool acted on the cluster's procs.
    Done,
    /// No proc of the cluster was in a state the action applies to (none in the queue, none
    /// held, ...): the job has left the queue or already is where the action would put it.
    NothingToDo,
}

/// Interprets an action's reply, using the texts of `condor_rm.V6/rm.cpp` and
/// `JobActionResults::getResultString`.
pub fn parse_action(action: Action, cluster: u32, out: &CommandOutput) -> Result<ActionOutcome> {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    if out.success() && text.contains(&format!("All jobs in cluster {cluster} have been")) {
        return Ok(ActionOutcome::Done);
    }
    if out.success() && text.contains("There are no jobs in the queue") {
        return Ok(ActionOutcome::NothingToDo);
    }
    let nothing = [
        format!(
            "Couldn't find/{} all jobs in cluster {cluster}",
            action.verb()
        ),
        format!("Job {cluster}."),
    ];
    if !text.to_ascii_lowercase().contains("permission denied")
        && (text.contains(&nothing[0])
            || (text.contains(&nothing[1])
                && [
                    "not found",
                    "already held",
                    "not held to be released",
                    "already marked for removal",
                ]
                .iter()
                .any(|s| text.contains(s))))
    {
        return Ok(ActionOutcome::NothingToDo);
    }
    Err(command_error(action.tool(), out))
}

/// The one mapping from a failed command to a [`FarmError`], keeping HTCondor's words.
pub fn command_error(tool: &str, out: &CommandOutput) -> FarmError {
    let said = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    let status = match out.status {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    let message = format!("{tool} {status}: {said}");
    let lower = said.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if out.status.is_none() {
        FarmError::unavailable(message)
    } else if out.status == Some(127)
        || has(&[
            &format!("{tool}: not found"),
            &format!("{tool}: command not found"),
        ])
    {
        FarmError::config(format!(
            "{message} (is HTCondor installed on the submit host? see settings.bin_dir)"
        ))
    } else if has(&[
        "permission denied",
        "not authorized",
        "authentication",
        "authenticate",
        "no permission",
    ]) {
        FarmError::permission_denied(message)
    } else if has(&[
        "can't find address",
        "cannot find address",
        "unable to locate",
        "failed to connect",
        "connection refused",
        "couldn't contact",
        "can't connect",
        "failed to fetch ads",
        "timed out",
        "no route to host",
        "temporarily unavailable",
        "secman",
    ]) {
        FarmError::unavailable(message)
    } else {
        FarmError::scheduler(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(status: i64) -> ProcAd {
        ProcAd {
            cluster: 7,
            proc_id: 0,
            status,
            ..ProcAd::default()
        }
    }

    const JUDGE: Judge = Judge {
        now: 1_700_000_000,
        hold_timeout: Some(Duration::from_secs(3600)),
    };

    #[test]
    fn cluster_ids_are_canonical_positive_ints() {
        assert_eq!(cluster_id(&JobId::new("4243")), Some(4243));
        assert_eq!(cluster_id(&JobId::new("987654321")), Some(987_654_321));
        for bad in [
            "",
            "0",
            "012",
            "4243.0",
            "farm-conformance-no-such-job",
            "-1",
            "2147483648",
            "99999999999",
        ] {
            assert_eq!(cluster_id(&JobId::new(bad)), None, "{bad}");
        }
    }

    /// Every status HTCondor defines, and then some, maps to a state; unknown ones fail
    /// with the raw number and are never a success.
    #[test]
    fn every_job_status_is_mapped_explicitly() {
        for code in -2..=64 {
            let s = proc_state(&ad(code), JUDGE.now, JUDGE.hold_timeout);
            match status_code(code) {
                Some(row) => {
                    assert!((1..=10).contains(&code), "{code}");
                    if code != 4 && code != 5 {
                        assert_eq!(s.state, row.state, "{code}");
                    }
                }
                None => {
                    assert_eq!(s.state, JobState::Failed, "{code}");
                    assert_eq!(s.reason.unwrap(), format!("unknown JobStatus {code}"));
                }
            }
        }
        let codes: Vec<i64> = JOB_STATUS.iter().map(|r| r.code).collect();
        assert_eq!(
            codes,
            (1..=10).collect::<Vec<_>>(),
            "the table lists every value HTCondor defines"
        );
    }

    #[test]
    fn completed_is_success_only_without_signal_and_with_exit_code_zero() {
        let done = |code: Option<i64>, sig: Option<bool>, signal: Option<i64>| {
            proc_state(
                &ProcAd {
                    exit_code: code,
                    exit_by_signal: sig,
                    exit_signal: signal,
                    ..ad(4)
                },
                0,
                None,
            )
        };
        assert_eq!(done(Some(0), Some(false), None).state, JobState::Completed);
        assert_eq!(done(Some(0), None, None).state, JobState::Completed);
        let failed = done(Some(3), Some(false), None);
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (JobState::Failed, Some("exit code 3"))
        );
        let killed = done(None, Some(true), Some(9));
        assert_eq!(
            (killed.state, killed.reason.as_deref()),
            (JobState::Failed, Some("killed by signal 9"))
        );
        assert_eq!(done(Some(0), Some(true), Some(15)).state, JobState::Failed);
        assert_eq!(done(None, Some(false), None).state, JobState::Failed);
    }

    #[test]
    fn holds_wait_until_the_timeout_or_fail_at_once_for_duration_limits() {
        let held = |code: i64, since: i64| ProcAd {
            hold_reason: Some("via condor_hold (by user alice)".into()),
            hold_code: Some(code),
            hold_subcode: Some(0),
            entered_status: Some(since),
            ..ad(5)
        };
        let fresh = proc_state(&held(1, JUDGE.now - 60), JUDGE.now, JUDGE.hold_timeout);
        assert_eq!(fresh.state, JobState::Waiting);
        assert_eq!(
            fresh.reason.unwrap(),
            "held: via condor_hold (by user alice) (HoldReasonCode 1, subcode 0)"
        );
        let stale = proc_state(&held(1, JUDGE.now - 7200), JUDGE.now, JUDGE.hold_timeout);
        assert_eq!(stale.state, JobState::Failed);
        assert!(stale.reason.unwrap().contains("held for more than 1h"));
        let forever = proc_state(&held(1, 0), JUDGE.now, None);
        assert_eq!(forever.state, JobState::Waiting);
        for code in [46, 47] {
            let limit = proc_state(&held(code, JUDGE.now), JUDGE.now, None);
            assert_eq!(limit.state, JobState::Failed);
            assert!(limit.reason.unwrap().starts_with("time limit exceeded"));
        }
    }

    #[test]
    fn a_cluster_is_terminal_only_when_every_proc_is() {
        let p = |proc_id: u32, status: i64, exit: Option<i64>| ProcAd {
            proc_id,
            exit_code: exit,
            exit_by_signal: Some(false),
            ..ad(status)
        };
        let job = cluster_job(7, &[p(0, 4, Some(3)), p(1, 2, None)], &[], JUDGE);
        assert_eq!(job.state, JobState::Running);
        let job = cluster_job(
            7,
            &[p(0, 4, Some(0)), p(1, 4, Some(3)), p(2, 3, None)],
            &[],
            JUDGE,
        );
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.reason.as_deref(), Some("proc 7.1: exit code 3"));
        assert_eq!(job.native_state.as_deref(), Some("1 Removed, 2 Completed"));
        let job = cluster_job(7, &[p(0, 4, Some(0)), p(1, 3, None)], &[], JUDGE);
        assert_eq!(job.state, JobState::Cancelled);
        let job = cluster_job(7, &[p(0, 4, Some(0))], &[1], JUDGE);
        assert_eq!(job.state, JobState::Failed);
        assert!(job.reason.unwrap().contains("lost"));
        let job = cluster_job(7, &[p(0, 1, None), p(1, 1, None)], &[], JUDGE);
        assert_eq!((job.state, job.reason), (JobState::Waiting, None));
    }

    /// Every attribute the adapter asks for is read back (the names in `RawAd` and in
    /// `QUERY_ATTRIBUTES` agree).
    #[test]
    fn every_queried_attribute_is_read() {
        let mut ad = serde_json::Map::new();
        for (i, name) in QUERY_ATTRIBUTES.iter().enumerate() {
            let value = match *name {
                "ExitBySignal" => Value::Bool(true),
                "HoldReason" | "RemoveReason" | "JobBatchName" | "Cmd" | "UserLog" | "FarmName"
                | "FarmTags" | "FarmRenderContext" => Value::String(format!("v{i}")),
                _ => Value::from(i as i64 + 1),
            };
            ad.insert((*name).to_owned(), value);
        }
        let text = serde_json::to_string(&vec![ad]).unwrap();
        let parsed = parse_ads("condor_q", &text).unwrap().remove(0);
        let debug = format!("{parsed:?}");
        for (i, name) in QUERY_ATTRIBUTES.iter().enumerate() {
            let shown = match *name {
                "ExitBySignal" => "Some(true)".to_owned(),
                "HoldReason" | "RemoveReason" | "JobBatchName" | "Cmd" | "UserLog" | "FarmName"
                | "FarmTags" | "FarmRenderContext" => format!("Some(\"v{i}\")"),
                "ClusterId" | "ProcId" | "JobStatus" => (i + 1).to_string(),
                _ => format!("Some({})", i + 1),
            };
            assert!(
                debug.contains(&shown),
                "{name} ({shown}) missing from {debug}"
            );
        }
    }

    #[test]
    fn terse_output_gives_the_cluster_and_proc_count() {
        let out = |s: &str| CommandOutput {
            status: Some(0),
            stdout: s.into(),
            stderr: String::new(),
        };
        assert_eq!(parse_terse(&out("4243.0 - 4243.9\n")).unwrap(), (4243, 10));
        assert_eq!(parse_terse(&out("12.0 - 12.0\n")).unwrap(), (12, 1));
        for bad in [
            "",
            "Submitting job(s).\n1 job(s) submitted to cluster 6.\n",
            "1.0 - 2.3",
            "x.0 - x.1",
        ] {
            assert!(parse_terse(&out(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_errors_keep_the_native_message() {
        let failed = |status: Option<i32>, stderr: &str| CommandOutput {
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        };
        let e = command_error(
            "condor_q",
            &failed(
                Some(1),
                "-- Failed to fetch ads from: <1.2.3.4:9618> : schedd01\nSECMAN:2007",
            ),
        );
        assert_eq!(e.kind(), farm_core::ErrorKind::Unavailable);
        assert!(e.to_string().contains("Failed to fetch ads from"), "{e}");
        let e = command_error(
            "condor_rm",
            &failed(Some(1), "\nPermission denied to remove job 4243.0"),
        );
        assert_eq!(e.kind(), farm_core::ErrorKind::PermissionDenied);
        let e = command_error(
            "condor_submit",
            &failed(
                Some(1),
                "\nERROR: on Line 3 of submit file: Unbalanced quote",
            ),
        );
        assert_eq!(e.kind(), farm_core::ErrorKind::Scheduler);
        assert!(e.to_string().contains("Unbalanced quote"));
        let e = command_error("condor_q", &failed(Some(127), "sh: 1: condor_q: not found"));
        assert_eq!(e.kind(), farm_core::ErrorKind::Config);
        assert_eq!(
            command_error("condor_q", &failed(None, "")).kind(),
            farm_core::ErrorKind::Unavailable
        );
    }
}
