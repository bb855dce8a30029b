//! Tasks handed to agents: leases, start confirmations, log uploads and how a run ends.

use super::*;

impl Store {
    /// Hands the next ready task (highest priority, then oldest job, then lowest chunk) to
    /// `agent`, or `None` when nothing is ready.
    pub fn lease(&self, agent: i64) -> Result<Option<Assignment>> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let disabled: bool = tx
                .prepare_cached("SELECT disabled FROM agents WHERE id = ?1")?
                .query_row([agent], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            if disabled {
                return Ok(None);
            }
            let next: Option<(i64, i64, i64)> = tx
                .prepare_cached("SELECT job_id, idx, tries FROM tasks WHERE state = 'queued' ORDER BY priority DESC, job_id, idx LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((job, idx, tries)) = next else { return Ok(None) };
            let now = self.tick();
            let (attempt, request): (i64, String) =
                tx.query_row("SELECT attempt, request FROM jobs WHERE id = ?1", [job], |r| Ok((r.get(0)?, r.get(1)?)))?;
            tx.prepare_cached(
                "INSERT INTO assignments (job_id, idx, attempt, try, agent_id, state, dispatched_at) VALUES (?1, ?2, ?3, ?4, ?5, 'dispatched', ?6)",
            )?
            .execute(params![job, idx, attempt, tries + 1, agent, now])?;
            let assignment = tx.last_insert_rowid();
            tx.prepare_cached("UPDATE tasks SET state = 'dispatched', tries = tries + 1, assignment_id = ?3 WHERE job_id = ?1 AND idx = ?2")?
                .execute(params![job, idx, assignment])?;
            self.recompute(tx, job, now, fx)?;
            Ok(Some(Assignment {
                assignment_id: assignment,
                job_id: job.to_string(),
                task_index: idx as u32,
                attempt: attempt as u32,
                r#try: (tries + 1) as u32,
                request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
            }))
        })
    }

    pub(super) fn active_assignment(
        tx: &Transaction<'_>,
        agent: i64,
        assignment: i64,
    ) -> Result<(String, i64, i64, i64, i64)> {
        let row: Option<(String, i64, i64, i64, i64, i64)> = tx
            .prepare_cached("SELECT state, agent_id, job_id, idx, try, log_received FROM assignments WHERE id = ?1")?
            .query_row([assignment], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .optional()?;
        match row {
            Some((state, owner, job, idx, try_, received)) if owner == agent => {
                Ok((state, job, idx, try_, received))
            }
            _ => Err(StoreError::Gone(format!(
                "assignment {assignment} does not belong to agent {agent}"
            ))),
        }
    }

    /// The agent confirms it is starting the task. Refused (`Gone`) when the task was taken
    /// back meanwhile (stopped, or requeued after a restart): the agent must not run it.
    pub fn start_assignment(&self, agent: i64, assignment: i64, agent_name: &str) -> Result<()> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let (state, job, idx, try_, _) = Self::active_assignment(tx, agent, assignment)?;
            match state.as_str() {
                "running" => return Ok(()),
                "dispatched" => {}
                other => {
                    return Err(StoreError::Gone(format!(
                        "assignment {assignment} is {other}; do not run it"
                    )));
                }
            }
            let now = self.tick();
            tx.prepare_cached(
                "UPDATE assignments SET state = 'running', started_at = ?2 WHERE id = ?1",
            )?
            .execute(params![assignment, now])?;
            tx.prepare_cached(
                "UPDATE tasks SET state = 'running', reason = NULL WHERE job_id = ?1 AND idx = ?2",
            )?
            .execute(params![job, idx])?;
            tx.prepare_cached(
                "UPDATE jobs SET start_time = COALESCE(start_time, ?2) WHERE id = ?1",
            )?
            .execute(params![job, now])?;
            let (log_path, task_count, attempt): (String, i64, i64) = tx.query_row(
                "SELECT log_path, task_count, attempt FROM jobs WHERE id = ?1",
                [job],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (first, last): (Option<i64>, Option<i64>) = tx.query_row(
                "SELECT first_frame, last_frame FROM tasks WHERE job_id = ?1 AND idx = ?2",
                params![job, idx],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let what = match (first, last) {
                (Some(a), Some(b)) if a == b => format!("task {idx} (frame {a})"),
                (Some(a), Some(b)) => format!("task {idx} (frames {a}-{b})"),
                _ if task_count > 1 => format!("task {idx}"),
                _ => "job".to_owned(),
            };
            let retry = if try_ > 1 {
                format!(", try {try_}")
            } else {
                String::new()
            };
            let line =
                format!("farm: {what} started on agent {agent_name}, attempt {attempt}{retry}\n");
            append_to_log(Path::new(&log_path), line.as_bytes())?;
            self.recompute(tx, job, now, fx)
        })
    }

    /// Appends log bytes `[offset, offset + data.len())` of an assignment's output. Bytes
    /// already received are skipped, so an agent can resend after a lost reply.
    pub fn append_log(&self, agent: i64, assignment: i64, offset: u64, data: &[u8]) -> Result<u64> {
        self.agent_seen(agent)?;
        self.write(|tx, _| {
            let (state, job, _, _, received) = Self::active_assignment(tx, agent, assignment)?;
            if state != "running" && state != "dispatched" {
                return Err(StoreError::Gone(format!(
                    "assignment {assignment} is {state}"
                )));
            }
            let received = received as u64;
            if offset > received {
                return Err(StoreError::LogGap(received));
            }
            let end = offset + data.len() as u64;
            if end <= received {
                return Ok(received);
            }
            let log_path: String =
                tx.query_row("SELECT log_path FROM jobs WHERE id = ?1", [job], |r| {
                    r.get(0)
                })?;
            append_to_log(Path::new(&log_path), &data[(received - offset) as usize..])?;
            tx.prepare_cached("UPDATE assignments SET log_received = ?2 WHERE id = ?1")?
                .execute(params![assignment, end as i64])?;
            Ok(end)
        })
    }

    /// Records how an assignment ended. Repeating the same report is harmless.
    pub fn finish_assignment(
        &self,
        agent: i64,
        assignment: i64,
        report: &TaskReport,
    ) -> Result<()> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            let (state, job, idx, _, _) = Self::active_assignment(tx, agent, assignment)?;
            if state != "running" && state != "dispatched" {
                return if state == report_word(report) {
                    Ok(())
                } else {
                    Err(StoreError::Gone(format!(
                        "assignment {assignment} is already {state}"
                    )))
                };
            }
            let now = self.tick();
            self.end_assignment(tx, assignment, job, idx, report, now, fx)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn end_assignment(
        &self,
        tx: &Transaction<'_>,
        assignment: i64,
        job: i64,
        idx: i64,
        report: &TaskReport,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let (reason, exit_code) = match report {
            TaskReport::Failed { reason, exit_code } => (Some(reason.clone()), *exit_code),
            _ => (None, None),
        };
        tx.prepare_cached("UPDATE assignments SET state = ?2, ended_at = ?3, reason = ?4, exit_code = ?5 WHERE id = ?1")?
            .execute(params![assignment, report_word(report), now, reason, exit_code])?;
        let stop: bool = tx.query_row(
            "SELECT stop_requested FROM jobs WHERE id = ?1",
            [job],
            |r| r.get(0),
        )?;
        let (task_state, task_reason) = match report {
            TaskReport::Succeeded => (TaskState::Done, None),
            TaskReport::Failed { reason, .. } => (TaskState::Failed, Some(reason.clone())),
            _ if stop => (
                TaskState::Cancelled,
                Some(crate::state::STOPPED_BY_USER.to_owned()),
            ),
            TaskReport::Cancelled | TaskReport::Interrupted => {
                self.requeue_or_fail(tx, job, idx, "its agent stopped before it finished", fx)?;
                return self.recompute(tx, job, now, fx);
            }
        };
        tx.prepare_cached("UPDATE tasks SET state = ?3, reason = ?4, exit_code = ?5 WHERE job_id = ?1 AND idx = ?2")?
            .execute(params![job, idx, task_state.as_str(), task_reason, exit_code])?;
        self.recompute(tx, job, now, fx)
    }

    /// A task whose run ended without a result goes back to the queue, or fails (`lost`)
    /// once it has been handed out `max_tries` times.
    pub(super) fn requeue_or_fail(
        &self,
        tx: &Transaction<'_>,
        job: i64,
        idx: i64,
        why: &str,
        fx: &mut Effects,
    ) -> Result<()> {
        let tries: i64 = tx.query_row(
            "SELECT tries FROM tasks WHERE job_id = ?1 AND idx = ?2",
            params![job, idx],
            |r| r.get(0),
        )?;
        let max = i64::from(self.options.max_tries);
        let log_path: String =
            tx.query_row("SELECT log_path FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })?;
        let requeue = tries < max;
        let (reason, update) = if requeue {
            (
                format!("requeued: {why} (try {tries} of {max})"),
                "UPDATE tasks SET state = 'queued', assignment_id = NULL, reason = ?3 WHERE job_id = ?1 AND idx = ?2",
            )
        } else {
            (
                format!("lost: {why}, {tries} of {max} tries used"),
                "UPDATE tasks SET state = 'failed', reason = ?3 WHERE job_id = ?1 AND idx = ?2",
            )
        };
        tx.execute(update, params![job, idx, reason])?;
        append_to_log(
            Path::new(&log_path),
            format!("farm: task {idx} {reason}\n").as_bytes(),
        )?;
        fx.work |= requeue;
        Ok(())
    }
}

fn report_word(report: &TaskReport) -> &'static str {
    match report {
        TaskReport::Succeeded => "succeeded",
        TaskReport::Failed { .. } => "failed",
        TaskReport::Cancelled => "cancelled",
        TaskReport::Interrupted => "interrupted",
    }
}
