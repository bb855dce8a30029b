//! Running again only the failed and cancelled tasks of a job, under the same id.

use super::*;

impl Store {
    /// Queues again the failed and cancelled tasks of a job, raising only their attempt;
    /// done tasks stay done. A job with no such task is left alone; one still stopping is
    /// a conflict.
    pub fn retry_failed(&self, id: &str) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        self.write(|tx, fx| {
            let (native, log_path): (String, String) = tx
                .query_row("SELECT native_state, log_path FROM jobs WHERE id = ?1", [num], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if native == "STOPPING" {
                return Err(StoreError::Conflict(format!(
                    "job {id} is still stopping; retry its failed tasks once it is Cancelled"
                )));
            }
            let retried: Vec<(i64, Option<String>)> = {
                let mut stmt = tx.prepare(
                    "SELECT idx, frame_set FROM tasks WHERE job_id = ?1 AND state IN ('failed', 'cancelled') ORDER BY idx",
                )?;
                let rows = stmt.query_map([num], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            if retried.is_empty() {
                return Ok(());
            }
            let now = self.tick();
            let (initial, reason) = Self::initial_task_state(tx, num)?;
            tx.execute(
                "UPDATE tasks SET state = ?2, tries = 0, assignment_id = NULL, reason = ?3, exit_code = NULL, \
                 attempt = attempt + 1, log_start = NULL, log_end = NULL WHERE job_id = ?1 AND state IN ('failed', 'cancelled')",
                params![num, initial.as_str(), reason],
            )?;
            tx.execute(
                "UPDATE jobs SET stop_requested = 0, end_time = NULL WHERE id = ?1",
                [num],
            )?;
            let what = if retried.iter().all(|(_, set)| set.is_some()) {
                let sets: Vec<String> = retried.iter().filter_map(|(_, s)| s.clone()).collect();
                let shown = sets.len().min(20);
                let more = if sets.len() > shown {
                    format!(" and {} more", sets.len() - shown)
                } else {
                    String::new()
                };
                format!("frames {}{more}", sets[..shown].join(", "))
            } else {
                format!("{} task(s)", retried.len())
            };
            append_to_log(
                Path::new(&log_path),
                format!("farm: retrying the failed and cancelled {what}\n").as_bytes(),
            )?;
            Self::recount(tx, num, now)?;
            self.recompute(tx, num, now, fx)?;
            fx.work |= initial == TaskState::Queued;
            Ok(())
        })?;
        self.job(id)
    }
}
