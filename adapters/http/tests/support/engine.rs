//! The scheduler behind the emulations: a queue that really runs each task's commands
//! (through `farm_core::exec`), honours dependencies, stops and restarts jobs. Each HTTP
//! front end (our protocol, Deadline's Web Service) translates requests to these calls and
//! records to its own JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use farm_core::exec::{ExecOptions, TaskOutcome, run_task};
use farm_core::{JobRequest, now_millis};
use tokio_util::sync::CancellationToken;

/// The engine's own states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Blocked,
    Running,
    Stopping,
    Done,
    Error,
    Killed,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Error | Status::Killed)
    }
}

/// A job as the engine keeps it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub seq: u64,
    pub request: JobRequest,
    pub raw_body: String,
    pub status: Status,
    pub reason: Option<String>,
    pub attempt: u32,
    pub submit_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub updated_ms: i64,
    pub log: PathBuf,
    pub tasks_total: u32,
    pub tasks_done: u32,
    pub tasks_running: u32,
    pub tasks_failed: u32,
    pub frames_done: u64,
}

struct Entry {
    record: Record,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<String, Entry>,
    seq: u64,
    by_key: HashMap<String, String>,
}

/// The engine. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    state: Arc<Mutex<State>>,
    handle: tokio::runtime::Handle,
    log_dir: PathBuf,
    queue_delay: Duration,
    slots: Arc<tokio::sync::Semaphore>,
    make_id: Arc<dyn Fn(u64) -> String + Send + Sync>,
    /// When false, jobs stay queued and run nothing (benchmarks measure the API alone).
    pub run_jobs: Arc<std::sync::atomic::AtomicBool>,
    /// Run each task as a farm plug-in does (Deadline's FarmBridge): through `farm run-task`
    /// rather than the executor directly.
    pub via_run_task: bool,
}

/// What `submit` did.
pub enum Submitted {
    Created(Record),
    Existing(Record),
    /// The key was used for a different body.
    Conflict(Record),
}

impl Engine {
    /// An engine writing logs under `log_dir`, spawning job runners on the current runtime.
    pub fn new(
        log_dir: PathBuf,
        make_id: impl Fn(u64) -> String + Send + Sync + 'static,
    ) -> Engine {
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Engine {
            state: Arc::new(Mutex::new(State::default())),
            handle: tokio::runtime::Handle::current(),
            log_dir,
            queue_delay: Duration::from_millis(20),
            slots: Arc::new(tokio::sync::Semaphore::new(8)),
            make_id: Arc::new(make_id),
            run_jobs: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            via_run_task: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("engine poisoned")
    }

    /// Creates a job, or returns the one created with the same idempotency key.
    pub fn submit(&self, request: JobRequest, raw_body: String, key: Option<String>) -> Submitted {
        let mut st = self.lock();
        if let Some(key) = &key
            && let Some(existing) = st.by_key.get(key).and_then(|id| st.jobs.get(id))
        {
            let rec = existing.record.clone();
            return if rec.raw_body == raw_body {
                Submitted::Existing(rec)
            } else {
                Submitted::Conflict(rec)
            };
        }
        st.seq += 1;
        let seq = st.seq;
        let id = (self.make_id)(seq);
        let now = now_millis();
        let record = Record {
            id: id.clone(),
            seq,
            tasks_total: request.task_count() as u32,
            request,
            raw_body,
            status: Status::Queued,
            reason: None,
            attempt: 1,
            submit_ms: now,
            start_ms: None,
            end_ms: None,
            updated_ms: now,
            log: self.log_dir.join(format!("{seq}.1.log")),
            tasks_done: 0,
            tasks_running: 0,
            tasks_failed: 0,
            frames_done: 0,
        };
        let cancel = CancellationToken::new();
        if let Some(key) = key {
            st.by_key.insert(key, id.clone());
        }
        st.jobs.insert(
            id.clone(),
            Entry {
                record: record.clone(),
                cancel: cancel.clone(),
            },
        );
        drop(st);
        self.handle.spawn(self.clone().run_attempt(id, 1, cancel));
        Submitted::Created(record)
    }

    pub fn get(&self, id: &str) -> Option<Record> {
        self.lock().jobs.get(id).map(|e| e.record.clone())
    }

    pub fn all(&self) -> Vec<Record> {
        let mut jobs: Vec<Record> = self
            .lock()
            .jobs
            .values()
            .map(|e| e.record.clone())
            .collect();
        jobs.sort_by_key(|r| (r.updated_ms, r.seq));
        jobs
    }

    pub fn count(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Stops a job: waiting jobs are Killed at once, running ones after their processes end.
    pub fn stop(&self, id: &str) -> Option<Record> {
        let mut st = self.lock();
        let entry = st.jobs.get_mut(id)?;
        let r = &mut entry.record;
        match r.status {
            s if s.is_terminal() => {}
            Status::Queued | Status::Blocked => {
                r.status = Status::Killed;
                r.reason = Some("stopped by user before it ran".into());
                r.end_ms = Some(now_millis());
                r.updated_ms = now_millis();
                entry.cancel.cancel();
            }
            _ => {
                r.status = Status::Stopping;
                r.reason = Some("stop requested".into());
                r.updated_ms = now_millis();
                entry.cancel.cancel();
            }
        }
        Some(entry.record.clone())
    }

    /// Runs a finished job again as a new attempt; others are left alone. `Err` when the
    /// job is still stopping.
    pub fn start(&self, id: &str) -> Option<Result<Record, Record>> {
        let mut st = self.lock();
        let entry = st.jobs.get_mut(id)?;
        if entry.record.status == Status::Stopping {
            return Some(Err(entry.record.clone()));
        }
        if !entry.record.status.is_terminal() {
            return Some(Ok(entry.record.clone()));
        }
        let cancel = CancellationToken::new();
        entry.cancel = cancel.clone();
        let r = &mut entry.record;
        r.attempt += 1;
        r.status = Status::Queued;
        r.reason = None;
        r.start_ms = None;
        r.end_ms = None;
        r.updated_ms = now_millis();
        r.tasks_done = 0;
        r.tasks_failed = 0;
        r.tasks_running = 0;
        r.frames_done = 0;
        r.log = self.log_dir.join(format!("{}.{}.log", r.seq, r.attempt));
        let (rec, attempt) = (r.clone(), r.attempt);
        drop(st);
        self.handle
            .spawn(self.clone().run_attempt(id.to_owned(), attempt, cancel));
        Some(Ok(rec))
    }

    /// Log bytes from `offset`: (text, next offset, complete).
    pub fn read_log(&self, id: &str, offset: u64) -> Option<(String, u64, bool)> {
        let rec = self.get(id)?;
        let bytes = std::fs::read(&rec.log).unwrap_or_default();
        let from = (offset as usize).min(bytes.len());
        let complete = rec.status.is_terminal();
        Some((
            String::from_utf8_lossy(&bytes[from..]).into_owned(),
            bytes.len() as u64,
            complete,
        ))
    }

    /// Forgets a job entirely (its processes are stopped).
    pub fn forget(&self, id: &str) {
        let mut st = self.lock();
        if let Some(entry) = st.jobs.remove(id) {
            entry.cancel.cancel();
        }
        st.by_key.retain(|_, v| v != id);
    }

    fn update(&self, id: &str, attempt: u32, f: impl FnOnce(&mut Record)) -> bool {
        let mut st = self.lock();
        match st.jobs.get_mut(id) {
            Some(e) if e.record.attempt == attempt => {
                f(&mut e.record);
                e.record.updated_ms = now_millis();
                true
            }
            _ => false,
        }
    }

    async fn run_attempt(self, id: String, attempt: u32, cancel: CancellationToken) {
        let finish = |status: Status, reason: Option<String>| {
            self.update(&id, attempt, |r| {
                if !r.status.is_terminal() || r.status == Status::Stopping {
                    r.status = status;
                    r.reason = reason;
                    r.end_ms = Some(now_millis());
                    r.tasks_running = 0;
                }
            });
        };
        if !self.run_jobs.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(self.queue_delay) => {}
            () = cancel.cancelled() => return,
        }
        loop {
            let Some(request) = self.get(&id).map(|r| r.request) else {
                return;
            };
            let mut pending = false;
            let mut broken = None;
            for dep in &request.depends_on {
                match self.get(dep.as_str()).map(|r| r.status) {
                    Some(Status::Done) => {}
                    Some(Status::Error | Status::Killed) | None => broken = Some(dep.clone()),
                    _ => pending = true,
                }
            }
            if let Some(dep) = broken {
                return finish(
                    Status::Killed,
                    Some(format!("dependency {dep} did not complete")),
                );
            }
            if !pending {
                break;
            }
            self.update(&id, attempt, |r| {
                if r.status == Status::Queued {
                    r.status = Status::Blocked;
                }
            });
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = cancel.cancelled() => return,
            }
        }
        let Some(rec) = self.get(&id) else { return };
        let mut started = false;
        self.update(&id, attempt, |r| {
            if matches!(r.status, Status::Queued | Status::Blocked) {
                r.status = Status::Running;
                r.start_ms = Some(now_millis());
                started = true;
            }
        });
        if !started {
            return;
        }
        let request = rec.request.clone();
        let mut set = tokio::task::JoinSet::new();
        for task in request.tasks() {
            let (engine, request, cancel, log, id) = (
                self.clone(),
                request.clone(),
                cancel.clone(),
                rec.log.clone(),
                id.clone(),
            );
            set.spawn(async move {
                let Ok(_permit) = engine.slots.clone().acquire_owned().await else {
                    return TaskOutcome::Cancelled;
                };
                if cancel.is_cancelled() {
                    return TaskOutcome::Cancelled;
                }
                engine.update(&id, attempt, |r| r.tasks_running += 1);
                let frames = task.frames.as_ref().map_or(1, |f| f.len() as u64);
                let options = ExecOptions {
                    grace: Duration::from_secs(2),
                    ..Default::default()
                };
                let outcome = if engine.via_run_task {
                    crate::support::plugin_task::run(&request, &task, &log, cancel).await
                } else {
                    run_task(&request, &task, &log, cancel, &options).await
                }
                .unwrap_or_else(|e| TaskOutcome::Failed {
                    reason: format!("cannot write the log: {e}"),
                    exit_code: None,
                });
                engine.update(&id, attempt, |r| {
                    r.tasks_running = r.tasks_running.saturating_sub(1);
                    match &outcome {
                        TaskOutcome::Succeeded => {
                            r.tasks_done += 1;
                            r.frames_done += frames;
                        }
                        TaskOutcome::Failed { .. } => r.tasks_failed += 1,
                        TaskOutcome::Cancelled => {}
                    }
                });
                outcome
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = set.join_next().await {
            outcomes.push(joined.unwrap_or(TaskOutcome::Cancelled));
        }
        let stopping = self.get(&id).is_some_and(|r| r.status == Status::Stopping);
        if stopping || outcomes.contains(&TaskOutcome::Cancelled) {
            return finish(Status::Killed, Some("stopped by user".into()));
        }
        if let Some(TaskOutcome::Failed { reason, .. }) = outcomes
            .iter()
            .find(|o| matches!(o, TaskOutcome::Failed { .. }))
        {
            return finish(Status::Error, Some(reason.clone()));
        }
        finish(Status::Done, None);
    }
}
