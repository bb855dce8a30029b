//! Jobs: submitting, deriving a job's state from its tasks, reading, listing, stopping and
//! starting them, and their render logs.

use super::*;

/// The first reason a requeued task of a job carries.
pub(super) const REQUEUE_REASON: &str = "SELECT reason FROM tasks INDEXED BY tasks_requeued \
     WHERE job_id = +?1 AND state = 'queued' AND reason IS NOT NULL ORDER BY idx LIMIT 1";

/// The first reason a cancelled task of a job carries.
pub(super) const CANCEL_REASON: &str = "SELECT reason FROM tasks INDEXED BY tasks_cancelled \
     WHERE job_id = +?1 AND state = 'cancelled' AND reason IS NOT NULL ORDER BY idx LIMIT 1";

impl Store {
    /// Stores a validated request. With an idempotency key seen before, returns that job
    /// (`false`: nothing created) if the body is the same, or a conflict if it differs.
    pub fn submit(
        &self,
        request: &JobRequest,
        key: Option<&str>,
        body: &str,
    ) -> Result<(JobRecord, bool)> {
        let canonical = serde_json::to_string(request).expect("a JobRequest always serialises");
        // The record is read back inside the change, from the writer's warm cache: the
        // read connection would re-read every page the commit touched.
        let read_back = |tx: &Connection, id: i64| -> Result<JobRecord> {
            Ok(tx
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], job_from_row)?)
        };
        self.write(|tx, fx| {
            if let Some(key) = key {
                let seen: Option<(i64, String)> = tx
                    .query_row("SELECT job_id, body FROM idempotency WHERE key = ?1", [key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((job, seen_body)) = seen {
                    if seen_body == body {
                        return Ok((read_back(tx, job)?, false));
                    }
                    return Err(StoreError::Conflict(format!(
                        "the idempotency key was already used for job {job} with a different request"
                    )));
                }
            }
            let mut deps: Vec<i64> = Vec::new();
            for (i, dep) in request.depends_on.iter().enumerate() {
                let found = parse_job_id(dep.as_str())
                    .map(|d| tx.query_row("SELECT id FROM jobs WHERE id = ?1", [d], |r| r.get::<_, i64>(0)).optional())
                    .transpose()?
                    .flatten();
                match found {
                    Some(d) if !deps.contains(&d) => deps.push(d),
                    Some(_) => {}
                    None => {
                        return Err(StoreError::Invalid {
                            field: format!("depends_on[{i}]"),
                            problem: format!("there is no job {dep} on this queue"),
                        });
                    }
                }
            }
            let need = Requirements::of(request)
                .map_err(|(field, problem)| StoreError::Invalid { field, problem })?;
            let unplaceable = self.why_nowhere(&need);
            let now = self.tick();
            let tasks = request.tasks();
            let tags = serde_json::to_string(&request.tags).expect("tags serialise");
            let frames_total = request.frames.as_ref().map(|f| f.len() as i64);
            tx.prepare_cached(
                "INSERT INTO jobs (name, request, render_context, priority, tags, state, native_state, submit_time, \
                 updated_at, task_count, frames_total, log_path) VALUES (?1, ?2, ?3, ?4, ?5, 'Waiting', 'QUEUED', ?6, ?6, ?7, ?8, '')",
            )?
            .execute(params![
                    request.name,
                    canonical,
                    request.render_context.to_string(),
                    request.priority,
                    tags,
                    now,
                    tasks.len() as i64,
                    frames_total
                ],
            )?;
            let id = tx.last_insert_rowid();
            let log_path = self.log_path_for(id, request)?;
            tx.prepare_cached(
                "UPDATE jobs SET log_path = ?2, req_cpus = ?3, req_memory = ?4, req_gpus = ?5, req_tags = ?6, unplaceable = ?7 WHERE id = ?1",
            )?
            .execute(params![
                    id,
                    log_path.display().to_string(),
                    need.cpus as i64,
                    need.memory_mib as i64,
                    need.gpus as i64,
                    serde_json::to_string(&need.tags).expect("tags serialise"),
                    unplaceable
                ],
            )?;
            for tag in &request.tags {
                tx.prepare_cached("INSERT OR IGNORE INTO job_tags (tag, job_id) VALUES (?1, ?2)")?
                    .execute(params![tag, id])?;
            }
            for dep in &deps {
                tx.execute("INSERT INTO deps (job_id, depends_on) VALUES (?1, ?2)", params![id, dep])?;
            }
            let (initial, reason) = if deps.is_empty() {
                (TaskState::Queued, None)
            } else {
                Self::initial_task_state(tx, id)?
            };
            let mut insert = tx.prepare_cached(
                "INSERT INTO tasks (job_id, idx, state, priority, frames, first_frame, last_frame, reason, frame_set) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for task in &tasks {
                let (count, first, last, set) = match &task.frames {
                    Some(f) => (f.len() as i64, Some(f.first()), Some(f.last()), Some(f.to_string())),
                    None => (1, None, None, None),
                };
                insert.execute(params![id, task.index, initial.as_str(), request.priority, count, first, last, reason, set])?;
            }
            drop(insert);
            // Every task starts in the same state: the counters need no count.
            tx.prepare_cached(&format!(
                "UPDATE jobs SET {} = ?2 WHERE id = ?1",
                super::counts::column(initial)
            ))?
            .execute(params![id, tasks.len() as i64])?;
            if let Some(key) = key {
                tx.execute("INSERT INTO idempotency (key, job_id, body) VALUES (?1, ?2, ?3)", params![key, id, body])?;
            }
            self.recompute(tx, id, now, fx)?;
            fx.work |= initial == TaskState::Queued;
            Ok((read_back(tx, id)?, true))
        })
    }

    pub(super) fn log_path_for(&self, id: i64, request: &JobRequest) -> Result<PathBuf> {
        match &request.log_directory {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Invalid {
                    field: "log_directory".into(),
                    problem: format!("the queue cannot create {dir}: {e}"),
                })?;
                Ok(Path::new(dir).join(format!("job-{id}.log")))
            }
            None => Ok(self.logs_dir.join(format!("{id}.log"))),
        }
    }

    /// Where a job's tasks start, given its dependencies: cancelled if one ended without
    /// completing, blocked while one is unfinished, queued otherwise.
    pub(super) fn initial_task_state(
        tx: &Connection,
        job: i64,
    ) -> Result<(TaskState, Option<String>)> {
        let mut stmt = tx.prepare_cached("SELECT j.id, j.state FROM deps d JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ?1 ORDER BY j.id")?;
        let deps: Vec<(i64, String)> = stmt
            .query_map([job], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some((dep, state)) = deps.iter().find(|(_, s)| s == "Failed" || s == "Cancelled") {
            return Ok((
                TaskState::Cancelled,
                Some(format!("dependency {dep} ended {state}")),
            ));
        }
        if deps.iter().any(|(_, s)| s != "Completed") {
            return Ok((TaskState::Blocked, None));
        }
        Ok((TaskState::Queued, None))
    }

    /// Re-derives a job's state from its task counters, records a transition when it
    /// changed, and releases or cancels its dependents when it just finished. Costs the same
    /// whatever the job's size: reasons are looked up only for the state that needs one.
    pub(super) fn recompute(
        &self,
        tx: &Connection,
        job: i64,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let mut pending = vec![job];
        while let Some(job) = pending.pop() {
            type Row = (
                String,
                String,
                Option<String>,
                bool,
                Option<i64>,
                i64,
                i64,
                Option<String>,
            );
            let (counts, row): (TaskCounts, Row) = tx
                .prepare_cached(&format!(
                    "SELECT state, native_state, reason, stop_requested, end_time, attempt, task_count, unplaceable, \
                     {} FROM jobs WHERE id = ?1",
                    super::counts::COUNT_COLUMNS
                ))?
                .query_row([job], |r| {
                    let mut counts = TaskCounts::default();
                    for (i, state) in TaskState::ALL.into_iter().enumerate() {
                        counts.add(state, r.get::<_, i64>(8 + i)?.max(0) as u64);
                    }
                    Ok((counts, (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)))
                })?;
            let (
                old_state,
                old_native,
                old_reason,
                stop,
                end_time,
                attempt,
                task_count,
                unplaceable,
            ) = row;
            let first_reason = |state: TaskState| -> Result<Option<String>> {
                let sql = match state {
                    TaskState::Queued => REQUEUE_REASON,
                    _ => CANCEL_REASON,
                };
                Ok(tx
                    .prepare_cached(sql)?
                    .query_row([job], |r| r.get(0))
                    .optional()?)
            };
            let plain = derive(
                &counts,
                &JobFacts {
                    stop_requested: stop,
                    ..Default::default()
                },
            );
            let facts = JobFacts {
                stop_requested: stop,
                first_failure: if plain.native == "FAILED" {
                    Self::failure_summary(tx, job, task_count)?
                } else {
                    None
                },
                cancel_reason: if plain.native == "CANCELLED" && !stop {
                    first_reason(TaskState::Cancelled)?
                } else {
                    None
                },
                requeue_reason: if plain.native == "QUEUED" {
                    match unplaceable {
                        Some(why) => Some(why),
                        None => first_reason(TaskState::Queued)?,
                    }
                } else {
                    None
                },
            };
            let Derived {
                state,
                native,
                reason,
            } = derive(&counts, &facts);
            let was_terminal = old_state
                .parse::<JobState>()
                .is_ok_and(JobState::is_terminal);
            let state_changed = old_state != state.as_str() || old_native != native;
            if !state_changed && old_reason == reason {
                continue;
            }
            let end = if state.is_terminal() {
                Some(end_time.unwrap_or(now))
            } else {
                None
            };
            tx.prepare_cached(
                "UPDATE jobs SET state = ?2, native_state = ?3, reason = ?4, end_time = ?5, updated_at = MAX(updated_at, ?6) WHERE id = ?1",
            )?
            .execute(params![job, state.as_str(), native, reason, end, now])?;
            if state_changed {
                tx.prepare_cached(
                    "INSERT INTO transitions (job_id, at, attempt, state, native_state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![job, now, attempt, state.as_str(), native, reason])?;
            }
            if state == JobState::Cancelled && stop && !was_terminal {
                self.log_stopped(tx, job, now)?;
            }
            if state.is_terminal() && !was_terminal {
                let mut stmt =
                    tx.prepare_cached("SELECT job_id FROM deps WHERE depends_on = ?1")?;
                let dependents: Vec<i64> = stmt
                    .query_map([job], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for dependent in dependents {
                    if state == JobState::Completed {
                        let unfinished: i64 = tx.query_row(
                            "SELECT COUNT(*) FROM deps d JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ?1 AND j.state != 'Completed'",
                            [dependent],
                            |r| r.get(0),
                        )?;
                        if unfinished == 0 {
                            let n = tx.execute("UPDATE tasks SET state = 'queued' WHERE job_id = ?1 AND state = 'blocked'", [dependent])?;
                            fx.work |= n > 0;
                        }
                    } else {
                        tx.execute(
                            "UPDATE tasks SET state = 'cancelled', reason = ?2 WHERE job_id = ?1 AND state = 'blocked'",
                            params![dependent, format!("dependency {job} ended {state}")],
                        )?;
                    }
                    Self::recount(tx, dependent, now)?;
                    pending.push(dependent);
                }
            }
        }
        Ok(())
    }

    /// Ends a stopped job's log with who stopped it and when.
    fn log_stopped(&self, tx: &Connection, job: i64, now: i64) -> Result<()> {
        let by = self
            .stoppers
            .lock()
            .expect("stoppers poisoned")
            .remove(&job)
            .unwrap_or_else(|| "a client of the queue".to_owned());
        let at = std::time::UNIX_EPOCH + Duration::from_millis(now.max(0) as u64);
        let log_path: String =
            tx.query_row("SELECT log_path FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })?;
        let line = format!(
            "farm: job stopped by {by} at {}\n",
            humantime::format_rfc3339_seconds(at)
        );
        append_to_log(Path::new(&log_path), line.as_bytes()).map(|_| ())
    }

    /// The job's record.
    pub fn job(&self, id: &str) -> Result<JobRecord> {
        let missing = || StoreError::JobNotFound(id.to_owned());
        let num = parse_job_id(id).ok_or_else(missing)?;
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([num], job_from_row)
                .optional()?
                .ok_or_else(missing)
        })
    }

    /// One page of jobs matching `query`, ordered by `(updated_at, id)`, and the cursor of
    /// the next page when there is one.
    pub fn list(&self, query: &ListQuery) -> Result<Page> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if !query.states.is_empty() {
            sql.push_str(&format!(
                " AND state IN ({})",
                vec!["?"; query.states.len()].join(", ")
            ));
            args.extend(query.states.iter().map(|s| Value::Text(s.as_str().into())));
        }
        if let Some(name) = &query.name {
            sql.push_str(" AND name = ?");
            args.push(Value::Text(name.clone()));
        }
        if let Some(tag) = &query.tag {
            sql.push_str(" AND id IN (SELECT job_id FROM job_tags WHERE tag = ?)");
            args.push(Value::Text(tag.clone()));
        }
        if let Some(since) = query.since {
            sql.push_str(" AND submit_time >= ?");
            args.push(Value::Integer(since));
        }
        if let Some(since) = query.updated_since {
            sql.push_str(" AND updated_at >= ?");
            args.push(Value::Integer(since));
        }
        if let Some((at, id)) = query.after {
            sql.push_str(" AND (updated_at, id) > (?, ?)");
            args.push(Value::Integer(at));
            args.push(Value::Integer(id));
        }
        sql.push_str(" ORDER BY updated_at, id LIMIT ?");
        args.push(Value::Integer(i64::from(query.limit) + 1));
        let mut jobs = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), job_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let next = if jobs.len() > query.limit as usize {
            jobs.truncate(query.limit as usize);
            jobs.last()
                .map(|j| (j.updated_at, parse_job_id(j.job.id.as_str()).unwrap_or(0)))
        } else {
            None
        };
        Ok((jobs, next))
    }

    /// Jobs not finished yet (Waiting or Running).
    pub fn unfinished_jobs(&self) -> Result<u64> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('Waiting', 'Running')",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// Stops a job: a finished job is left alone; unstarted tasks are cancelled at once and
    /// agents running the others are told to stop them.
    pub fn stop(&self, id: &str) -> Result<JobRecord> {
        self.stop_by(id, "a client of the queue")
    }

    /// [`stop`](Self::stop), naming who asked: the job's log ends with a line saying who
    /// stopped it and when, written once it is Cancelled.
    pub fn stop_by(&self, id: &str, by: &str) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        self.write(|tx, fx| {
            let state: String = tx
                .query_row("SELECT state FROM jobs WHERE id = ?1", [num], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if state.parse::<JobState>().is_ok_and(JobState::is_terminal) {
                return Ok(());
            }
            let now = self.tick();
            self.stoppers
                .lock()
                .expect("stoppers poisoned")
                .insert(num, by.to_owned());
            tx.execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?1", [num])?;
            tx.execute(
                "UPDATE assignments SET state = 'revoked', ended_at = ?2 WHERE job_id = ?1 AND state = 'dispatched'",
                params![num, now],
            )?;
            tx.execute(
                "UPDATE tasks SET state = 'cancelled', reason = ?2 WHERE job_id = ?1 AND state IN ('blocked', 'queued', 'dispatched')",
                params![num, crate::state::STOPPED_BY_USER],
            )?;
            Self::recount(tx, num, now)?;
            self.recompute(tx, num, now, fx)?;
            fx.control = true;
            Ok(())
        })?;
        self.job(id)
    }

    /// Starts a job: a finished one runs again as a new attempt (its log is kept and
    /// continues); a waiting or running one is left alone; one still stopping is a conflict.
    pub fn start(&self, id: &str) -> Result<JobRecord> {
        let num = parse_job_id(id).ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
        self.write(|tx, fx| {
            let (state, native, attempt, log_path): (String, String, i64, String) = tx
                .query_row("SELECT state, native_state, attempt, log_path FROM jobs WHERE id = ?1", [num], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?
                .ok_or_else(|| StoreError::JobNotFound(id.to_owned()))?;
            if native == "STOPPING" {
                return Err(StoreError::Conflict(format!("job {id} is still stopping; start it once it is Cancelled")));
            }
            if !state.parse::<JobState>().is_ok_and(JobState::is_terminal) {
                return Ok(());
            }
            let now = self.tick();
            let (initial, reason) = Self::initial_task_state(tx, num)?;
            tx.execute(
                "UPDATE jobs SET attempt = attempt + 1, stop_requested = 0, start_time = NULL, end_time = NULL WHERE id = ?1",
                [num],
            )?;
            tx.execute(
                "UPDATE tasks SET state = ?2, tries = 0, assignment_id = NULL, reason = ?3, exit_code = NULL, \
                 attempt = attempt + 1, log_start = NULL, log_end = NULL WHERE job_id = ?1",
                params![num, initial.as_str(), reason],
            )?;
            Self::recount(tx, num, now)?;
            append_to_log(Path::new(&log_path), format!("farm: attempt {} queued\n", attempt + 1).as_bytes())?;
            self.recompute(tx, num, now, fx)?;
            fx.work |= initial == TaskState::Queued;
            Ok(())
        })?;
        self.job(id)
    }

    /// Reads a job's render log from `offset`, at most `limit` bytes, cut so that no UTF-8
    /// character is split at the end.
    pub fn read_log(&self, id: &str, offset: u64, limit: usize) -> Result<LogRead> {
        let record = self.job(id)?;
        let path = record.job.render_log_filename.clone().unwrap_or_default();
        let mut data = Vec::new();
        let len = match std::fs::File::open(&path) {
            Ok(mut file) => {
                let len = file
                    .metadata()
                    .map_err(io_err(format!("cannot read {path}")))?
                    .len();
                if offset < len {
                    file.seek(SeekFrom::Start(offset))
                        .map_err(io_err(format!("cannot read {path}")))?;
                    file.take(limit as u64)
                        .read_to_end(&mut data)
                        .map_err(io_err(format!("cannot read {path}")))?;
                }
                len
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(format!("cannot read {path}"))(e)),
        };
        if let Err(e) = std::str::from_utf8(&data)
            && e.error_len().is_none()
            && e.valid_up_to() > 0
        {
            data.truncate(e.valid_up_to());
        }
        let next_offset = offset + data.len() as u64;
        let complete = record.job.state.is_terminal() && next_offset >= len;
        Ok(LogRead {
            data,
            next_offset: next_offset.max(offset),
            complete,
        })
    }

    // ----- agents -----

    /// `(job id, terminal transitions)` for every job, for crash tests and audits.
    pub fn terminal_transition_counts(&self) -> Result<Vec<(i64, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT j.id, (SELECT COUNT(*) FROM transitions t WHERE t.job_id = j.id AND t.state IN ('Completed', 'Failed', 'Cancelled')) \
                 FROM jobs j ORDER BY j.id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
