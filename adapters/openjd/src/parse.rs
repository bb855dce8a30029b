//! Native output -> job states. Pure: tested on recorded `openjd run` logs and `deadline`
//! CLI output in `fixtures/openjd/`.

use farm_core::{CheckReport, CommandOutput, EpochMillis, FarmError, Job, JobState, Result};
use serde::Deserialize;

/// Deadline Cloud's job lifecycle statuses (botocore `JobLifecycleStatus`): `None` means
/// the job exists and its task-run status decides.
pub const LIFECYCLE_STATUSES: &[(&str, Option<JobState>, &str)] = &[
    ("CREATE_IN_PROGRESS", Some(JobState::Waiting), "creating"),
    ("CREATE_FAILED", Some(JobState::Failed), "create failed"),
    ("CREATE_COMPLETE", None, ""),
    ("UPLOAD_IN_PROGRESS", Some(JobState::Waiting), "uploading"),
    ("UPLOAD_FAILED", Some(JobState::Failed), "upload failed"),
    ("UPDATE_IN_PROGRESS", None, ""),
    ("UPDATE_FAILED", None, ""),
    ("UPDATE_SUCCEEDED", None, ""),
    ("ARCHIVED", None, ""),
];

/// Deadline Cloud's task-run statuses (botocore `TaskRunStatus`), as a job's
/// `taskRunStatus` reports them.
pub const TASK_RUN_STATUSES: &[(&str, JobState, &str)] = &[
    (
        "PENDING",
        JobState::Waiting,
        "pending: waiting on dependencies",
    ),
    ("READY", JobState::Waiting, "ready: waiting for a worker"),
    ("ASSIGNED", JobState::Waiting, "assigned to a worker"),
    (
        "STARTING",
        JobState::Waiting,
        "a worker is starting the session",
    ),
    ("SCHEDULED", JobState::Waiting, "scheduled on a worker"),
    ("INTERRUPTING", JobState::Running, "interrupting"),
    ("RUNNING", JobState::Running, ""),
    ("SUSPENDED", JobState::Waiting, "suspended"),
    ("CANCELED", JobState::Cancelled, "canceled"),
    ("FAILED", JobState::Failed, "a task failed"),
    ("SUCCEEDED", JobState::Completed, ""),
    (
        "NOT_COMPATIBLE",
        JobState::Failed,
        "not compatible: no fleet meets the host requirements",
    ),
];

/// The state and reason for a job's lifecycle and task-run statuses. An unknown word is
/// a `Scheduler` error naming it, never a made-up state.
pub fn deadline_state(lifecycle: &str, task_run: &str) -> Result<(JobState, Option<String>)> {
    let life = LIFECYCLE_STATUSES
        .iter()
        .find(|(w, _, _)| *w == lifecycle)
        .ok_or_else(|| {
            FarmError::scheduler(format!(
                "unknown Deadline Cloud lifecycleStatus {lifecycle:?}"
            ))
        })?;
    if let Some(state) = life.1 {
        return Ok((state, Some(life.2.to_owned())));
    }
    let (_, state, reason) = TASK_RUN_STATUSES
        .iter()
        .find(|(w, _, _)| *w == task_run)
        .ok_or_else(|| {
            FarmError::scheduler(format!("unknown Deadline Cloud taskRunStatus {task_run:?}"))
        })?;
    Ok((*state, (!reason.is_empty()).then(|| (*reason).to_owned())))
}

/// The fields of `deadline job get` (YAML) or a `GetJob` response (JSON) this adapter reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineJob {
    /// `job-...`.
    pub job_id: String,
    /// The job's name.
    #[serde(default)]
    pub name: String,
    /// `CREATE_COMPLETE`...; `deadline job get` prints it, the list summary may not.
    #[serde(default)]
    pub lifecycle_status: Option<String>,
    /// Why the lifecycle status is what it is.
    #[serde(default)]
    pub lifecycle_status_message: Option<String>,
    /// The job's task-run status.
    pub task_run_status: String,
    /// Tasks per task-run status.
    #[serde(default)]
    pub task_run_status_counts: std::collections::BTreeMap<String, u64>,
    /// Times (ISO 8601 / YAML timestamps).
    #[serde(default)]
    pub created_at: Option<serde_yaml::Value>,
    /// When it started.
    #[serde(default)]
    pub started_at: Option<serde_yaml::Value>,
    /// When it ended.
    #[serde(default)]
    pub ended_at: Option<serde_yaml::Value>,
    /// How often failed tasks were retried.
    #[serde(default)]
    pub task_failure_retry_count: Option<u32>,
}

fn time_ms(value: &Option<serde_yaml::Value>) -> Option<EpochMillis> {
    let text = match value.as_ref()? {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).ok()?.trim().to_owned(),
    };
    let text = text.trim();
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parses `deadline job get` output (YAML or JSON).
pub fn parse_deadline_job(text: &str) -> Result<DeadlineJob> {
    serde_yaml::from_str(text).map_err(|e| {
        FarmError::scheduler(format!(
            "cannot read `deadline job get` output ({e}): {}",
            text.chars().take(400).collect::<String>()
        ))
    })
}

/// A `Job` from Deadline Cloud's view of it.
pub fn deadline_job_record(job: &DeadlineJob) -> Result<Job> {
    let lifecycle = job.lifecycle_status.as_deref().unwrap_or("CREATE_COMPLETE");
    let (state, mut reason) = deadline_state(lifecycle, &job.task_run_status)?;
    if let Some(m) = job
        .lifecycle_status_message
        .as_ref()
        .filter(|m| !m.is_empty())
        && state == JobState::Failed
    {
        reason = Some(format!("{}: {m}", reason.unwrap_or_default()));
    }
    let mut out = Job::new(job.job_id.clone(), job.name.clone(), state);
    out.native_state = Some(format!("{lifecycle}/{}", job.task_run_status));
    out.reason = reason;
    out.attempt = 1 + job.task_failure_retry_count.unwrap_or(0);
    out.submit_time = time_ms(&job.created_at);
    out.start_time = time_ms(&job.started_at);
    out.end_time = if state.is_terminal() {
        time_ms(&job.ended_at)
    } else {
        None
    };
    Ok(out)
}

/// Whether `id` has the form of a Deadline Cloud job id (`job-` and 32 lowercase hex
/// digits, the service model's pattern); the service refuses any other with a
/// `ValidationException`.
pub fn is_deadline_job_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("job-")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The job id printed by `deadline bundle submit`: deadline 0.60 prints `Submitted job
/// bundle:`, the directory, the job's `lifecycleStatusMessage` and the id alone on the last
/// line; other versions print `Job ID: job-...` or JSON with `jobId`.
pub fn parse_submit_output(text: &str) -> Result<String> {
    for line in text.lines().rev() {
        let line = line.trim();
        if is_deadline_job_id(line) {
            return Ok(line.to_owned());
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(id) = v.get("jobId").and_then(|i| i.as_str())
        {
            return Ok(id.to_owned());
        }
        if let Some(id) = line.strip_prefix("Job ID:") {
            return Ok(id.trim().to_owned());
        }
    }
    Err(FarmError::scheduler(format!(
        "`deadline bundle submit` printed no job id: {}",
        text.chars().take(400).collect::<String>()
    )))
}

/// The log text of `deadline job logs --output json`: each event's message on a line.
pub fn parse_logs_output(text: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct Event {
        message: String,
    }
    #[derive(Deserialize)]
    struct Logs {
        events: Vec<Event>,
    }
    let logs: Logs = serde_json::from_str(text).map_err(|e| {
        FarmError::scheduler(format!(
            "cannot read `deadline job logs --output json` output ({e}): {}",
            text.chars().take(400).collect::<String>()
        ))
    })?;
    Ok(logs
        .events
        .iter()
        .map(|e| format!("{}\n", e.message))
        .collect())
}

/// The job ids in `deadline job list` output (YAML list of summaries after a header line).
pub fn parse_job_list(text: &str) -> Result<Vec<String>> {
    let body: String = text
        .lines()
        .skip_while(|l| l.starts_with("Displaying") || l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if body.trim().is_empty() || body.trim() == "[]" {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Summary {
        job_id: String,
    }
    let rows: Vec<Summary> = serde_yaml::from_str(&body).map_err(|e| {
        FarmError::scheduler(format!("cannot read `deadline job list` output: {e}"))
    })?;
    Ok(rows.into_iter().map(|r| r.job_id).collect())
}

/// `openjd check TEMPLATE`'s answer: exit 0 with `Template at '...' passes validation
/// checks.` is the report; exit 1 with `ERROR: '...' failed checks: ...` is
/// `InvalidRequest` in openjd's words. The temporary template's path reads
/// `template.yaml`. Anything else (openjd missing, killed) is a scheduler error.
pub fn openjd_check(output: &CommandOutput, template: &str) -> Result<CheckReport> {
    let words = |text: &str| text.replace(template, "template.yaml").trim().to_owned();
    let said = words(&format!("{}\n{}", output.stdout, output.stderr));
    match output.status {
        Some(0) => Ok(CheckReport {
            message: words(&output.stdout)
                .lines()
                .find(|l| l.contains("passes"))
                .map(str::to_owned)
                .unwrap_or_else(|| format!("openjd check passed: {said}")),
            estimated_start: None,
            placement: None,
        }),
        Some(1) if said.contains("failed checks") => Err(FarmError::invalid(
            "request",
            format!("openjd check refused the bundle: {said}"),
        )),
        status => Err(FarmError::scheduler(format!(
            "openjd check exited {}: {}",
            status.map_or("by a signal".to_owned(), |s| s.to_string()),
            said.chars().take(2000).collect::<String>()
        ))),
    }
}

/// Why an `openjd run` failed, from its log: the last non-zero `exited with code: N`
/// (`exit code N`), or a timeout.
pub fn run_failure_reason(log: &str) -> Option<String> {
    let mut reason = None;
    for line in log.lines() {
        if let Some(pos) = line.find("exited with code: ") {
            let rest = &line[pos + "exited with code: ".len()..];
            let code: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            if !code.is_empty() && code != "0" {
                reason = Some(format!("exit code {code}"));
            }
        }
        if line.contains("TIMEOUT") || line.contains("timed out") {
            reason = Some("timeout: the action ran past its time limit".into());
        }
    }
    reason
}

/// What the files of one local attempt say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFacts {
    /// When the run was launched.
    pub spawned_ms: Option<EpochMillis>,
    /// When `openjd run` started (the `started` file).
    pub started_ms: Option<EpochMillis>,
    /// `openjd run`'s exit status and when it was written.
    pub exit: Option<(i32, EpochMillis)>,
    /// When `stop` cancelled the run.
    pub cancelled_ms: Option<EpochMillis>,
    /// Whether the run's process group still exists.
    pub alive: bool,
}

/// The state of a local attempt, with the reason and the end time.
pub fn local_state(facts: &AttemptFacts, log: &str) -> (JobState, Option<String>, Option<i64>) {
    if let Some(at) = facts.cancelled_ms {
        return (JobState::Cancelled, Some("stopped".into()), Some(at));
    }
    match facts.exit {
        Some((0, at)) => (JobState::Completed, None, Some(at)),
        Some((code, at)) => (
            JobState::Failed,
            Some(run_failure_reason(log).unwrap_or_else(|| format!("openjd run exited {code}"))),
            Some(at),
        ),
        None if facts.alive && facts.started_ms.is_some() => (JobState::Running, None, None),
        None if facts.alive => (JobState::Waiting, None, None),
        None => (
            JobState::Failed,
            Some("lost: the openjd run ended without recording an exit status".into()),
            facts.started_ms.or(facts.spawned_ms),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn openjd_check_answers() {
        use farm_core::{CommandOutput, ErrorKind};
        let out = |status, stdout: &str| CommandOutput {
            status,
            stdout: stdout.into(),
            stderr: String::new(),
        };
        let t = "/data/checks/abc/template.yaml";
        let ok = super::openjd_check(
            &out(
                Some(0),
                "Template at '/data/checks/abc/template.yaml' passes validation checks.\n",
            ),
            t,
        )
        .unwrap();
        assert_eq!(
            ok.message,
            "Template at 'template.yaml' passes validation checks."
        );
        let refused = super::openjd_check(
            &out(
                Some(1),
                "ERROR: '/data/checks/abc/template.yaml' failed checks: 1 validation errors for JobTemplate\nsteps[0] -> script -> actions -> onRun -> command:\n\tVariable Param.Nope does not exist at this location.\n",
            ),
            t,
        )
        .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidRequest);
        let text = refused.to_string();
        assert!(
            text.contains("Variable Param.Nope does not exist"),
            "{text}"
        );
        assert!(!text.contains("/data/checks"), "{text}");
        let missing = super::openjd_check(&out(Some(127), ""), t).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Scheduler);
    }

    use super::*;

    #[test]
    fn every_botocore_status_word_is_mapped() {
        // The enums of botocore's deadline service model (2023-10-12).
        let task_run = [
            "PENDING",
            "READY",
            "ASSIGNED",
            "STARTING",
            "SCHEDULED",
            "INTERRUPTING",
            "RUNNING",
            "SUSPENDED",
            "CANCELED",
            "FAILED",
            "SUCCEEDED",
            "NOT_COMPATIBLE",
        ];
        let lifecycle = [
            "CREATE_IN_PROGRESS",
            "CREATE_FAILED",
            "CREATE_COMPLETE",
            "UPLOAD_IN_PROGRESS",
            "UPLOAD_FAILED",
            "UPDATE_IN_PROGRESS",
            "UPDATE_FAILED",
            "UPDATE_SUCCEEDED",
            "ARCHIVED",
        ];
        assert_eq!(TASK_RUN_STATUSES.len(), task_run.len());
        assert_eq!(LIFECYCLE_STATUSES.len(), lifecycle.len());
        for l in lifecycle {
            for t in task_run {
                deadline_state(l, t).unwrap_or_else(|e| panic!("{l}/{t}: {e}"));
            }
        }
        assert!(deadline_state("CREATE_COMPLETE", "WEIRD").is_err());
        assert!(deadline_state("NEW_THING", "RUNNING").is_err());
        assert_eq!(
            deadline_state("UPLOAD_FAILED", "READY").unwrap().0,
            JobState::Failed
        );
    }

    #[test]
    fn submit_output_of_every_known_shape() {
        let id = "job-0123456789abcdef0123456789abcdef";
        // deadline 0.60.10 (recorded against the emulation): the id alone on the last line.
        let v060 = format!(
            "Waiting for Job to be created...\nSubmitted job bundle:\n   /b\nJob creation complete\n{id}\n"
        );
        for text in [
            v060,
            format!("Job ID: {id}\n"),
            format!("{{\"jobId\": \"{id}\"}}\n"),
        ] {
            assert_eq!(parse_submit_output(&text).unwrap(), id, "{text}");
        }
        assert!(parse_submit_output("Submitted job bundle:\n   /job-1\n").is_err());
        assert!(is_deadline_job_id(id));
        for bad in [
            "job-unknown",
            "job-0123456789ABCDEF0123456789ABCDEF",
            "--yes",
            "",
        ] {
            assert!(!is_deadline_job_id(bad), "{bad}");
        }
    }

    #[test]
    fn logs_output_is_the_messages() {
        let text = r#"{"jobId": "j", "events": [{"timestamp": "t", "message": "a b"}, {"message": "\u00e9"}], "count": 2}"#;
        assert_eq!(parse_logs_output(text).unwrap(), "a b\n\u{e9}\n");
        assert!(parse_logs_output("{\"error\": \"x\"}").is_err());
    }

    #[test]
    fn run_log_reasons() {
        let log = "x\nProcess pid 1 exited with code: 0 (unsigned)\nProcess pid 2 exited with code: 3 (unsigned) / 0x3 (hex)\n";
        assert_eq!(run_failure_reason(log).unwrap(), "exit code 3");
        assert_eq!(run_failure_reason("all good"), None);
    }

    #[test]
    fn local_states() {
        let mut f = AttemptFacts {
            spawned_ms: Some(1),
            alive: true,
            ..Default::default()
        };
        assert_eq!(local_state(&f, "").0, JobState::Waiting);
        f.started_ms = Some(2);
        assert_eq!(local_state(&f, "").0, JobState::Running);
        f.alive = false;
        assert_eq!(local_state(&f, "").0, JobState::Failed);
        f.exit = Some((0, 3));
        assert_eq!(local_state(&f, "").0, JobState::Completed);
        f.cancelled_ms = Some(3);
        assert_eq!(local_state(&f, "").0, JobState::Cancelled);
    }
}
