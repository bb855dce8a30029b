//! An agent: one process that runs up to `slots` tasks at once for a queue server, on this
//! machine or another one, and advertises what it offers (cpus, memory, gpus, tags) so the
//! server sends it only tasks that fit.
//!
//! Output goes to a spool file in the agent's work directory and is uploaded by byte offset,
//! so remote agents need no shared file system and a server restart loses nothing: the agent
//! keeps running its task, keeps retrying, and resends from the offset the server has. A
//! task the server has taken back (stopped, or requeued while the agent was unreachable) is
//! never started, or is stopped as soon as the agent hears of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use farm_core::exec::{ExecOptions, TaskOutcome, run_task};
use farm_core::{FarmError, FrameSet, JobRequest, Task};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::placement::Capacity;

mod link;

use crate::wire::{
    AGENT_MARK_ENV, AGENT_TOKEN_ENV, AgentHello, Assignment, Beat, Finished, LeaseAsk, Orders,
    Received, Starting, TaskReport, Welcome,
};
use link::{CallError, Link, retry};

/// Uploads stop at a line end unless this much output is pending.
const FLUSH_PARTIAL_LINE_AT: usize = 64 * 1024;
/// Largest upload.
const MAX_UPLOAD: u64 = 1024 * 1024;
/// How often new output is looked for.
const UPLOAD_EVERY: Duration = Duration::from_millis(100);

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The queue server's base URL.
    pub server: String,
    /// The queue's agent token.
    pub token: SecretString,
    /// A name for people and render logs.
    pub name: String,
    /// Where output is spooled before upload.
    pub work_dir: PathBuf,
    /// Launched by the server on its own machine.
    pub local: bool,
    /// Give up after the server has been unreachable this long (`None`: never).
    pub reconnect_timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a task is stopped.
    pub kill_grace: Duration,
    /// What it offers: slots (tasks at once), cpus, memory, gpus, tags.
    pub capacity: Capacity,
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The assignments an agent runs, each with the token that stops it; the agent's one
/// heartbeat loop reports them and cancels those the server takes back.
type Running = Arc<std::sync::Mutex<std::collections::HashMap<i64, CancellationToken>>>;

/// How one worker (one slot) stopped.
enum WorkerEnd {
    /// The agent is shutting down.
    Shutdown,
    /// The server no longer knows this agent: register again.
    Lost,
    /// Cannot go on.
    Fatal(FarmError),
}

/// Runs an agent until `shutdown` is cancelled (then its running tasks are stopped and
/// requeued, and the agent deregisters) or the server stays unreachable longer than the
/// reconnect timeout.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), FarmError> {
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        FarmError::io(
            format!(
                "cannot create the agent's work directory {}",
                config.work_dir.display()
            ),
            e,
        )
    })?;
    let link = Arc::new(Link::new(&config.server, config.token.clone())?);
    let capacity = &config.capacity;
    let hello = AgentHello {
        name: config.name.clone(),
        hostname: hostname(),
        pid: i64::from(std::process::id()),
        local: config.local,
        version: env!("CARGO_PKG_VERSION").into(),
        slots: capacity.slots.clamp(1, 1024) as u32,
        cpus: capacity.cpus,
        memory_mib: capacity.memory_mib,
        gpus: capacity.gpus,
        tags: capacity.tags.clone(),
    };
    loop {
        let welcome = tokio::select! {
            r = register(&link, &hello, &config) => r?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let agent = welcome.agent_id;
        let beat = Duration::from_millis(welcome.heartbeat_ms.max(50));
        tracing::info!(agent, name = %config.name, server = %config.server, slots = hello.slots, "registered");
        let lost = CancellationToken::new();
        let running: Running = Arc::default();
        let heart = tokio::spawn(heartbeat(
            Arc::clone(&link),
            agent,
            beat,
            Arc::clone(&running),
            lost.clone(),
        ));
        let workers = (0..hello.slots).map(|slot| {
            let spool = config.work_dir.join(format!("slot-{slot}.log"));
            worker(
                &link, agent, beat, &config, &shutdown, &lost, &running, spool,
            )
        });
        let ends = futures::future::join_all(workers).await;
        lost.cancel();
        let _ = heart.await;
        if let Some(fatal) = ends.into_iter().find_map(|e| match e {
            WorkerEnd::Fatal(e) => Some(e),
            _ => None,
        }) {
            return Err(fatal);
        }
        if shutdown.is_cancelled() {
            let path = format!("/agent/v1/agents/{agent}");
            let _ = link
                .call(
                    reqwest::Method::DELETE,
                    &path,
                    None,
                    None,
                    Duration::from_secs(3),
                )
                .await;
            tracing::info!(agent, "stopped");
            return Ok(());
        }
        tracing::warn!(
            agent,
            "the server no longer knows this agent; registering again"
        );
    }
}

/// One slot: leases a task, runs it, and reports it with the next lease (one call per
/// task), again and again. A report is kept, and resent, until the server has taken it.
#[allow(clippy::too_many_arguments)]
async fn worker(
    link: &Arc<Link>,
    agent: i64,
    beat: Duration,
    config: &AgentConfig,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
    running: &Running,
    spool: PathBuf,
) -> WorkerEnd {
    let mut last_contact = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut pending: Option<Finished> = None;
    loop {
        if shutdown.is_cancelled() {
            if let Some(done) = pending.take() {
                report(link, agent, done, config, running).await;
            }
            return WorkerEnd::Shutdown;
        }
        if lost.is_cancelled() {
            return WorkerEnd::Lost;
        }
        let path = format!(
            "/agent/v1/agents/{agent}/lease?wait_ms={}",
            beat.as_millis()
        );
        let ask = LeaseAsk {
            finished: pending.clone(),
            start_as: Some(config.name.clone()),
        };
        let body = serde_json::to_value(&ask).expect("serialises");
        let lease = tokio::select! {
            r = link.call(reqwest::Method::POST, &path, None, Some(body), beat + Duration::from_secs(10)) => r,
            () = shutdown.cancelled() => continue,
            () = lost.cancelled() => continue,
        };
        match link.json::<Assignment>(lease).await {
            Ok(leased) => {
                last_contact = Instant::now();
                backoff = Duration::from_millis(100);
                if let Some(done) = pending.take() {
                    tracing::info!(assignment = done.assignment_id, report = ?done.report, "reported");
                    forget(running, done.assignment_id);
                }
                if let Some(assignment) = leased {
                    // A queue that started the task on hand-out reads reports from leases;
                    // one that did not predates them, and is told with `finish` at once.
                    let one_call = assignment.started;
                    let done =
                        run_assignment(link, agent, assignment, config, shutdown, running, &spool)
                            .await;
                    match done {
                        Some(done) if !one_call => report(link, agent, done, config, running).await,
                        done => pending = done,
                    }
                }
            }
            Err(CallError::Gone(why)) => {
                tracing::warn!(agent, %why, "registering again");
                lost.cancel();
                return WorkerEnd::Lost;
            }
            Err(CallError::Refused(why)) => {
                return WorkerEnd::Fatal(FarmError::permission_denied(format!(
                    "the queue refused the agent token: {why}"
                )));
            }
            Err(other) => {
                let why = other.to_string();
                if let Some(limit) = config.reconnect_timeout
                    && last_contact.elapsed() > limit
                {
                    return WorkerEnd::Fatal(FarmError::unavailable(format!(
                        "the queue at {} has been unreachable for {}: {why}",
                        config.server,
                        humantime::format_duration(limit)
                    )));
                }
                tracing::debug!(%why, "lease failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Sends one report on its own (when the agent is stopping, so no lease follows it).
async fn report(
    link: &Arc<Link>,
    agent: i64,
    done: Finished,
    config: &AgentConfig,
    running: &Running,
) {
    let id = done.assignment_id;
    let deadline = config.reconnect_timeout.map(|t| Instant::now() + t);
    let body = serde_json::to_value(&done.report).expect("serialises");
    let path = format!("/agent/v1/agents/{agent}/assignments/{id}/finish");
    match retry(deadline, || {
        link.call(
            reqwest::Method::POST,
            &path,
            None,
            Some(body.clone()),
            Duration::from_secs(10),
        )
    })
    .await
    {
        Ok(_) => tracing::info!(assignment = id, report = ?done.report, "reported"),
        Err(CallError::Gone(why)) => {
            tracing::info!(assignment = id, %why, "the server had taken the task back; result dropped")
        }
        Err(other) => {
            tracing::warn!(assignment = id, error = %other, "cannot report the result; the server will requeue the task")
        }
    }
    forget(running, id);
}

/// The assignment is over and reported: heartbeats stop naming it.
fn forget(running: &Running, id: i64) {
    running.lock().expect("running poisoned").remove(&id);
}

async fn register(
    link: &Link,
    hello: &AgentHello,
    config: &AgentConfig,
) -> Result<Welcome, FarmError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let body = serde_json::to_value(hello).expect("hello serialises");
    loop {
        let reply = link
            .call(
                reqwest::Method::POST,
                "/agent/v1/agents",
                None,
                Some(body.clone()),
                Duration::from_secs(10),
            )
            .await;
        match link.json::<Welcome>(reply).await {
            Ok(Some(welcome)) => return Ok(welcome),
            Err(CallError::Refused(why)) => {
                return Err(FarmError::permission_denied(format!(
                    "the queue at {} refused the agent token: {why}",
                    config.server
                )));
            }
            Ok(None) => {}
            Err(err) => {
                if let Some(limit) = config.reconnect_timeout
                    && started.elapsed() > limit
                {
                    return Err(FarmError::unavailable(format!(
                        "cannot register with the queue at {}: {err}",
                        config.server
                    )));
                }
                tracing::debug!(error = %err, "cannot register yet; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// The task of `index`, exactly as [`JobRequest::tasks`] numbers them, without building
/// every chunk of a large job.
pub fn task_for(request: &JobRequest, index: u32) -> Option<Task> {
    match &request.frames {
        None => (index == 0).then_some(Task {
            index: 0,
            frames: None,
        }),
        Some(frames) => {
            let size = request.chunk_size.max(1) as usize;
            let chunk: Vec<u32> = frames
                .iter()
                .skip(index as usize * size)
                .take(size)
                .collect();
            if chunk.is_empty() {
                return None;
            }
            FrameSet::from_frames(chunk).ok().map(|frames| Task {
                index,
                frames: Some(frames),
            })
        }
    }
}

/// The request of an assignment, parsed and validated once per job: a 100,000-frame job's
/// frame set is not expanded again for each of its tasks.
fn parsed_request(value: &serde_json::Value) -> Result<Arc<JobRequest>, String> {
    static RECENT: std::sync::Mutex<Vec<(serde_json::Value, Arc<JobRequest>)>> =
        std::sync::Mutex::new(Vec::new());
    if let Some((_, request)) = RECENT
        .lock()
        .expect("poisoned")
        .iter()
        .find(|(v, _)| v == value)
    {
        return Ok(Arc::clone(request));
    }
    let request: JobRequest =
        serde_json::from_value(value.clone()).map_err(|e| format!("unreadable request: {e}"))?;
    request.validate().map_err(|e| e.to_string())?;
    let request = Arc::new(request);
    let mut recent = RECENT.lock().expect("poisoned");
    if recent.len() >= 8 {
        recent.remove(0);
    }
    recent.push((value.clone(), Arc::clone(&request)));
    Ok(request)
}

fn request_of(assignment: &Assignment) -> Result<(Arc<JobRequest>, Task), String> {
    let request = parsed_request(&assignment.request)?;
    if let Some(frames) = &assignment.frames {
        let frames: FrameSet = frames
            .parse()
            .map_err(|e| format!("unreadable frames {frames:?}: {e}"))?;
        return Ok((
            request,
            Task {
                index: assignment.task_index,
                frames: Some(frames),
            },
        ));
    }
    let task = task_for(&request, assignment.task_index)
        .ok_or_else(|| format!("the job has no task {}", assignment.task_index))?;
    Ok((request, task))
}

/// Runs one assignment: confirms the start unless the lease already did, runs the task
/// with its output uploaded, and returns the report for the next lease (`None` when the
/// task must not run). Until it is reported, the heartbeats keep naming it, so the server
/// never mistakes a finished, unreported task for one its agent does not know.
async fn run_assignment(
    link: &Arc<Link>,
    agent: i64,
    assignment: Assignment,
    config: &AgentConfig,
    shutdown: &CancellationToken,
    running: &Running,
    spool: &Path,
) -> Option<Finished> {
    let id = assignment.assignment_id;
    let base = format!("/agent/v1/agents/{agent}/assignments/{id}");
    let deadline = config.reconnect_timeout.map(|t| Instant::now() + t);
    let cancel = CancellationToken::new();
    running
        .lock()
        .expect("running poisoned")
        .insert(id, cancel.clone());
    if !assignment.started {
        let starting = serde_json::to_value(Starting {
            agent_name: config.name.clone(),
        })
        .expect("serialises");
        let start_path = format!("{base}/start");
        let confirmed = retry(deadline, || {
            link.call(
                reqwest::Method::POST,
                &start_path,
                None,
                Some(starting.clone()),
                Duration::from_secs(10),
            )
        })
        .await;
        match confirmed {
            Ok(_) => {}
            Err(CallError::Gone(why)) => {
                tracing::info!(assignment = id, %why, "the server took the task back before it started");
                forget(running, id);
                return None;
            }
            Err(other) => {
                tracing::warn!(assignment = id, error = %other, "cannot confirm the start; leaving the task to the server");
                forget(running, id);
                return None;
            }
        }
    }
    tracing::info!(assignment = id, job = %assignment.job_id, task = assignment.task_index, "running");
    // The slot's spool is emptied, not deleted and created again: on ext4, creating a file
    // next to many just deleted ones cost the agent more CPU than the task's own process.
    if let Err(e) = std::fs::File::create(spool) {
        tracing::warn!(spool = %spool.display(), error = %e, "cannot empty the spool");
    }
    let spool = spool.to_path_buf();
    let done = CancellationToken::new();
    let uploads = tokio::spawn(upload(
        Arc::clone(link),
        base.clone(),
        spool.clone(),
        done.clone(),
        deadline,
    ));
    let mut interrupted = false;
    let report = match request_of(&assignment) {
        Err(why) => TaskReport::Failed {
            reason: format!("the agent cannot run this request: {why}"),
            exit_code: None,
        },
        Ok((request, task)) => {
            // Tasks never see the agent's token; the mark lets a supervisor find orphans.
            let options = ExecOptions {
                grace: config.kill_grace,
                base_env: vec![(AGENT_MARK_ENV.into(), config.work_dir.display().to_string())],
                env_remove: vec![AGENT_TOKEN_ENV.into()],
            };
            let run = run_task(&request, &task, &spool, cancel.clone(), &options);
            let mut run = std::pin::pin!(run);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut run => break outcome,
                    () = shutdown.cancelled(), if !interrupted => {
                        interrupted = true;
                        cancel.cancel();
                    }
                }
            };
            match outcome {
                Ok(TaskOutcome::Succeeded) => TaskReport::Succeeded,
                Ok(TaskOutcome::Failed { reason, exit_code }) => {
                    TaskReport::Failed { reason, exit_code }
                }
                Ok(TaskOutcome::Cancelled) if interrupted => TaskReport::Interrupted,
                Ok(TaskOutcome::Cancelled) => TaskReport::Cancelled,
                Err(e) => TaskReport::Failed {
                    reason: format!("the agent could not run the task: {e}"),
                    exit_code: None,
                },
            }
        }
    };
    done.cancel();
    let uploaded = uploads
        .await
        .unwrap_or(Err(CallError::Server("upload task failed".into())));
    if let Err(e) = &uploaded {
        tracing::warn!(assignment = id, error = %e, "log upload ended early");
    }
    let _ = std::fs::File::create(&spool);
    Some(Finished {
        assignment_id: id,
        report,
    })
}

/// The agent's heartbeat: long-polls with the assignments it runs, stops those the server
/// asks it to, and when the server no longer knows the agent stops them all and says so
/// (`lost`), until `lost` is cancelled.
async fn heartbeat(
    link: Arc<Link>,
    agent: i64,
    beat: Duration,
    running: Running,
    lost: CancellationToken,
) {
    let path = format!(
        "/agent/v1/agents/{agent}/heartbeat?wait_ms={}",
        beat.as_millis()
    );
    loop {
        let ids: Vec<i64> = running
            .lock()
            .expect("running poisoned")
            .keys()
            .copied()
            .collect();
        let body = serde_json::to_value(Beat {
            running: ids,
            load: host_load(),
        })
        .expect("serialises");
        let reply = tokio::select! {
            r = link.call(reqwest::Method::POST, &path, None, Some(body), beat + Duration::from_secs(10)) => r,
            () = lost.cancelled() => return,
        };
        match link.json::<Orders>(reply).await {
            Ok(Some(orders)) => {
                stop_these(&running, &orders.cancel);
                if !orders.cancel.is_empty() {
                    // Do not ask again at once while the task is being stopped.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = lost.cancelled() => return,
                    }
                }
            }
            Ok(None) => {}
            Err(CallError::Gone(why)) => {
                tracing::warn!(agent, %why, "declared lost; stopping its tasks");
                let all: Vec<i64> = running
                    .lock()
                    .expect("running poisoned")
                    .keys()
                    .copied()
                    .collect();
                stop_these(&running, &all);
                lost.cancel();
                return;
            }
            Err(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    () = lost.cancelled() => return,
                }
            }
        }
    }
}

fn stop_these(running: &Running, ids: &[i64]) {
    let running = running.lock().expect("running poisoned");
    for id in ids {
        if let Some(cancel) = running.get(id) {
            tracing::info!(assignment = id, "stopping the task");
            cancel.cancel();
        }
    }
}

/// Reads the spool from `offset` (at most [`MAX_UPLOAD`] bytes). Plain blocking reads of a
/// small local file: handing each to tokio's blocking pool cost a short task more in thread
/// wake-ups than the reads themselves.
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    file.take(MAX_UPLOAD).read_to_end(&mut data)?;
    Ok(data)
}

/// Uploads the spool file's new output, whole lines at a time while the task runs and
/// everything once `done`; returns the bytes the server has.
async fn upload(
    link: Arc<Link>,
    base: String,
    spool: PathBuf,
    done: CancellationToken,
    deadline: Option<Instant>,
) -> Result<u64, CallError> {
    let mut sent = 0u64;
    let mut backoff = Duration::from_millis(50);
    loop {
        let finishing = done.is_cancelled();
        let data = read_from(&spool, sent)
            .map_err(|e| CallError::Server(format!("cannot read the spool: {e}")))?;
        let send = if finishing || data.len() >= FLUSH_PARTIAL_LINE_AT {
            data.len()
        } else {
            data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1)
        };
        if send > 0 {
            let path = format!("{base}/log?offset={sent}");
            let reply = link
                .call(
                    reqwest::Method::POST,
                    &path,
                    Some(reqwest::Body::from(data[..send].to_vec())),
                    None,
                    Duration::from_secs(30),
                )
                .await;
            match link.json::<Received>(reply).await {
                Ok(Some(r)) => {
                    sent = r.received;
                    backoff = Duration::from_millis(50);
                }
                Ok(None) => {}
                Err(CallError::Gap(expected)) => sent = expected.min(sent),
                Err(CallError::Transport(why)) => {
                    if finishing && deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(CallError::Transport(why));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(other) => return Err(other),
            }
            continue;
        }
        if finishing {
            return Ok(sent);
        }
        tokio::select! {
            () = tokio::time::sleep(UPLOAD_EVERY) => {}
            () = done.cancelled() => {}
        }
    }
}

/// The host's one-minute load average (Linux), for the queue's agent list.
fn host_load() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod older_queue_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_for_agrees_with_the_reference_plan() {
        for (frames, chunk) in [
            ("1-10", 3),
            ("1001-1010x2", 2),
            ("1,3,7-9,20", 2),
            ("5", 1),
            ("1-7", 3),
        ] {
            let mut r = JobRequest::new("t", vec![farm_core::Command::Argv(vec!["true".into()])]);
            r.frames = Some(frames.parse().unwrap());
            r.chunk_size = chunk;
            let tasks = r.tasks();
            for t in &tasks {
                assert_eq!(
                    task_for(&r, t.index).as_ref(),
                    Some(t),
                    "{frames} / {chunk}"
                );
            }
            assert_eq!(task_for(&r, tasks.len() as u32), None);
        }
        let single = JobRequest::new("t", vec![farm_core::Command::Argv(vec!["true".into()])]);
        assert_eq!(task_for(&single, 0), Some(single.tasks().remove(0)));
        assert_eq!(task_for(&single, 1), None);
    }
}
