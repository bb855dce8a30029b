//! What describes a job after slurmctld forgot it: `sacct` (accounting) and the
//! `jobcomp/filetxt` log. Both reduce to the same [`TaskRecord`]s as live listings.

use std::collections::BTreeMap;

use farm_core::{FarmError, Result};

use super::{ExitStatus, TaskKey, TaskRecord, parse_task_ranges};

/// `JobID` of sacct or jobcomp (`12`, `12_3`, `12_[3-5]`) as `(master, task)`.
fn parse_job_id(text: &str) -> Option<(u64, TaskKey)> {
    match text.split_once('_') {
        None => Some((text.parse().ok()?, TaskKey::Single)),
        Some((m, t)) if t.starts_with('[') => {
            Some((m.parse().ok()?, TaskKey::Pending(parse_task_ranges(t))))
        }
        Some((m, t)) => Some((m.parse().ok()?, TaskKey::Index(t.parse().ok()?))),
    }
}

/// Slurm's local `2026-11-22T11:35:30` as seconds since the epoch; `Unknown`/`None` as 0.
pub(super) fn parse_local_time(text: &str) -> i64 {
    use chrono::TimeZone;
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S")
        .ok()
        .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp())
}

fn parse_exit_pair(text: &str) -> ExitStatus {
    match text.split_once(':') {
        Some((c, s)) => match (c.trim().parse(), s.trim().parse()) {
            (Ok(c), Ok(s)) => ExitStatus::Pair(c, s),
            _ => ExitStatus::Unknown,
        },
        None => ExitStatus::Unknown,
    }
}

/// The `--format` the adapter asks sacct for; the job name comes last because names may
/// hold the `|` delimiter.
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Submit,Start,End,Comment,JobName";

/// Parses `sacct -X -n -P -o` [`SACCT_FORMAT`] output.
pub fn parse_sacct(text: &str) -> Result<Vec<TaskRecord>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.splitn(8, '|').collect();
        let [jobid, state, exit, submit, start, end, comment, name] = fields[..] else {
            return Err(FarmError::scheduler(format!(
                "unexpected sacct line {line:?}"
            )));
        };
        let Some((master, task)) = parse_job_id(jobid) else {
            return Err(FarmError::scheduler(format!(
                "unexpected sacct job id {jobid:?} in {line:?}"
            )));
        };
        out.push(TaskRecord {
            master,
            task,
            name: name.to_owned(),
            comment: comment.to_owned(),
            state: state.to_owned(),
            state_reason: String::new(),
            exit: parse_exit_pair(exit),
            restart_cnt: 0,
            submit: parse_local_time(submit),
            start: parse_local_time(start),
            end: parse_local_time(end),
            output: None,
        });
    }
    Ok(out)
}

/// Keys of a `jobcomp/filetxt` line, in the order slurmctld writes them. Values may hold
/// blanks (names, directories), so a value ends where the next known key starts.
const JOBCOMP_KEYS: &[&str] = &[
    "JobId",
    "UserId",
    "GroupId",
    "Name",
    "JobState",
    "Partition",
    "TimeLimit",
    "StartTime",
    "EndTime",
    "NodeList",
    "NodeCnt",
    "ProcCnt",
    "WorkDir",
    "ReservationName",
    "Tres",
    "Account",
    "QOS",
    "WcKey",
    "Cluster",
    "SubmitTime",
    "EligibleTime",
    "ArrayJobId",
    "ArrayTaskId",
    "DerivedExitCode",
    "ExitCode",
];

fn jobcomp_fields(line: &str) -> BTreeMap<&'static str, &str> {
    let mut found: Vec<(&'static str, usize, usize)> = Vec::new(); // key, key start, value start
    let mut cursor = 0;
    for key in JOBCOMP_KEYS {
        let needle_at_start = format!("{key}=");
        let pos = if cursor == 0 && line.starts_with(&needle_at_start) {
            Some(0)
        } else {
            line[cursor..]
                .find(&format!(" {key}="))
                .map(|p| cursor + p + 1)
        };
        if let Some(p) = pos {
            found.push((key, p, p + key.len() + 1));
            cursor = p + key.len() + 1;
        }
    }
    let mut out = BTreeMap::new();
    for (i, (key, _, vstart)) in found.iter().enumerate() {
        let vend = found.get(i + 1).map_or(line.len(), |next| next.1 - 1);
        out.insert(*key, line[*vstart..vend.max(*vstart)].trim_end());
    }
    out
}

/// Parses `jobcomp/filetxt` lines. A job requeued or restarted has several lines per task:
/// later lines win in [`assemble`](super::assemble) because they come later.
pub fn parse_jobcomp(text: &str) -> Vec<TaskRecord> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("JobId=")) {
        let f = jobcomp_fields(line);
        let Some(job_id) = f.get("JobId").and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let (master, task) = match (
            f.get("ArrayJobId").and_then(|v| v.parse::<u64>().ok()),
            f.get("ArrayTaskId").and_then(|v| v.parse::<u32>().ok()),
        ) {
            (Some(a), Some(t)) if a != 0 => (a, TaskKey::Index(t)),
            _ => (job_id, TaskKey::Single),
        };
        out.push(TaskRecord {
            master,
            task,
            name: f.get("Name").copied().unwrap_or_default().to_owned(),
            comment: String::new(),
            state: f.get("JobState").copied().unwrap_or_default().to_owned(),
            state_reason: String::new(),
            exit: f
                .get("ExitCode")
                .map_or(ExitStatus::Unknown, |v| parse_exit_pair(v)),
            restart_cnt: 0,
            submit: f.get("SubmitTime").map_or(0, |v| parse_local_time(v)),
            start: f.get("StartTime").map_or(0, |v| parse_local_time(v)),
            end: f.get("EndTime").map_or(0, |v| parse_local_time(v)),
            output: None,
        });
    }
    out
}

/// Whether sacct's stderr says there is no accounting storage to ask.
pub fn sacct_is_disabled(stderr: &str, stdout: &str) -> bool {
    let text = format!("{stderr}{stdout}");
    text.contains("accounting storage is disabled")
        || text.contains("Slurm accounting storage is disabled")
}
