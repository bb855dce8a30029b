//! Tasks handed to agents: leases, start confirmations, log uploads and how a run ends.

use super::*;

/// A job's first ready task.
pub(super) const NEXT_READY: &str = "SELECT idx, tries, attempt, frame_set FROM tasks INDEXED BY tasks_ready \
     WHERE job_id = +?1 AND state = 'queued' ORDER BY idx LIMIT 1";

impl Store {
    /// Hands `agent` the next task that fits beside what it already runs: highest priority
    /// first, then the job served longest ago (jobs of equal priority take turns, task by
    /// task, and a never-served job goes first, so submit order decides ties), then the
    /// lowest chunk. `None` when nothing ready fits.
    pub fn lease(&self, agent: i64) -> Result<Option<Assignment>> {
        self.lease_with(agent, None, None)
    }

    /// [`Store::lease`], with the agent slot's previous report and an immediate start.
    ///
    /// `finished` reports the task this agent slot just ran, in the same transaction (one
    /// round trip and one commit per task): a report the server no longer wants (the task
    /// was taken back) is dropped with a log line, it does not fail the lease. With
    /// `start_as` (the agent's name) the task is started on hand-out, as if the agent had
    /// confirmed it, so a task costs one call instead of three.
    pub fn lease_with(
        &self,
        agent: i64,
        finished: Option<&Finished>,
        start_as: Option<&str>,
    ) -> Result<Option<Assignment>> {
        self.agent_seen(agent)?;
        self.write(|tx, fx| {
            if let Some(done) = finished {
                match self.finish_in(tx, agent, done.assignment_id, &done.report, fx) {
                    Err(StoreError::Gone(why)) => {
                        tracing::info!(agent, assignment = done.assignment_id, %why, "result dropped");
                    }
                    other => other?,
                }
            }
            let disabled: bool = tx
                .prepare_cached("SELECT disabled FROM agents WHERE id = ?1")?
                .query_row([agent], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            if disabled {
                return Ok(None);
            }
            let (capacity, held) = Self::agent_load(tx, agent)?;
            if held.tasks >= capacity.slots {
                return Ok(None);
            }
            let mut chosen = None;
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, req_cpus, req_memory, req_gpus, req_tags FROM jobs WHERE n_queued > 0 \
                     ORDER BY priority DESC, served, id",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let tags: String = row.get(4)?;
                    let need = Requirements {
                        cpus: row.get::<_, i64>(1)? as u64,
                        memory_mib: row.get::<_, i64>(2)? as u64,
                        gpus: row.get::<_, i64>(3)? as u64,
                        tags: serde_json::from_str(&tags).unwrap_or_default(),
                    };
                    if capacity.fits(&need, &held) {
                        chosen = Some(row.get::<_, i64>(0)?);
                        break;
                    }
                }
            }
            let Some(job) = chosen else { return Ok(None) };
            let (idx, tries, attempt, frame_set): (i64, i64, i64, Option<String>) = tx
                .prepare_cached(NEXT_READY)?
                .query_row([job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let now = self.tick();
            let request: String = tx
                .prepare_cached("SELECT request FROM jobs WHERE id = ?1")?
                .query_row([job], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO assignments (job_id, idx, attempt, try, agent_id, state, dispatched_at) VALUES (?1, ?2, ?3, ?4, ?5, 'dispatched', ?6)",
            )?
            .execute(params![job, idx, attempt, tries + 1, agent, now])?;
            let assignment = tx.last_insert_rowid();
            tx.prepare_cached("UPDATE tasks SET state = 'dispatched', tries = tries + 1, assignment_id = ?3 WHERE job_id = ?1 AND idx = ?2")?
                .execute(params![job, idx, assignment])?;
            let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            tx.prepare_cached("UPDATE jobs SET served = ?2 WHERE id = ?1")?
                .execute(params![job, served])?;
            Self::shift(tx, job, TaskState::Queued, TaskState::Dispatched, 0, now)?;
            if let Some(name) = start_as {
                Self::mark_running(tx, assignment, job, idx, tries + 1, name, now)?;
            }
            self.recompute(tx, job, now, fx)?;
            Ok(Some(Assignment {
                assignment_id: assignment,
                job_id: job.to_string(),
                task_index: idx as u32,
                attempt: attempt as u32,
                r#try: (tries + 1) as u32,
                request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
                frames: frame_set,
                started: start_as.is_some(),
            }))
        })
    }

    pub(super) fn active_assignment(
        tx: &Connection,
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
            Self::mark_running(tx, assignment, job, idx, try_, agent_name, now)?;
            self.recompute(tx, job, now, fx)
        })
    }

    /// A dispatched assignment starts: the task runs, the job has started, and the render
    /// log says where. The caller recomputes the job.
    fn mark_running(
        tx: &Connection,
        assignment: i64,
        job: i64,
        idx: i64,
        try_: i64,
        agent_name: &str,
        now: i64,
    ) -> Result<()> {
        tx.prepare_cached(
            "UPDATE assignments SET state = 'running', started_at = ?2 WHERE id = ?1",
        )?
        .execute(params![assignment, now])?;
        tx.prepare_cached(
            "UPDATE tasks SET state = 'running', reason = NULL WHERE job_id = ?1 AND idx = ?2",
        )?
        .execute(params![job, idx])?;
        Self::shift(tx, job, TaskState::Dispatched, TaskState::Running, 0, now)?;
        let (log_path, task_count): (String, i64) = tx
            .prepare_cached("UPDATE jobs SET start_time = COALESCE(start_time, ?2) WHERE id = ?1 RETURNING log_path, task_count")?
            .query_row(params![job, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let (first, last, attempt): (Option<i64>, Option<i64>, i64) = tx
            .prepare_cached(
                "SELECT first_frame, last_frame, attempt FROM tasks WHERE job_id = ?1 AND idx = ?2",
            )?
            .query_row(params![job, idx], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
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
        let at = append_to_log(Path::new(&log_path), line.as_bytes())?;
        tx.prepare_cached(
            "UPDATE tasks SET log_start = ?3, log_end = ?3 WHERE job_id = ?1 AND idx = ?2",
        )?
        .execute(params![job, idx, at as i64])?;
        Ok(())
    }

    /// Appends log bytes `[offset, offset + data.len())` of an assignment's output. Bytes
    /// already received are skipped, so an agent can resend after a lost reply.
    pub fn append_log(&self, agent: i64, assignment: i64, offset: u64, data: &[u8]) -> Result<u64> {
        self.agent_seen(agent)?;
        self.write(|tx, _| {
            let (state, job, idx, _, received) = Self::active_assignment(tx, agent, assignment)?;
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
            let log_path: String = tx
                .prepare_cached("SELECT log_path FROM jobs WHERE id = ?1")?
                .query_row([job], |r| r.get(0))?;
            let at = append_to_log(Path::new(&log_path), &data[(received - offset) as usize..])?;
            tx.prepare_cached("UPDATE assignments SET log_received = ?2 WHERE id = ?1")?
                .execute(params![assignment, end as i64])?;
            tx.prepare_cached("UPDATE tasks SET log_end = ?3 WHERE job_id = ?1 AND idx = ?2 AND assignment_id = ?4")?
                .execute(params![job, idx, at as i64, assignment])?;
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
        self.write(|tx, fx| self.finish_in(tx, agent, assignment, report, fx))
    }

    fn finish_in(
        &self,
        tx: &Connection,
        agent: i64,
        assignment: i64,
        report: &TaskReport,
        fx: &mut Effects,
    ) -> Result<()> {
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
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn end_assignment(
        &self,
        tx: &Connection,
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
        let stop: bool = tx
            .prepare_cached("SELECT stop_requested FROM jobs WHERE id = ?1")?
            .query_row([job], |r| r.get(0))?;
        let (task_state, task_reason) = match report {
            TaskReport::Succeeded => (TaskState::Done, None),
            TaskReport::Failed { reason, .. } => (TaskState::Failed, Some(reason.clone())),
            _ if stop => (
                TaskState::Cancelled,
                Some(crate::state::STOPPED_BY_USER.to_owned()),
            ),
            TaskReport::Cancelled | TaskReport::Interrupted => {
                self.requeue_or_fail(
                    tx,
                    job,
                    idx,
                    "its agent stopped before it finished",
                    now,
                    fx,
                )?;
                return self.recompute(tx, job, now, fx);
            }
        };
        let (from, frames) = Self::task_state(tx, job, idx)?;
        tx.prepare_cached("UPDATE tasks SET state = ?3, reason = ?4, exit_code = ?5 WHERE job_id = ?1 AND idx = ?2")?
            .execute(params![job, idx, task_state.as_str(), task_reason, exit_code])?;
        Self::shift(tx, job, from, task_state, frames, now)?;
        self.recompute(tx, job, now, fx)
    }

    /// A task whose run ended without a result goes back to the queue, or fails (`lost`)
    /// once it has been handed out `max_tries` times.
    pub(super) fn requeue_or_fail(
        &self,
        tx: &Connection,
        job: i64,
        idx: i64,
        why: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let (from, frames) = Self::task_state(tx, job, idx)?;
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
        let to = if requeue {
            TaskState::Queued
        } else {
            TaskState::Failed
        };
        Self::shift(tx, job, from, to, frames, now)?;
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
