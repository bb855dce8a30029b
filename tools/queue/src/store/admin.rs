//! What a wrangler changes by hand: a job's priority, deleting a finished job, taking an
//! agent out of service.

use super::*;

impl Store {
    /// Sets a job's priority; its tasks not yet handed out are leased in the new order.
    pub fn set_priority(&self, id: &str, priority: i64) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        if !(-1000..=1000).contains(&priority) {
            return Err(StoreError::Invalid {
                field: "priority".into(),
                problem: format!("must be from -1000 to 1000, not {priority}"),
            });
        }
        self.write(|tx, fx| {
            let now = self.tick();
            let n = tx.execute(
                "UPDATE jobs SET priority = ?2, updated_at = ?3 WHERE id = ?1",
                params![num, priority, now],
            )?;
            if n == 0 {
                return Err(StoreError::JobNotFound(id.to_owned()));
            }
            tx.execute(
                "UPDATE tasks SET priority = ?2 WHERE job_id = ?1",
                params![num, priority],
            )?;
            fx.work = true;
            Ok(())
        })?;
        self.job(id)
    }

    /// Deletes a finished job: its record, tasks, attempts and history, and its render log
    /// when the queue keeps it (under the data root's logs). A job still waiting or running
    /// is a conflict: stop it first.
    pub fn delete_job(&self, id: &str) -> Result<()> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        let log = self.write(|tx, _| {
            let (state, log): (String, String) = tx
                .query_row(
                    "SELECT state, log_path FROM jobs WHERE id = ?1",
                    [num],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if !state.parse::<JobState>().is_ok_and(JobState::is_terminal) {
                return Err(StoreError::Conflict(format!(
                    "job {id} is {state}: stop it first, then delete it"
                )));
            }
            for table in [
                "tasks",
                "assignments",
                "transitions",
                "job_tags",
                "idempotency",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE job_id = ?1"), [num])?;
            }
            tx.execute("DELETE FROM deps WHERE job_id = ?1", [num])?;
            tx.execute("DELETE FROM jobs WHERE id = ?1", [num])?;
            Ok(log)
        })?;
        let log = PathBuf::from(log);
        if log.starts_with(&self.logs_dir)
            && let Err(e) = std::fs::remove_file(&log)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(log = %log.display(), error = %e, "cannot remove a deleted job's log");
        }
        Ok(())
    }

    /// Takes an agent out of service (it ends its current task but gets no new one), or
    /// puts it back.
    pub fn set_agent_disabled(&self, agent: i64, disabled: bool) -> Result<AgentStatus> {
        self.write(|tx, fx| {
            let n = tx.execute(
                "UPDATE agents SET disabled = ?2 WHERE id = ?1",
                params![agent, disabled],
            )?;
            if n == 0 {
                return Err(StoreError::Gone(format!("there is no agent {agent}")));
            }
            fx.work |= !disabled;
            Ok(())
        })?;
        self.agent_statuses(0)?
            .into_iter()
            .find(|a| a.id == agent)
            .ok_or_else(|| StoreError::Gone(format!("there is no agent {agent}")))
    }

    /// Notes the load an agent's heartbeat reported.
    pub fn note_load(&self, agent: i64, load: Option<f64>) {
        let mut loads = self.loads.lock().expect("loads poisoned");
        match load.filter(|l| l.is_finite() && *l >= 0.0) {
            Some(l) => {
                loads.insert(agent, l);
            }
            None => {
                loads.remove(&agent);
            }
        }
    }

    /// The request a job was submitted with (canonical JSON).
    pub fn job_request(&self, id: &str) -> Result<serde_json::Value> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        let text: String = self.read(|conn| {
            conn.query_row("SELECT request FROM jobs WHERE id = ?1", [num], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))
        })?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}
