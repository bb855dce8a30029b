//! A job's task counters: how many of its tasks are in each state, and its frames done,
//! kept in the job's row so that handing out, finishing and counting one task costs the
//! same in a 100,000-frame job as in a 10-frame job. One task moving shifts two counters
//! ([`Store::shift`]); only whole-job operations (stop, start, retry, a dependency
//! finishing) count the job's tasks again ([`Store::recount`]). Reasons are read through
//! partial indexes that hold only failed, cancelled or requeued tasks.

use super::*;

/// The counter column of a task state.
pub(super) fn column(state: TaskState) -> &'static str {
    match state {
        TaskState::Blocked => "n_blocked",
        TaskState::Queued => "n_queued",
        TaskState::Dispatched => "n_dispatched",
        TaskState::Running => "n_running",
        TaskState::Done => "n_done",
        TaskState::Failed => "n_failed",
        TaskState::Cancelled => "n_cancelled",
    }
}

/// The counter columns, in [`TaskState::ALL`] order.
pub(super) const COUNT_COLUMNS: &str =
    "n_blocked, n_queued, n_dispatched, n_running, n_done, n_failed, n_cancelled";

/// A job's failed tasks, for its reason.
pub(super) const FAILED_TASKS: &str = "SELECT idx, frame_set, first_frame, last_frame, reason, exit_code \
     FROM tasks INDEXED BY tasks_failed WHERE job_id = +?1 AND state = 'failed' ORDER BY idx";

impl Store {
    /// A task's state and frame count.
    pub(super) fn task_state(tx: &Connection, job: i64, idx: i64) -> Result<(TaskState, i64)> {
        let (word, frames): (String, i64) = tx
            .prepare_cached("SELECT state, frames FROM tasks WHERE job_id = ?1 AND idx = ?2")?
            .query_row(params![job, idx], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((TaskState::parse(&word).unwrap_or(TaskState::Failed), frames))
    }

    /// One task of `job` moved from `from` to `to`: shifts the two counters, and the frames
    /// done (then the record changed, so `updated_at` too).
    pub(super) fn shift(
        tx: &Connection,
        job: i64,
        from: TaskState,
        to: TaskState,
        frames: i64,
        now: i64,
    ) -> Result<()> {
        if from == to {
            return Ok(());
        }
        let delta = match (from, to) {
            (_, TaskState::Done) => frames,
            (TaskState::Done, _) => -frames,
            _ => 0,
        };
        let (a, b) = (column(from), column(to));
        tx.prepare_cached(&format!(
            "UPDATE jobs SET {a} = {a} - 1, {b} = {b} + 1, frames_done = frames_done + ?2, \
             updated_at = CASE WHEN ?2 != 0 THEN MAX(updated_at, ?3) ELSE updated_at END WHERE id = ?1"
        ))?
        .execute(params![job, delta, now])?;
        Ok(())
    }

    /// Counts a job's tasks again, after an operation that moved many at once.
    pub(super) fn recount(tx: &Connection, job: i64, now: i64) -> Result<()> {
        let mut counts = [0i64; 7];
        let mut frames_done = 0i64;
        {
            let mut stmt = tx.prepare_cached(
                "SELECT state, COUNT(*), COALESCE(SUM(frames), 0) FROM tasks WHERE job_id = ?1 GROUP BY state",
            )?;
            let mut rows = stmt.query([job])?;
            while let Some(row) = rows.next()? {
                let word: String = row.get(0)?;
                if let Some(state) = TaskState::parse(&word) {
                    counts[state as usize] = row.get(1)?;
                    if state == TaskState::Done {
                        frames_done = row.get(2)?;
                    }
                }
            }
        }
        tx.prepare_cached(
            "UPDATE jobs SET n_blocked = ?2, n_queued = ?3, n_dispatched = ?4, n_running = ?5, n_done = ?6, \
             n_failed = ?7, n_cancelled = ?8, updated_at = CASE WHEN frames_done != ?9 THEN MAX(updated_at, ?10) \
             ELSE updated_at END, frames_done = ?9 WHERE id = ?1",
        )?
        .execute(params![
            job, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6],
            frames_done, now
        ])?;
        Ok(())
    }

    /// The reason of a job whose tasks ended and some failed: every failed frame, grouped
    /// by cause ("frames 4, 7 failed: exit code 3"); a one-task job's own reason.
    pub(super) fn failure_summary(tx: &Connection, job: i64, tasks: i64) -> Result<Option<String>> {
        let mut stmt = tx.prepare_cached(FAILED_TASKS)?;
        type Row = (
            i64,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<Row> = stmt
            .query_map([job], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        if tasks <= 1 {
            return Ok(rows
                .into_iter()
                .next()
                .map(|r| r.4.unwrap_or_else(|| "the task failed".into())));
        }
        let mut groups: Vec<(String, Vec<u32>, Vec<i64>)> = Vec::new();
        for (idx, set, first, last, reason, exit_code) in rows {
            let cause = match exit_code {
                Some(code) => format!("exit code {code}"),
                None => without_frame_note(reason.as_deref().unwrap_or("failed")),
            };
            let at = match groups.iter().position(|(c, _, _)| *c == cause) {
                Some(at) => at,
                None => {
                    groups.push((cause, Vec::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            let frames: Option<Vec<u32>> = match (set, first, last) {
                (Some(set), _, _) => set
                    .parse::<farm_core::FrameSet>()
                    .ok()
                    .map(|s| s.iter().collect()),
                (None, Some(a), Some(b)) => Some((a as u32..=b as u32).collect()),
                _ => None,
            };
            match frames {
                Some(frames) => groups[at].1.extend(frames),
                None => groups[at].2.push(idx),
            }
        }
        let parts: Vec<String> = groups
            .into_iter()
            .map(|(cause, frames, indexes)| {
                if frames.is_empty() {
                    let list = short_list(indexes.iter().map(|i| i.to_string()).collect());
                    let noun = if indexes.len() == 1 { "task" } else { "tasks" };
                    return format!("{noun} {list} failed: {cause}");
                }
                let count = frames.len();
                let runs = farm_core::FrameSet::from_frames(frames)
                    .map(|set| set.runs().iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                let noun = if count == 1 { "frame" } else { "frames" };
                format!("{noun} {} failed: {cause}", short_list(runs))
            })
            .collect();
        Ok(Some(parts.join("; ")))
    }
}

/// At most 20 items, then how many more.
fn short_list(items: Vec<String>) -> String {
    const SHOWN: usize = 20;
    if items.len() <= SHOWN {
        return items.join(", ");
    }
    format!(
        "{}, and {} more",
        items[..SHOWN].join(", "),
        items.len() - SHOWN
    )
}

/// `command 1 (frame 4): exit code 3` -> `command 1: exit code 3`, so that one cause of
/// many frames reads once.
fn without_frame_note(reason: &str) -> String {
    if let Some(start) = reason.find(" (frame")
        && let Some(len) = reason[start..].find(')')
    {
        return format!("{}{}", &reason[..start], &reason[start + len + 1..]);
    }
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_notes_are_left_out_of_causes() {
        assert_eq!(
            super::without_frame_note("command 2 (frame 4): time limit 1m exceeded"),
            "command 2: time limit 1m exceeded"
        );
        assert_eq!(
            super::without_frame_note("lost: agent gone"),
            "lost: agent gone"
        );
        let long: Vec<String> = (1..=25).map(|i| i.to_string()).collect();
        assert!(super::short_list(long).ends_with("20, and 5 more"));
    }
}
