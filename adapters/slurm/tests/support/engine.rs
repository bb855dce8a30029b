//! A small Slurm for tests: it queues jobs, honours dependencies, array limits and begin
//! times, really runs each array task's script with bash (so the conformance probes work),
//! appends output where slurmd would, requeues, cancels (killing the process group),
//! forgets finished jobs after `MinJobAge`, writes `jobcomp/filetxt` lines, and describes
//! jobs as v0.0.38 JSON built on a recorded `squeue --json` job object.
//!
//! Both front ends share it: the CLI simulator (`cli.rs`) and the slurmrestd emulation
//! (`rest.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Seconds a finished job stays visible (Slurm's `MinJobAge`).
    pub min_job_age: Duration,
    /// Tasks that may run at once.
    pub slots: usize,
    /// Where finished tasks are logged, as `jobcomp/filetxt` does.
    pub jobcomp: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            min_job_age: Duration::from_secs(300),
            slots: 16,
            jobcomp: None,
        }
    }
}

/// A job as submitted (from directives or a REST body).
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    pub name: String,
    pub comment: String,
    pub output: String,
    pub open_append: bool,
    pub array: Option<Vec<u32>>,
    pub array_limit: Option<u32>,
    pub time_limit: Option<Duration>,
    pub dependency: Vec<u64>,
    pub kill_on_invalid_dep: bool,
    pub cwd: String,
    /// `None`: the job inherits the submitting process's environment (sbatch's default).
    pub env: Option<BTreeMap<String, String>>,
    pub script: String,
    pub nice: i64,
    pub partition: String,
}

/// A fault the next reply suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Garble,
    Stall,
    /// slurmctld is down (restarting): the reply is what Slurm 22.05 recorded then.
    ControllerDown,
}

#[derive(Debug)]
struct Task {
    index: u32,
    job_id: Option<u64>,
    state: &'static str,
    reason: String,
    exit: i64,
    start: i64,
    end: i64,
    restarts: u32,
    begin_at: i64,
    /// When the previous run ended: slurmd refuses to launch a rerun whose credential is
    /// from that same second ("Job credential revoked").
    revoked_at: i64,
    cancel: Option<CancellationToken>,
}

#[derive(Debug)]
struct Job {
    id: u64,
    spec: JobSpec,
    submit: i64,
    tasks: Vec<Task>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    jobs: BTreeMap<u64, Job>,
    garble: usize,
    stall: usize,
    controller_down: usize,
    last_submission: Option<String>,
}

struct Inner {
    state: Mutex<State>,
    config: EngineConfig,
    scripts: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let state = self.state.get_mut().expect("engine poisoned");
        for job in state.jobs.values() {
            for t in &job.tasks {
                if let Some(c) = &t.cancel {
                    c.cancel();
                }
            }
        }
    }
}

/// The simulated cluster. Clones share it; the scheduler loop stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT")
}

/// The recorded shape of one `squeue --json` job object.
fn template() -> Value {
    let text = include_str!("../../../../fixtures/slurm/cli/squeue-finished.json");
    let doc: Value = serde_json::from_str(text).expect("recorded squeue JSON");
    doc["jobs"][0].clone()
}

/// The recorded `meta` block.
pub fn meta() -> Value {
    let text = include_str!("../../../../fixtures/slurm/cli/squeue-finished.json");
    let doc: Value = serde_json::from_str(text).expect("recorded squeue JSON");
    doc["meta"].clone()
}

/// `1,3,5-7` for a sorted list.
fn compress(list: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            list[i].to_string()
        } else {
            format!("{}-{}", list[i], list[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// slurmd's output-name expansion.
fn expand_output(
    pattern: &str,
    cwd: &str,
    job_id: u64,
    master: u64,
    task: Option<u32>,
    name: &str,
) -> PathBuf {
    let resolved = farm_slurm::parse::resolve_output(pattern, cwd, job_id, master, task, name)
        .unwrap_or_else(|| format!("/tmp/slurm-{job_id}.out"));
    PathBuf::from(resolved)
}

fn local_time(secs: i64) -> String {
    use chrono::TimeZone;
    if secs <= 0 {
        return "unknown".into();
    }
    chrono::Local.timestamp_opt(secs, 0).single().map_or_else(
        || "unknown".into(),
        |t| t.format("%Y-%m-%dT%H:%M:%S").to_string(),
    )
}

impl Engine {
    /// Starts a cluster and its scheduler loop on the current tokio runtime.
    pub fn start(config: EngineConfig) -> Engine {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                next_id: 1,
                ..Default::default()
            }),
            config,
            scripts: tempfile::Builder::new()
                .prefix("farm-slurm-sim-")
                .tempdir()
                .expect("tempdir"),
            shutdown: CancellationToken::new(),
        });
        let weak = Arc::downgrade(&inner);
        let shutdown = inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                Engine { inner }.tick();
            }
        });
        Engine { inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("engine poisoned")
    }

    /// Consumes one pending fault for the next reply.
    pub fn take_fault(&self) -> Fault {
        let mut st = self.lock();
        if st.garble > 0 {
            st.garble -= 1;
            Fault::Garble
        } else if st.stall > 0 {
            st.stall -= 1;
            Fault::Stall
        } else if st.controller_down > 0 {
            st.controller_down -= 1;
            Fault::ControllerDown
        } else {
            Fault::None
        }
    }

    pub fn garble(&self, n: usize) {
        self.lock().garble += n;
    }

    pub fn stall(&self, n: usize) {
        self.lock().stall += n;
    }

    /// The next `n` Slurm commands or slurmrestd calls find slurmctld down; jobs keep
    /// running meanwhile (slurmd and slurmstepd do not need slurmctld).
    pub fn controller_down(&self, n: usize) {
        self.lock().controller_down += n;
    }

    /// How many replies are still to find slurmctld down.
    pub fn controller_down_left(&self) -> usize {
        self.lock().controller_down
    }

    pub fn last_submission(&self) -> Option<String> {
        self.lock().last_submission.clone()
    }

    /// Removes every trace of a job (the "forgotten" fault).
    pub fn forget(&self, id: u64) {
        let mut st = self.lock();
        if let Some(job) = st.jobs.remove(&id) {
            for t in &job.tasks {
                if let Some(c) = &t.cancel {
                    c.cancel();
                }
            }
        }
    }

    /// The id the next job will get (what `sbatch --test-only` names).
    pub fn peek_next_id(&self) -> u64 {
        self.lock().next_id
    }

    /// Queues a job; `raw` is what the scheduler received.
    pub fn submit(&self, spec: JobSpec, raw: String) -> u64 {
        let mut st = self.lock();
        st.last_submission = Some(raw);
        let id = st.next_id;
        st.next_id += 1;
        let indices = spec.array.clone().unwrap_or_else(|| vec![0]);
        let tasks = indices
            .into_iter()
            .map(|index| Task {
                index,
                job_id: None,
                state: "PENDING",
                reason: "None".into(),
                exit: 0,
                start: 0,
                end: 0,
                restarts: 0,
                begin_at: 0,
                revoked_at: 0,
                cancel: None,
            })
            .collect();
        st.jobs.insert(
            id,
            Job {
                id,
                spec,
                submit: now(),
                tasks,
            },
        );
        id
    }

    pub fn exists(&self, id: u64) -> bool {
        self.lock().jobs.contains_key(&id)
    }

    /// scancel: pending tasks end at once, running ones are killed.
    pub fn cancel(&self, id: u64) -> bool {
        let mut st = self.lock();
        let Some(job) = st.jobs.get_mut(&id) else {
            return false;
        };
        let t_now = now();
        for t in &mut job.tasks {
            match t.state {
                "PENDING" => {
                    t.state = "CANCELLED";
                    t.end = t_now;
                    t.start = t_now;
                }
                "RUNNING" => {
                    t.state = "CANCELLED";
                    t.exit = 15;
                    if let Some(c) = &t.cancel {
                        c.cancel();
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// `scontrol requeue`: Err(message) like scontrol's.
    pub fn requeue(&self, id: u64) -> Result<(), String> {
        let mut st = self.lock();
        let Some(job) = st.jobs.get_mut(&id) else {
            return Err(format!("Invalid job id specified for job {id}"));
        };
        if job.tasks.iter().any(|t| t.state == "PENDING") {
            return Err(format!("Job is pending execution for job {id}"));
        }
        if job.tasks.iter().any(|t| !is_terminal(t.state)) {
            return Err(format!("the simulator only requeues finished jobs ({id})"));
        }
        let t_now = now();
        job.submit = t_now;
        for t in &mut job.tasks {
            t.state = "PENDING";
            t.reason = "BeginTime".into();
            t.restarts += 1;
            t.begin_at = t_now + 121;
            t.revoked_at = t.end;
            t.start = 0;
            t.end = 0;
            t.cancel = None;
        }
        Ok(())
    }

    /// `scontrol requeue N_I[,N_J...]`: array elements, as Slurm 22.05 does it (seen on the
    /// lab): each finished element (COMPLETED, FAILED, CANCELLED, TIMEOUT) goes back to
    /// PENDING (`BeginTime`, held ~2 minutes unless released) under the same job id, its
    /// restart count up; the other elements are untouched. An unknown element fails the
    /// call as scontrol does; a pending one is "Job is pending execution".
    pub fn requeue_tasks(&self, id: u64, indices: &[u32]) -> Result<(), String> {
        let mut st = self.lock();
        let Some(job) = st.jobs.get_mut(&id) else {
            return Err(format!("Invalid job id specified for job {id}"));
        };
        for i in indices {
            match job.tasks.iter().find(|t| t.index == *i) {
                None => return Err(format!("Invalid job id specified for job {id}_{i}")),
                Some(t) if t.state == "PENDING" => {
                    return Err(format!("Job is pending execution for job {id}_{i}"));
                }
                Some(t) if !is_terminal(t.state) => {
                    return Err(format!(
                        "the simulator only requeues finished elements ({id}_{i})"
                    ));
                }
                Some(_) => {}
            }
        }
        let t_now = now();
        for t in job.tasks.iter_mut().filter(|t| indices.contains(&t.index)) {
            t.state = "PENDING";
            t.reason = "BeginTime".into();
            t.restarts += 1;
            t.begin_at = t_now + 121;
            t.revoked_at = t.end;
            t.start = 0;
            t.end = 0;
            t.cancel = None;
        }
        Ok(())
    }

    /// `scontrol update jobid=N starttime=now+DELAY` (or `jobid=N_I`: one element).
    pub fn release(&self, id: u64, delay: i64) -> bool {
        self.release_task(id, None, delay)
    }

    /// `scontrol update jobid=N[_I] starttime=now+DELAY`.
    pub fn release_task(&self, id: u64, index: Option<u32>, delay: i64) -> bool {
        let mut st = self.lock();
        let Some(job) = st.jobs.get_mut(&id) else {
            return false;
        };
        let at = now() + delay;
        let mut found = false;
        for t in job
            .tasks
            .iter_mut()
            .filter(|t| index.is_none_or(|i| t.index == i))
        {
            t.begin_at = at;
            found = true;
        }
        found
    }

    /// The v0.0.38 job objects of one job (empty if unknown), or of all jobs.
    pub fn records(&self, only: Option<u64>) -> Vec<Value> {
        let st = self.lock();
        let tpl = template();
        let mut out = Vec::new();
        for job in st
            .jobs
            .values()
            .filter(|j| only.is_none_or(|id| j.id == id))
        {
            let is_array = job.spec.array.is_some();
            let record = |job_id: u64,
                          task: Option<u32>,
                          task_string: String,
                          state: &str,
                          reason: &str,
                          exit: i64,
                          restarts: u32,
                          start: i64,
                          end: i64| {
                let mut r = tpl.clone();
                let o = r.as_object_mut().unwrap();
                o.insert("job_id".into(), json!(job_id));
                o.insert(
                    "array_job_id".into(),
                    json!(if is_array { job.id } else { 0 }),
                );
                o.insert("array_task_id".into(), json!(task));
                o.insert("array_task_string".into(), json!(task_string));
                o.insert(
                    "array_max_tasks".into(),
                    json!(job.spec.array_limit.unwrap_or(0)),
                );
                o.insert("name".into(), json!(job.spec.name));
                o.insert("comment".into(), json!(job.spec.comment));
                o.insert("job_state".into(), json!(state));
                o.insert("state_reason".into(), json!(reason));
                o.insert("exit_code".into(), json!(exit));
                o.insert("restart_cnt".into(), json!(restarts));
                o.insert("submit_time".into(), json!(job.submit));
                o.insert("start_time".into(), json!(start));
                o.insert("end_time".into(), json!(end));
                o.insert("standard_output".into(), json!(job.spec.output));
                o.insert("current_working_directory".into(), json!(job.spec.cwd));
                o.insert("nice".into(), json!(job.spec.nice));
                o.insert(
                    "partition".into(),
                    json!(if job.spec.partition.is_empty() {
                        "debug"
                    } else {
                        &job.spec.partition
                    }),
                );
                o.insert(
                    "dependency".into(),
                    json!(
                        job.spec
                            .dependency
                            .iter()
                            .map(|d| format!("afterok:{d}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                );
                r
            };
            let unstarted: Vec<u32> = job
                .tasks
                .iter()
                .filter(|t| t.job_id.is_none() && t.state == "PENDING")
                .map(|t| t.index)
                .collect();
            if is_array && !unstarted.is_empty() {
                let first = job.tasks.iter().find(|t| t.index == unstarted[0]).unwrap();
                out.push(record(
                    job.id,
                    None,
                    compress(&unstarted),
                    "PENDING",
                    &first.reason,
                    0,
                    first.restarts,
                    0,
                    0,
                ));
            }
            for t in &job.tasks {
                if is_array && t.job_id.is_none() && t.state == "PENDING" {
                    continue;
                }
                let job_id = t.job_id.unwrap_or(job.id);
                out.push(record(
                    job_id,
                    is_array.then_some(t.index),
                    String::new(),
                    t.state,
                    &t.reason,
                    t.exit,
                    t.restarts,
                    t.start,
                    t.end,
                ));
            }
        }
        out
    }

    /// One scheduling pass: start what may start, purge what is old enough.
    fn tick(&self) {
        let t_now = now();
        let mut starts = Vec::new();
        {
            let mut st = self.lock();
            let mut running = st
                .jobs
                .values()
                .flat_map(|j| &j.tasks)
                .filter(|t| t.state == "RUNNING")
                .count();
            let dep_status: BTreeMap<u64, &'static str> = st
                .jobs
                .values()
                .map(|j| {
                    let s = if j.tasks.iter().all(|t| t.state == "COMPLETED") {
                        "ok"
                    } else if j
                        .tasks
                        .iter()
                        .any(|t| is_terminal(t.state) && t.state != "COMPLETED")
                    {
                        "failed"
                    } else {
                        "waiting"
                    };
                    (j.id, s)
                })
                .collect();
            let mut next_id = st.next_id;
            for job in st.jobs.values_mut() {
                let deps: Vec<&str> = job
                    .spec
                    .dependency
                    .iter()
                    .map(|d| dep_status.get(d).copied().unwrap_or("ok"))
                    .collect();
                let mut job_running = job.tasks.iter().filter(|t| t.state == "RUNNING").count();
                let pending_count = job.tasks.iter().filter(|t| t.state == "PENDING").count();
                let mut started_now = 0;
                for t in job.tasks.iter_mut().filter(|t| t.state == "PENDING") {
                    if deps.contains(&"failed") {
                        if job.spec.kill_on_invalid_dep {
                            t.state = "CANCELLED";
                            t.end = t_now;
                        }
                        t.reason = "DependencyNeverSatisfied".into();
                        continue;
                    }
                    if deps.contains(&"waiting") {
                        t.reason = "Dependency".into();
                        continue;
                    }
                    if t.begin_at > t_now {
                        t.reason = "BeginTime".into();
                        continue;
                    }
                    if job
                        .spec
                        .array_limit
                        .is_some_and(|l| job_running as u32 >= l)
                    {
                        t.reason = "JobArrayTaskLimit".into();
                        continue;
                    }
                    if running >= self.inner.config.slots {
                        t.reason = "Resources".into();
                        continue;
                    }
                    if t.revoked_at >= t_now {
                        // What the real slurmd does to a rerun launched too soon.
                        t.state = "FAILED";
                        t.exit = 1 << 8;
                        t.start = t_now;
                        t.end = t_now;
                        t.reason = "NonZeroExitCode".into();
                        continue;
                    }
                    started_now += 1;
                    let last_unstarted = started_now == pending_count;
                    let job_id = match t.job_id {
                        Some(id) => id,
                        None if job.spec.array.is_none() || last_unstarted => job.id,
                        None => {
                            next_id += 1;
                            next_id - 1
                        }
                    };
                    t.job_id = Some(job_id);
                    t.state = "RUNNING";
                    t.reason = "None".into();
                    t.start = t_now;
                    t.end = 0;
                    let token = CancellationToken::new();
                    t.cancel = Some(token.clone());
                    running += 1;
                    job_running += 1;
                    starts.push((job.id, t.index, job_id, t.restarts, token, job.spec.clone()));
                }
            }
            st.next_id = next_id;
            let age = self.inner.config.min_job_age.as_secs() as i64;
            st.jobs.retain(|_, j| {
                !(j.tasks.iter().all(|t| is_terminal(t.state) && t.end > 0)
                    && j.tasks.iter().map(|t| t.end).max().unwrap_or(0) + age < t_now)
            });
        }
        for (master, index, job_id, restarts, token, spec) in starts {
            let weak = Arc::downgrade(&self.inner);
            let dir = self.inner.scripts.path().to_path_buf();
            tokio::spawn(run_task(
                weak, dir, master, index, job_id, restarts, token, spec,
            ));
        }
    }

    fn finish(&self, master: u64, index: u32, restarts: u32, state: &'static str, exit: i64) {
        let line = {
            let mut st = self.lock();
            let Some(job) = st.jobs.get_mut(&master) else {
                return;
            };
            let name = job.spec.name.clone();
            let cwd = job.spec.cwd.clone();
            let submit = job.submit;
            let is_array = job.spec.array.is_some();
            let Some(t) = job
                .tasks
                .iter_mut()
                .find(|t| t.index == index && t.restarts == restarts)
            else {
                return;
            };
            if t.state != "CANCELLED" {
                t.state = state;
                t.exit = exit;
            }
            t.end = now().max(t.start);
            t.cancel = None;
            let (code, sig) = if exit & 0x7f == 0 {
                (exit >> 8, 0)
            } else {
                (0, exit & 0x7f)
            };
            let array = if is_array {
                format!("ArrayJobId={master} ArrayTaskId={index} ")
            } else {
                String::new()
            };
            format!(
                "JobId={} UserId=root(0) GroupId=root(0) Name={name} JobState={} Partition=debug TimeLimit=UNLIMITED StartTime={} EndTime={} NodeList=sim NodeCnt=1 ProcCnt=1 WorkDir={cwd} ReservationName= Tres=cpu=1,mem=1G,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown SubmitTime={} EligibleTime={} {array}DerivedExitCode=0:0 ExitCode={code}:{sig} \n",
                t.job_id.unwrap_or(master),
                t.state,
                local_time(t.start),
                local_time(t.end),
                local_time(submit),
                local_time(submit),
            )
        };
        if let Some(path) = &self.inner.config.jobcomp {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_task(
    engine: Weak<Inner>,
    dir: PathBuf,
    master: u64,
    index: u32,
    job_id: u64,
    restarts: u32,
    cancel: CancellationToken,
    spec: JobSpec,
) {
    let is_array = spec.array.is_some();
    let script = dir.join(format!("job{job_id}.{restarts}.sh"));
    let outcome: (&'static str, i64) = async {
        std::fs::write(&script, &spec.script).map_err(|e| e.to_string())?;
        let out_path = expand_output(
            &spec.output,
            &spec.cwd,
            job_id,
            master,
            is_array.then_some(index),
            &spec.name,
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(spec.open_append || restarts > 0)
            .write(true)
            .truncate(!(spec.open_append || restarts > 0))
            .open(&out_path)
            .map_err(|e| format!("cannot open {}: {e}", out_path.display()))?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(&script);
        if let Some(env) = &spec.env {
            cmd.env_clear().envs(env);
        }
        let cwd = if spec.cwd.is_empty() || !std::path::Path::new(&spec.cwd).is_dir() {
            "/tmp".to_owned()
        } else {
            spec.cwd.clone()
        };
        cmd.current_dir(&cwd)
            .env("SLURM_JOB_ID", job_id.to_string())
            .env("SLURM_JOB_NAME", &spec.name)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true);
        if is_array {
            cmd.env("SLURM_ARRAY_JOB_ID", master.to_string())
                .env("SLURM_ARRAY_TASK_ID", index.to_string());
        } else {
            cmd.env_remove("SLURM_ARRAY_TASK_ID");
        }
        if restarts > 0 {
            cmd.env("SLURM_RESTART_COUNT", restarts.to_string());
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let pgid = child.id().map(|p| p as i32);
        let limit = spec
            .time_limit
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let kill = |sig| {
            if let Some(pg) = pgid {
                let _ = killpg(Pid::from_raw(pg), sig);
            }
        };
        let result = tokio::select! {
            status = child.wait() => {
                use std::os::unix::process::ExitStatusExt;
                let status = status.map_err(|e| e.to_string())?;
                let raw = status.into_raw() as i64;
                Ok(if raw == 0 { ("COMPLETED", 0) } else { ("FAILED", raw) })
            }
            () = cancel.cancelled() => {
                kill(Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                    kill(Signal::SIGKILL);
                    let _ = child.wait().await;
                }
                Ok(("CANCELLED", 15))
            }
            () = tokio::time::sleep(limit) => {
                kill(Signal::SIGTERM);
                let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                kill(Signal::SIGKILL);
                Ok(("TIMEOUT", 15))
            }
        };
        // Like Slurm's process tracking: nothing of the task outlives it.
        kill(Signal::SIGKILL);
        result
    }
    .await
    .unwrap_or_else(|e: String| {
        tracing::warn!("simulated task failed to run: {e}");
        ("FAILED", 1 << 8)
    });
    let _ = std::fs::remove_file(&script);
    if let Some(inner) = engine.upgrade() {
        Engine { inner }.finish(master, index, restarts, outcome.0, outcome.1);
    }
}
