//! HTCondor output -> job states and errors: pure functions, tested on recorded output
//! (`fixtures/htcondor/`).
//!
//! - [`parse_ads`]: `condor_q -json` / `condor_history -json` (an array of ads; `condor_q`
//!   prints nothing at all when no job matches, `condor_history` prints `[\n]\n`).
//! - [`JOB_STATUS`]: the `JobStatus` table, as data; [`proc_state`] applies it to one proc,
//!   [`cluster_job`] folds a cluster's procs into one [`Job`](farm_core::Job).
//! - [`parse_user_log`]: HTCondor's user (event) log, the record of last resort once a job
//!   has left both the queue and the history.
//! - [`parse_terse`], [`parse_action`]: `condor_submit -terse` and `condor_rm`/`condor_hold`/
//!   `condor_release` replies; [`command_error`] is the one place a failed command becomes a
//!   [`FarmError`].

use farm_core::{CommandOutput, FarmError, Result};
use serde_json::Value;

use crate::syntax;
use crate::vocabulary::attr;

mod status;
mod user_log;

pub use status::{
    JOB_STATUS, Judge, ProcState, StatusCode, cluster_job, proc_state, status_code,
    status_table_markdown,
};
pub use user_log::{LogProc, format_log_time, parse_user_log};

pub use crate::vocabulary::cluster_id;

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

/// `condor_submit -terse -dry-run - -`'s answer: the `C.0 - C.N` line among the ads it
/// printed becomes the report (`condor_submit -dry-run: N proc(s) would be queued`); a
/// refusal (exit 1, `ERROR: ...` on stderr) is `InvalidRequest` in condor_submit's words,
/// unless it is about reaching the schedd or running the tool at all.
pub fn parse_dry_run(out: &CommandOutput) -> Result<farm_core::CheckReport> {
    if !out.success() {
        let err = command_error("condor_submit -dry-run", out);
        return Err(match err {
            FarmError::Scheduler { message, .. } if out.status == Some(1) => {
                FarmError::invalid("request", message)
            }
            other => other,
        });
    }
    let summary = out.stdout.lines().rev().map(str::trim).find(|l| {
        l.split_once(" - ").is_some_and(|(a, b)| {
            [a, b].iter().all(|id| {
                id.split_once('.').is_some_and(|(c, p)| {
                    !c.is_empty()
                        && !p.is_empty()
                        && c.bytes().chain(p.bytes()).all(|b| b.is_ascii_digit())
                })
            })
        })
    });
    let Some(line) = summary else {
        return Err(FarmError::scheduler(format!(
            "condor_submit -dry-run printed no `C.0 - C.N` line: {:?}; stderr: {}",
            out.stdout.chars().take(300).collect::<String>(),
            out.stderr.trim()
        )));
    };
    let (_, procs) = parse_terse(&CommandOutput {
        status: Some(0),
        stdout: line.to_owned(),
        stderr: String::new(),
    })?;
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("WARNING"))
        .collect();
    let mut message = format!(
        "condor_submit -dry-run accepted the submit description: {procs} proc(s) would be queued"
    );
    if !warnings.is_empty() {
        message.push_str(&format!(" ({})", warnings.join("; ")));
    }
    Ok(farm_core::CheckReport {
        message,
        estimated_start: None,
        placement: None,
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
    use std::time::Duration;

    #[test]
    fn dry_run_answers() {
        use farm_core::ErrorKind;
        let out = |status, stdout: &str, stderr: &str| CommandOutput {
            status: Some(status),
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let report = parse_dry_run(&out(0, "ClusterId=1\nProcId=0\n\n1.0 - 1.3\n", "")).unwrap();
        assert_eq!(
            report.message,
            "condor_submit -dry-run accepted the submit description: 4 proc(s) would be queued"
        );
        let refused = parse_dry_run(&out(
            1,
            "",
            "\nERROR: on Line 5 of submit file: Unbalanced quotes\n",
        ))
        .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidRequest);
        assert!(
            refused.to_string().contains("Unbalanced quotes"),
            "{refused}"
        );
        let unreachable = parse_dry_run(&out(
            1,
            "",
            "\nERROR: Can't find address of schedd sched.example.org\n",
        ))
        .unwrap_err();
        assert_eq!(unreachable.kind(), ErrorKind::Unavailable);
        let garbage = parse_dry_run(&out(0, "hello\n", "")).unwrap_err();
        assert_eq!(garbage.kind(), ErrorKind::Scheduler);
    }

    use farm_core::{JobId, JobState};

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
