//! A simulated schedd behind HTCondor's command line: a [`CommandRunner`] that answers
//! `condor_submit`, `condor_q`, `condor_history`, `condor_rm`, `condor_hold` and
//! `condor_release` the way the recorded tools do (`fixtures/htcondor/`), and runs the jobs
//! for real. Anything else (the adapter's file writer) runs on this machine.
//!
//! What it models: procs start after a queue delay on a limited number of slots, run their
//! `Cmd` with the decoded `Arguments` and `Environment` (nothing else inherited), in `Iwd`;
//! finished and removed procs stay in the queue briefly and then move to the history; every
//! transition is written to the job's user log in HTCondor's event format; held procs wait
//! for `condor_release`; `allowed_execute_duration` holds with code 47. It implements
//! [`SchedulerControl`] so the suite's fault-injection checks run.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use farm_conformance::SchedulerControl;
use farm_core::{CommandOutput, CommandRunner, JobId, LocalRunner, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::constraint;
use super::submit_lang;

/// How the simulated pool behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The directory `condor_submit` runs in (the jobs' `Iwd`).
    pub submit_dir: PathBuf,
    /// Procs that may run at once.
    pub slots: usize,
    /// Time a proc stays Idle before it may start.
    pub start_delay: Duration,
    /// Time a finished or removed proc stays in the queue before it moves to the history.
    pub leave_delay: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl SimConfig {
    pub fn new(submit_dir: impl Into<PathBuf>) -> SimConfig {
        SimConfig {
            submit_dir: submit_dir.into(),
            slots: 4,
            start_delay: Duration::from_millis(50),
            leave_delay: Duration::from_millis(300),
            kill_grace: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct Launch {
    cmd: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    output: Option<String>,
    error: Option<String>,
    max_runtime: Option<Duration>,
    max_retries: Option<i64>,
}

#[derive(Debug)]
struct SimProc {
    ad: BTreeMap<String, Value>,
    launch: Launch,
    idle_since: Instant,
    /// Bumped whenever the running process is abandoned (hold, remove), so its waiter
    /// does not report an exit for it.
    generation: u64,
    pgid: Option<i32>,
    /// Set once the proc may leave the queue (finished, or removed with no process left).
    leave_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    next_cluster: u32,
    queue: BTreeMap<(u32, u32), SimProc>,
    history: Vec<BTreeMap<String, Value>>,
    forgotten: HashSet<u32>,
    garble: usize,
    stall: usize,
    last_submission: Option<String>,
    submissions: usize,
    dry_runs: Vec<String>,
    last_args: BTreeMap<String, Vec<String>>,
    calls: BTreeMap<String, usize>,
}

/// The simulated schedd and its command line.
#[derive(Clone)]
pub struct CondorSim {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    state: Mutex<State>,
    local: LocalRunner,
}

impl std::fmt::Debug for CondorSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CondorSim").finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ok(stdout: impl Into<String>) -> CommandOutput {
    CommandOutput {
        status: Some(0),
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

fn failed(stderr: impl Into<String>) -> CommandOutput {
    CommandOutput {
        status: Some(1),
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

impl CondorSim {
    /// A simulator; its scheduling loop runs on the current tokio runtime.
    pub fn new(config: SimConfig) -> CondorSim {
        let sim = CondorSim {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    next_cluster: 4243,
                    ..State::default()
                }),
                local: LocalRunner::new(Duration::from_secs(30)),
            }),
        };
        let weak = Arc::downgrade(&sim.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let Some(inner) = weak.upgrade() else { return };
                CondorSim { inner }.tick();
            }
        });
        sim
    }

    /// Fault injection for the conformance suite.
    pub fn control(&self) -> Arc<dyn SchedulerControl> {
        Arc::new(self.clone())
    }

    /// How many times a tool ran.
    pub fn calls(&self, tool: &str) -> usize {
        self.lock().calls.get(tool).copied().unwrap_or(0)
    }

    /// How many times `condor_submit` ran.
    pub fn submissions(&self) -> usize {
        self.lock().submissions
    }

    /// The arguments a tool last ran with.
    pub fn last_args(&self, tool: &str) -> Vec<String> {
        self.lock().last_args.get(tool).cloned().unwrap_or_default()
    }

    /// The descriptions `condor_submit -dry-run` parsed, in order.
    pub fn dry_runs(&self) -> Vec<String> {
        self.lock().dry_runs.clone()
    }

    /// Number of procs in the queue.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Number of ads in the history.
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }

    /// Drops a cluster from the history only (as a history rotation would), keeping the
    /// user log.
    pub fn purge_history(&self, cluster: u32) {
        self.lock()
            .history
            .retain(|ad| ad.get("ClusterId").and_then(Value::as_i64) != Some(i64::from(cluster)));
    }

    /// Whether any proc of a cluster is still in the queue.
    pub fn in_queue(&self, cluster: u32) -> bool {
        self.lock().queue.keys().any(|(c, _)| *c == cluster)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("poisoned")
    }

    /// Starts idle procs on free slots and moves finished ones to the history.
    fn tick(&self) {
        let now = Instant::now();
        let mut to_start = Vec::new();
        {
            let mut state = self.lock();
            let leaving: Vec<(u32, u32)> = state
                .queue
                .iter()
                .filter(|(_, p)| p.leave_at.is_some_and(|at| at <= now))
                .map(|(k, _)| *k)
                .collect();
            for key in leaving {
                if let Some(p) = state.queue.remove(&key) {
                    state.history.push(p.ad);
                }
            }
            let running = state.queue.values().filter(|p| status(&p.ad) == 2).count();
            let free = self.inner.config.slots.saturating_sub(running);
            for (key, p) in state.queue.iter() {
                if to_start.len() >= free {
                    break;
                }
                if status(&p.ad) == 1 && p.idle_since + self.inner.config.start_delay <= now {
                    to_start.push(*key);
                }
            }
            for key in &to_start {
                let p = state.queue.get_mut(key).expect("listed");
                set_status(&mut p.ad, 2);
                p.generation += 1;
            }
        }
        for key in to_start {
            self.start_proc(key);
        }
    }

    fn start_proc(&self, key: (u32, u32)) {
        let mut state = self.lock();
        let Some(p) = state.queue.get_mut(&key) else {
            return;
        };
        let generation = p.generation;
        let mut command = tokio::process::Command::new(&p.launch.cmd);
        command
            .args(&p.launch.argv)
            .env_clear()
            .envs(p.launch.env.iter().map(|(k, v)| (k, v)))
            .env("_CONDOR_SCRATCH_DIR", &self.inner.config.submit_dir)
            .current_dir(&self.inner.config.submit_dir)
            .stdin(Stdio::null())
            .process_group(0);
        let open = |path: &Option<String>| -> std::io::Result<Stdio> {
            Ok(match path {
                Some(path) => Stdio::from(std::fs::File::create(path)?),
                None => Stdio::null(),
            })
        };
        let spawned = open(&p.launch.output)
            .and_then(|out| open(&p.launch.error).map(|err| (out, err)))
            .and_then(|(out, err)| command.stdout(out).stderr(err).spawn());
        let now = now_secs();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let reason = format!(
                    "Error from slot1@sim: Failed to execute '{}': {e}",
                    p.launch.cmd
                );
                hold(p, &reason, 6, e.raw_os_error().unwrap_or(0) as i64);
                return;
            }
        };
        p.pgid = child.id().map(|id| id as i32);
        let first = !p.ad.contains_key("JobStartDate");
        if first {
            p.ad.insert("JobStartDate".into(), json!(now));
        }
        p.ad.insert("JobCurrentStartDate".into(), json!(now));
        let starts =
            p.ad.get("NumJobStarts")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
        p.ad.insert("NumJobStarts".into(), json!(starts));
        p.ad.insert("RemoteHost".into(), json!("slot1@sim.example.org"));
        write_event(
            &p.ad,
            1,
            "Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=sim.example.org>",
            &[],
        );
        let max_runtime = p.launch.max_runtime;
        drop(state);
        let sim = self.clone();
        tokio::spawn(async move {
            let status = match max_runtime {
                Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                    Ok(status) => status.ok(),
                    Err(_) => {
                        sim.exceeded(key, generation, limit).await;
                        let _ = child.wait().await;
                        return;
                    }
                },
                None => child.wait().await.ok(),
            };
            sim.exited(key, generation, status);
        });
    }

    async fn exceeded(&self, key: (u32, u32), generation: u64, limit: Duration) {
        let pgid = {
            let mut state = self.lock();
            let Some(p) = state.queue.get_mut(&key) else {
                return;
            };
            if p.generation != generation || status(&p.ad) != 2 {
                return;
            }
            p.generation += 1;
            let reason = format!(
                "The job exceeded allowed execute duration of {}",
                humantime_secs(limit)
            );
            let pgid = p.pgid.take();
            hold(p, &reason, 47, 0);
            pgid
        };
        self.kill(pgid).await;
    }

    fn exited(&self, key: (u32, u32), generation: u64, exit: Option<std::process::ExitStatus>) {
        let mut state = self.lock();
        if state.forgotten.contains(&key.0) {
            return;
        }
        let leave_delay = self.inner.config.leave_delay;
        let Some(p) = state.queue.get_mut(&key) else {
            return;
        };
        if p.generation != generation {
            return;
        }
        p.pgid = None;
        if status(&p.ad) != 2 {
            return;
        }
        use std::os::unix::process::ExitStatusExt;
        let (code, signal) = match exit {
            Some(s) => (s.code(), s.signal()),
            None => (None, Some(9)),
        };
        let now = now_secs();
        let completions =
            p.ad.get("NumJobCompletions")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
        p.ad.insert("NumJobCompletions".into(), json!(completions));
        if code != Some(0) && p.launch.max_retries.is_some_and(|max| completions <= max) {
            // max_retries: back to Idle for another run.
            write_event(
                &p.ad,
                4,
                "Job was evicted.",
                &["(0) Job was not checkpointed."],
            );
            set_status(&mut p.ad, 1);
            p.idle_since = Instant::now();
            return;
        }
        set_status(&mut p.ad, 4);
        p.ad.insert("CompletionDate".into(), json!(now));
        let line = match (code, signal) {
            (Some(c), _) => {
                p.ad.insert("ExitBySignal".into(), json!(false));
                p.ad.insert("ExitCode".into(), json!(c));
                format!("(1) Normal termination (return value {c})")
            }
            (None, s) => {
                let s = s.unwrap_or(9);
                p.ad.insert("ExitBySignal".into(), json!(true));
                p.ad.insert("ExitSignal".into(), json!(s));
                format!("(0) Abnormal termination (signal {s})")
            }
        };
        write_event(&p.ad, 5, "Job terminated.", &[&line]);
        p.leave_at = Some(Instant::now() + leave_delay);
    }

    async fn kill(&self, pgid: Option<i32>) {
        let Some(pgid) = pgid else { return };
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        let deadline = Instant::now() + self.inner.config.kill_grace;
        while killpg(Pid::from_raw(pgid), None).is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }

    fn reply_fault(&self) -> Option<Fault> {
        let mut state = self.lock();
        if state.stall > 0 {
            state.stall -= 1;
            return Some(Fault::Stall);
        }
        if state.garble > 0 {
            state.garble -= 1;
            return Some(Fault::Garble);
        }
        None
    }

    async fn condor_submit(&self, args: &[String], stdin: Option<&[u8]>) -> CommandOutput {
        let mut terse = false;
        let mut dry_run: Option<String> = None;
        let mut appended = Vec::new();
        let mut file = None;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-terse" => terse = true,
                // `-dry-run FILE`: FILE receives the ads (`-` is stdout); a following
                // option is not a file (condor_submit: "-dry-run requires another argument").
                "-dry-run" | "-dry" => {
                    i += 1;
                    match args.get(i) {
                        Some(out) if out == "-" || !out.starts_with('-') => {
                            dry_run = Some(out.clone());
                        }
                        _ => {
                            return failed("condor_submit: -dry-run requires another argument\n");
                        }
                    }
                }
                "-append" | "-a" => {
                    i += 1;
                    appended.push(args.get(i).cloned().unwrap_or_default());
                }
                "-name" | "-pool" => i += 1,
                other if other.starts_with('-') && other != "-" => {
                    return failed(format!("\nERROR: unknown option {other}\n"));
                }
                other => file = Some(other.to_owned()),
            }
            i += 1;
        }
        let text = match file.as_deref() {
            Some("-") | None => String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    return failed(format!(
                        "\nERROR: Can't open \"{path}\"  with flags 00 ({e})\n"
                    ));
                }
            },
        };
        if let Some(out) = dry_run {
            return self.dry_run(&text, &appended, &out, terse);
        }
        {
            let mut state = self.lock();
            state.last_submission = Some(text.clone());
            state.submissions += 1;
        }
        if !terse {
            return failed("\nERROR: the simulator only implements condor_submit -terse\n");
        }
        match self.queue_cluster(&text, &appended) {
            Ok((cluster, procs)) => ok(format!("{cluster}.0 - {cluster}.{}\n", procs - 1)),
            Err(message) => failed(format!("\nERROR: {message}\n")),
        }
    }

    /// `condor_submit -dry-run OUT`, modelled on condor_submit's source: the description
    /// is parsed and every proc's ad built as for a submit, against a simulated queue
    /// (cluster 1) that creates nothing; a transferred executable must exist (the dry run
    /// checks it, the log file it does not). The ads go to OUT as `Attr = value` lines, a
    /// blank line between procs (the layout of the real ads is not modelled exactly);
    /// `-terse` then prints `1.0 - 1.N`. Errors are `ERROR: ...` on stderr, exit 1.
    fn dry_run(&self, text: &str, appended: &[String], out: &str, terse: bool) -> CommandOutput {
        self.lock().dry_runs.push(text.to_owned());
        let iwd = self.inner.config.submit_dir.display().to_string();
        let specs = match submit_lang::build_procs(text, appended, 1, &iwd, now_secs()) {
            Ok(specs) => specs,
            Err(message) => return failed(format!("\nERROR: {message}\n")),
        };
        for spec in &specs {
            if spec.transfer_executable && std::fs::metadata(&spec.cmd).is_err() {
                return failed(format!(
                    "\nERROR: Executable file {} does not exist\n",
                    spec.cmd
                ));
            }
        }
        let mut ads = String::new();
        for (i, spec) in specs.iter().enumerate() {
            if i > 0 {
                ads.push('\n');
            }
            for (name, value) in &spec.ad {
                ads.push_str(&format!("{name} = {value}\n"));
            }
        }
        let mut stdout = String::new();
        if out == "-" {
            stdout = ads;
        } else if std::fs::write(out, &ads).is_err() {
            return failed("\nERROR: Failed to open file -dry-run output file\n");
        }
        if terse && !specs.is_empty() {
            stdout.push_str(&format!("1.0 - 1.{}\n", specs.len() - 1));
        }
        ok(stdout)
    }

    fn queue_cluster(
        &self,
        text: &str,
        appended: &[String],
    ) -> std::result::Result<(u32, u32), String> {
        let cluster = self.lock().next_cluster;
        let iwd = self.inner.config.submit_dir.display().to_string();
        let specs = submit_lang::build_procs(text, appended, cluster, &iwd, now_secs())?;
        for spec in &specs {
            if spec.transfer_executable {
                let meta = std::fs::metadata(&spec.cmd)
                    .map_err(|_| format!("Executable file {} does not exist", spec.cmd))?;
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o111 == 0 {
                    return Err(format!("Executable file {} is not executable", spec.cmd));
                }
            }
            if let Some(log) = &spec.log {
                let parent = std::path::Path::new(log).parent().filter(|p| p.is_dir());
                if !log.starts_with('/') || parent.is_none() {
                    return Err(format!(
                        "Invalid log file: \"{log}\" (No such file or directory)"
                    ));
                }
            }
        }
        let mut state = self.lock();
        if state.next_cluster != cluster {
            return Err("another condor_submit ran at the same time; try again".into());
        }
        state.next_cluster += 1;
        let procs = specs.len() as u32;
        for (proc_id, spec) in specs.into_iter().enumerate() {
            let launch = Launch {
                cmd: spec.cmd,
                argv: spec.argv,
                env: spec.env,
                output: spec.output,
                error: spec.error,
                max_runtime: spec.max_runtime.map(Duration::from_secs),
                max_retries: spec.max_retries,
            };
            let p = SimProc {
                ad: spec.ad,
                launch,
                idle_since: Instant::now(),
                generation: 0,
                pgid: None,
                leave_at: None,
            };
            write_event(
                &p.ad,
                0,
                "Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=sim.example.org>",
                &[],
            );
            state.queue.insert((cluster, proc_id as u32), p);
        }
        Ok((cluster, procs))
    }

    fn select(
        ads: Vec<&BTreeMap<String, Value>>,
        args: &[String],
    ) -> std::result::Result<Selected, CommandOutput> {
        let mut constraint = None;
        let mut attributes: Option<Vec<String>> = None;
        let mut limit = None;
        let mut json_out = false;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-json" => json_out = true,
                "-constraint" => {
                    i += 1;
                    constraint = args.get(i).cloned();
                }
                "-attributes" => {
                    i += 1;
                    attributes = args
                        .get(i)
                        .map(|a| a.split(',').map(str::to_owned).collect());
                }
                "-limit" => {
                    i += 1;
                    limit = args.get(i).and_then(|l| l.parse().ok());
                }
                "-scanlimit" | "-name" | "-pool" => i += 1,
                other => {
                    return Err(failed(format!(
                        "the simulator does not implement the option {other}\n"
                    )));
                }
            }
            i += 1;
        }
        if !json_out {
            return Err(failed("the simulator only answers -json queries\n"));
        }
        let parsed = match &constraint {
            Some(text) => Some(constraint::parse(text).map_err(|e| {
                failed(format!(
                    "Error: Parse error of constraint expression: {e}\n"
                ))
            })?),
            None => None,
        };
        let mut out = Vec::new();
        for ad in ads {
            if parsed.as_ref().is_some_and(|c| !constraint::matches(c, ad)) {
                continue;
            }
            let projected: BTreeMap<String, Value> = match &attributes {
                Some(keep) => ad
                    .iter()
                    .filter(|(k, _)| keep.iter().any(|a| a.eq_ignore_ascii_case(k)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => ad.clone(),
            };
            out.push(projected);
        }
        Ok((out, limit))
    }

    async fn condor_q(&self, args: &[String]) -> CommandOutput {
        let fault = self.reply_fault();
        let state_ads: Vec<BTreeMap<String, Value>> =
            self.lock().queue.values().map(|p| p.ad.clone()).collect();
        let selected = Self::select(state_ads.iter().collect(), args);
        match fault {
            Some(Fault::Stall) => std::future::pending().await,
            Some(Fault::Garble) => {
                return ok("[\n{\n  \"ClusterId\": 4243,\n  \"JobStatus\": \u{fffd}\u{1}");
            }
            None => {}
        }
        match selected {
            Ok((ads, _)) if ads.is_empty() => ok(""),
            Ok((ads, _)) => ok(json_array(&ads)),
            Err(out) => out,
        }
    }

    async fn condor_history(&self, args: &[String]) -> CommandOutput {
        let fault = self.reply_fault();
        let state_ads: Vec<BTreeMap<String, Value>> =
            self.lock().history.iter().rev().cloned().collect();
        let selected = Self::select(state_ads.iter().collect(), args);
        match fault {
            Some(Fault::Stall) => std::future::pending().await,
            Some(Fault::Garble) => return ok("<html>502 Bad Gateway</html>"),
            None => {}
        }
        match selected {
            Ok((mut ads, limit)) => {
                if let Some(limit) = limit {
                    ads.truncate(limit);
                }
                ok(json_array(&ads))
            }
            Err(out) => out,
        }
    }

    async fn act(&self, tool: &str, args: &[String]) -> CommandOutput {
        let Some(target) = args.iter().rev().find(|a| !a.starts_with('-')) else {
            return failed(format!("{tool}: no job given\n"));
        };
        let Ok(cluster) = target.parse::<u32>() else {
            return failed(format!(
                "{tool}: the simulator only acts on whole clusters, not {target:?}\n"
            ));
        };
        let (verb, done) = match tool {
            "condor_rm" => ("remove", "marked for removal"),
            "condor_hold" => ("hold", "held"),
            _ => ("release", "released"),
        };
        let mut kills = Vec::new();
        let acted = {
            let mut state = self.lock();
            if state.queue.is_empty() {
                return CommandOutput {
                    status: Some(0),
                    stdout: String::new(),
                    stderr: format!("{tool}:0:There are no jobs in the queue\n"),
                };
            }
            let leave_delay = self.inner.config.leave_delay;
            let mut acted = 0;
            for ((c, _), p) in state.queue.iter_mut() {
                if *c != cluster {
                    continue;
                }
                let st = status(&p.ad);
                match tool {
                    "condor_rm" if st != 3 && st != 4 => {
                        set_status(&mut p.ad, 3);
                        p.ad.insert("RemoveReason".into(), json!("via condor_rm (by user farm)"));
                        write_event(
                            &p.ad,
                            9,
                            "Job was aborted.",
                            &["via condor_rm (by user farm)"],
                        );
                        p.generation += 1;
                        kills.push(p.pgid.take());
                        p.leave_at = Some(Instant::now() + leave_delay);
                        acted += 1;
                    }
                    "condor_hold" if st == 1 || st == 2 || st == 7 => {
                        p.generation += 1;
                        kills.push(p.pgid.take());
                        hold(p, "via condor_hold (by user farm)", 1, 0);
                        acted += 1;
                    }
                    "condor_release" if st == 5 => {
                        set_status(&mut p.ad, 1);
                        p.idle_since = Instant::now();
                        write_event(
                            &p.ad,
                            13,
                            "Job was released.",
                            &["via condor_release (by user farm)"],
                        );
                        acted += 1;
                    }
                    _ => {}
                }
            }
            acted
        };
        for pgid in kills {
            let sim = self.clone();
            tokio::spawn(async move { sim.kill(pgid).await });
        }
        if acted == 0 {
            return failed(format!(
                "\nCouldn't find/{verb} all jobs in cluster {cluster}\n"
            ));
        }
        ok(format!("All jobs in cluster {cluster} have been {done}\n"))
    }
}

/// Ads a query selected, and its `-limit`.
type Selected = (Vec<BTreeMap<String, Value>>, Option<usize>);

enum Fault {
    Stall,
    Garble,
}

fn status(ad: &BTreeMap<String, Value>) -> i64 {
    ad.get("JobStatus").and_then(Value::as_i64).unwrap_or(0)
}

fn set_status(ad: &mut BTreeMap<String, Value>, new: i64) {
    let old = status(ad);
    ad.insert("LastJobStatus".into(), json!(old));
    ad.insert("JobStatus".into(), json!(new));
    ad.insert("EnteredCurrentStatus".into(), json!(now_secs()));
}

fn hold(p: &mut SimProc, reason: &str, code: i64, subcode: i64) {
    set_status(&mut p.ad, 5);
    p.ad.insert("HoldReason".into(), json!(reason));
    p.ad.insert("HoldReasonCode".into(), json!(code));
    p.ad.insert("HoldReasonSubCode".into(), json!(subcode));
    p.pgid = None;
    write_event(
        &p.ad,
        12,
        "Job was held.",
        &[reason, &format!("Code {code} Subcode {subcode}")],
    );
}

fn humantime_secs(d: Duration) -> String {
    format!("{} seconds", d.as_secs())
}

/// Appends an event to the proc's user log, in HTCondor's text format.
fn write_event(ad: &BTreeMap<String, Value>, event: u32, text: &str, body: &[&str]) {
    let Some(path) = ad.get("UserLog").and_then(Value::as_str) else {
        return;
    };
    let cluster = ad.get("ClusterId").and_then(Value::as_i64).unwrap_or(0);
    let proc_id = ad.get("ProcId").and_then(Value::as_i64).unwrap_or(0);
    let mut record = format!(
        "{event:03} ({cluster:03}.{proc_id:03}.000) {} {text}\n",
        farm_htcondor::parse::format_log_time(now_secs())
    );
    for line in body {
        record.push('\t');
        record.push_str(line);
        record.push('\n');
    }
    record.push_str("...\n");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(record.as_bytes());
    }
}

/// The `-json` framing of condor_q/condor_history: `[`, ads separated by `,` lines, `]`;
/// keys sorted case-insensitively, two-space indent.
pub fn json_array(ads: &[BTreeMap<String, Value>]) -> String {
    let mut out = String::from("[\n");
    for (i, ad) in ads.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        let mut keys: Vec<&String> = ad.keys().collect();
        keys.sort_by_key(|k| k.to_ascii_lowercase());
        out.push_str("{\n");
        for (j, key) in keys.iter().enumerate() {
            let sep = if j + 1 == keys.len() { "" } else { "," };
            out.push_str(&format!("  {}: {}{sep}\n", json!(key), ad[*key]));
        }
        out.push_str("}\n");
    }
    out.push_str("]\n");
    out
}

#[async_trait]
impl CommandRunner for CondorSim {
    async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let tool = argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
            .unwrap_or_default();
        let args = &argv[1.min(argv.len())..];
        {
            let mut state = self.lock();
            *state.calls.entry(tool.clone()).or_default() += 1;
            state.last_args.insert(tool.clone(), args.to_vec());
        }
        Ok(match tool.as_str() {
            "condor_submit" => self.condor_submit(args, stdin).await,
            "condor_q" => self.condor_q(args).await,
            "condor_history" => self.condor_history(args).await,
            "condor_rm" | "condor_hold" | "condor_release" => self.act(&tool, args).await,
            _ => return self.inner.local.run(argv, stdin).await,
        })
    }
}

#[async_trait]
impl SchedulerControl for CondorSim {
    async fn forget(&self, id: &JobId) {
        let Ok(cluster) = id.as_str().parse::<u32>() else {
            return;
        };
        let pgids: Vec<Option<i32>> = {
            let mut state = self.lock();
            state.forgotten.insert(cluster);
            let keys: Vec<(u32, u32)> = state
                .queue
                .keys()
                .filter(|(c, _)| *c == cluster)
                .copied()
                .collect();
            let pgids = keys
                .iter()
                .filter_map(|k| state.queue.remove(k))
                .map(|p| p.pgid)
                .collect();
            state.history.retain(|ad| {
                ad.get("ClusterId").and_then(Value::as_i64) != Some(i64::from(cluster))
            });
            pgids
        };
        for pgid in pgids {
            self.kill(pgid).await;
        }
    }

    async fn garble_replies(&self, count: usize) {
        self.lock().garble += count;
    }

    async fn stall_replies(&self, count: usize) {
        self.lock().stall += count;
    }

    async fn last_submission(&self) -> Option<String> {
        self.lock().last_submission.clone()
    }
}
