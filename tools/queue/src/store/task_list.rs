//! A job's tasks as the protocol lists them (`GET /v1/jobs/{id}/tasks`), a page at a time.

use super::*;

/// One task of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task (chunk) index, from 0.
    pub index: u32,
    /// Its frames (`1-10`, `4`), absent for a job without frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<String>,
    /// `blocked`, `queued`, `dispatched`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// The agent that runs it or ran it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Raised each time the task is run again by request (start, retry of failed tasks).
    pub attempt: u32,
    /// Hand-outs within this attempt (lost agents count).
    pub tries: u32,
    /// The failing command's exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed, was cancelled or requeued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When its last run started (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// When its last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Where its output starts in the job's render log (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_offset: Option<u64>,
    /// Where its output ends in the job's render log; other tasks' output running at the
    /// same time may be interleaved in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end: Option<u64>,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Only these states (empty: all).
    pub states: Vec<TaskState>,
    /// Only tasks after this index.
    pub after: Option<u32>,
    /// Page size.
    pub limit: u32,
}

/// One page of tasks and, when there are more, the index to continue after.
pub type TaskPage = (Vec<TaskRecord>, Option<u32>);

impl Store {
    /// A page of a job's tasks in index order.
    pub fn tasks(&self, id: &str, query: &TaskQuery) -> Result<TaskPage> {
        let missing = || StoreError::JobNotFound(id.to_owned());
        let num = parse_job_id(id).ok_or_else(missing)?;
        self.read(|conn| {
            conn.prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")?
                .query_row([num], |_| Ok(()))
                .optional()?
                .ok_or_else(missing)?;
            let mut sql = "SELECT t.idx, t.frame_set, t.first_frame, t.last_frame, t.state, g.name, t.attempt, t.tries, \
                 t.exit_code, t.reason, a.started_at, a.ended_at, t.log_start, t.log_end FROM tasks t \
                 LEFT JOIN assignments a ON a.id = t.assignment_id LEFT JOIN agents g ON g.id = a.agent_id \
                 WHERE t.job_id = ? AND t.idx > ?"
                .to_owned();
            let mut args: Vec<Value> = vec![
                Value::Integer(num),
                Value::Integer(query.after.map_or(-1, i64::from)),
            ];
            if !query.states.is_empty() {
                sql.push_str(&format!(
                    " AND t.state IN ({})",
                    vec!["?"; query.states.len()].join(", ")
                ));
                args.extend(query.states.iter().map(|s| Value::Text(s.as_str().into())));
            }
            sql.push_str(" ORDER BY t.idx LIMIT ?");
            args.push(Value::Integer(i64::from(query.limit) + 1));
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                let set: Option<String> = r.get(1)?;
                let (first, last): (Option<i64>, Option<i64>) = (r.get(2)?, r.get(3)?);
                let frames = set.or(match (first, last) {
                    (Some(a), Some(b)) if a == b => Some(a.to_string()),
                    (Some(a), Some(b)) => Some(format!("{a}-{b}")),
                    _ => None,
                });
                Ok(TaskRecord {
                    index: r.get::<_, i64>(0)? as u32,
                    frames,
                    state: r.get(4)?,
                    agent: r.get(5)?,
                    attempt: r.get::<_, i64>(6)? as u32,
                    tries: r.get::<_, i64>(7)? as u32,
                    exit_code: r.get::<_, Option<i64>>(8)?.map(|c| c as i32),
                    reason: r.get(9)?,
                    start_time: r.get(10)?,
                    end_time: r.get(11)?,
                    log_offset: r.get::<_, Option<i64>>(12)?.map(|o| o as u64),
                    log_end: r.get::<_, Option<i64>>(13)?.map(|o| o as u64),
                })
            })?;
            let mut tasks: Vec<TaskRecord> = rows.collect::<Result<_, _>>()?;
            let next = if tasks.len() > query.limit as usize {
                tasks.truncate(query.limit as usize);
                tasks.last().map(|t| t.index)
            } else {
                None
            };
            Ok((tasks, next))
        })
    }
}
