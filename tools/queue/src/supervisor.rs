//! Keeps N local agent processes alive: launches them, replaces any that die (marking its
//! task lost at once rather than after the heartbeat timeout), adopts agents a killed
//! predecessor left running, and stops them all when the server stops.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::data_root::DataRoot;
use crate::store::Store;
use crate::wire::{AGENT_MARK_ENV, AGENT_TOKEN_ENV};

/// Kills (SIGKILL, whole process groups) every process of this user whose environment
/// carries `FARM_QUEUE_AGENT=<mark>`. Returns how many were found.
pub fn kill_marked_processes(mark: &str) -> usize {
    let needle = format!("{AGENT_MARK_ENV}={mark}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut found = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            found += 1;
            if let Ok(pgid) = nix::unistd::getpgid(Some(Pid::from_raw(pid))) {
                let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    found
}

/// How a local agent process is started: `program args... agent-options...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLauncher {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the agent options (`["agent"]` for `farm`).
    pub args: Vec<String>,
    /// How long an agent gives a stopped task between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Tasks each local agent runs at once (passed as `--slots` when above 1).
    pub slots: u32,
}

impl AgentLauncher {
    /// `<this executable> agent`, right for `farm`.
    pub fn current_exe() -> AgentLauncher {
        AgentLauncher {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("farm")),
            args: vec!["agent".into()],
            kill_grace: Duration::from_secs(5),
            slots: 1,
        }
    }

    /// `<program> agent`.
    pub fn program(program: impl Into<PathBuf>) -> AgentLauncher {
        AgentLauncher {
            program: program.into(),
            ..AgentLauncher::current_exe()
        }
    }
}

pub(crate) struct Supervisor {
    pub count: usize,
    pub launcher: AgentLauncher,
    pub url: String,
    pub agent_token: SecretString,
    pub data_root: DataRoot,
    pub store: Arc<Store>,
    pub stop: CancellationToken,
}

enum Process {
    Child(tokio::process::Child),
    Adopted,
}

struct Slot {
    name: String,
    pid: i32,
    process: Process,
    agent_id: Option<i64>,
    started: Instant,
}

/// Whether `pid` is alive and looks like an agent of ours (its command line has `agent`).
fn is_agent_process(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| raw.split(|b| *b == 0).any(|arg| arg == b"agent"))
        .unwrap_or(false)
}

/// The id of the newest live local agent with process `pid`. The query runs on a blocking
/// thread, like every store call of the server: the supervisor shares the async workers
/// with the request handlers.
async fn agent_id_of(store: &Arc<Store>, pid: i32) -> Option<i64> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.local_agents())
        .await
        .ok()?
        .ok()?
        .into_iter()
        .filter(|(_, p)| *p == i64::from(pid))
        .map(|(id, _)| id)
        .max()
}

impl Supervisor {
    pub async fn run(self) {
        let mut slots: Vec<Slot> = Vec::new();
        let mut failures: u32 = 0;
        let mut next_spawn = Instant::now();
        // Agents a killed predecessor launched keep running and reconnect: count them in.
        let store = Arc::clone(&self.store);
        if let Ok(Ok(known)) = tokio::task::spawn_blocking(move || store.agents()).await {
            for agent in known.into_iter().filter(|a| a.kind == "local") {
                let (id, pid, name) = (agent.id, agent.pid as i32, agent.name);
                if slots.len() < self.count
                    && is_agent_process(pid)
                    && !slots.iter().any(|s| s.name == name)
                {
                    tracing::info!(agent = id, pid, %name, "adopting a running local agent");
                    slots.push(Slot {
                        name,
                        pid,
                        process: Process::Adopted,
                        agent_id: Some(id),
                        started: Instant::now(),
                    });
                } else {
                    if is_agent_process(pid) {
                        // More agents survived than are wanted now: retire the extra one.
                        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                    }
                    let store = Arc::clone(&self.store);
                    let _ = tokio::task::spawn_blocking(move || {
                        store.expire_agents(
                            Duration::MAX,
                            &[id],
                            "it is no longer needed or its process is gone",
                        )
                    })
                    .await;
                }
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.stop.cancelled() => break,
            }
            let live = self.store.live_agent_ids();
            let mut ended = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.agent_id.is_none() {
                    slot.agent_id = agent_id_of(&self.store, slot.pid).await;
                }
                let gone = match &mut slot.process {
                    Process::Child(child) => match child.try_wait() {
                        Ok(Some(status)) => Some(format!("its process exited ({status})")),
                        Ok(None) => None,
                        Err(e) => Some(format!("cannot watch its process: {e}")),
                    },
                    Process::Adopted if !is_agent_process(slot.pid) => {
                        Some("its process is gone".to_owned())
                    }
                    Process::Adopted => slot
                        .agent_id
                        .filter(|id| !live.contains(id))
                        .map(|_| "it stopped responding".to_owned()),
                };
                if let Some(why) = gone {
                    ended.push((i, why));
                }
            }
            for (i, why) in ended.into_iter().rev() {
                let slot = slots.remove(i);
                tracing::warn!(agent = %slot.name, pid = slot.pid, %why, "local agent ended; replacing it");
                let mark = self.data_root.agent_work(&slot.name).display().to_string();
                let orphans = tokio::task::spawn_blocking(move || kill_marked_processes(&mark))
                    .await
                    .unwrap_or(0);
                if orphans > 0 {
                    tracing::warn!(agent = %slot.name, orphans, "killed task processes the agent left behind");
                }
                if slot.started.elapsed() < Duration::from_secs(5) {
                    failures += 1;
                    next_spawn = Instant::now()
                        + Duration::from_millis(250 * 2u64.pow(failures.min(7)))
                            .min(Duration::from_secs(30));
                } else {
                    failures = 0;
                }
                let id = match slot.agent_id {
                    Some(id) => Some(id),
                    None => agent_id_of(&self.store, slot.pid).await,
                };
                if let Some(id) = id {
                    let store = Arc::clone(&self.store);
                    let why = format!("local agent {} ended: {why}", slot.name);
                    let _ = tokio::task::spawn_blocking(move || {
                        store.expire_agents(Duration::MAX, &[id], &why)
                    })
                    .await;
                }
            }
            while slots.len() < self.count && Instant::now() >= next_spawn {
                let name = (1..)
                    .map(|k| format!("local-{k}"))
                    .find(|n| !slots.iter().any(|s| &s.name == n))
                    .expect("a free name");
                match self.spawn(&name) {
                    Ok(child) => {
                        let pid = child.id().map_or(0, |p| p as i32);
                        tracing::info!(agent = %name, pid, "local agent started");
                        slots.push(Slot {
                            name,
                            pid,
                            process: Process::Child(child),
                            agent_id: None,
                            started: Instant::now(),
                        });
                    }
                    Err(e) => {
                        failures += 1;
                        next_spawn =
                            Instant::now() + Duration::from_secs(2u64.pow(failures.min(4)));
                        tracing::error!(agent = %name, program = %self.launcher.program.display(), error = %e, "cannot start a local agent");
                        break;
                    }
                }
            }
        }
        self.stop_all(slots).await;
    }

    fn spawn(&self, name: &str) -> std::io::Result<tokio::process::Child> {
        let work = self.data_root.agent_work(name);
        std::fs::create_dir_all(&work)?;
        let log_path = self.data_root.agent_logs().join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = tokio::process::Command::new(&self.launcher.program);
        // An agent needs no credential but its own token (its tasks get none at all).
        for name in farm_core::secret::credential_variables_present() {
            command.env_remove(name);
        }
        command
            .args(&self.launcher.args)
            .arg("--server")
            .arg(&self.url)
            .arg("--name")
            .arg(name)
            .arg("--work-dir")
            .arg(&work)
            .arg("--kill-grace")
            .arg(humantime::format_duration(self.launcher.kill_grace).to_string())
            .arg("--reconnect-timeout")
            .arg("10m")
            .arg("--local")
            .args(
                (self.launcher.slots > 1)
                    .then(|| ["--slots".to_owned(), self.launcher.slots.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .env(AGENT_TOKEN_ENV, self.agent_token.expose_secret())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: a Ctrl-C at the server's terminal reaches the server, which
            // then stops agents in order instead of them dying mid-report.
            .process_group(0);
        command.spawn()
    }

    async fn stop_all(&self, mut slots: Vec<Slot>) {
        for slot in &slots {
            if matches!(slot.process, Process::Child(_)) || is_agent_process(slot.pid) {
                let _ = kill(Pid::from_raw(slot.pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.launcher.kill_grace + Duration::from_secs(5);
        for slot in &mut slots {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match &mut slot.process {
                Process::Child(child) => {
                    if tokio::time::timeout(remaining, child.wait()).await.is_err() {
                        tracing::warn!(agent = %slot.name, "local agent did not stop; killing it");
                        let _ = child.kill().await;
                    }
                }
                Process::Adopted => {
                    while is_agent_process(slot.pid) && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if is_agent_process(slot.pid) {
                        let _ = kill(Pid::from_raw(slot.pid), Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test(flavor = "current_thread")]
    async fn looking_up_an_agent_never_blocks_the_async_worker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(
                &dir.path().join("queue.db"),
                &dir.path().join("logs"),
                StoreOptions::default(),
            )
            .unwrap(),
        );
        // Another thread holds the store's read connection until the async side shows it
        // still runs while the lookup waits for that connection.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (alive_tx, alive_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let _reader = store.hold_reader();
                locked_tx.send(()).unwrap();
                alive_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            })
        };
        locked_rx.recv().unwrap();
        let lookup = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { agent_id_of(&store, 4242).await })
        };
        // The lookup runs now; on this one-thread runtime it would block it until the
        // holder gives up, and this task would not get here in time.
        tokio::task::yield_now().await;
        let _ = alive_tx.send(());
        assert!(
            holder.join().unwrap(),
            "the runtime stalled while the lookup waited for the database"
        );
        assert_eq!(lookup.await.unwrap(), None);
    }
}
