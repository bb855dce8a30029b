//! Helpers shared by the local queue's integration tests: a real queue server process
//! (`farm queue serve`) with real agent processes, and deadline-bound polling.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use farm_queue::DataRoot;
use farm_queue::data_root::TokenKind;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};

/// The `farm` binary: `queue serve`, `agent`, `agents`.
pub const BIN: &str = env!("CARGO_BIN_EXE_farm");

/// Fast timings so lost agents are noticed within seconds.
pub const FAST: &[&str] = &[
    "--heartbeat",
    "200ms",
    "--agent-timeout",
    "3s",
    "--kill-grace",
    "1s",
];

/// A `farm queue serve` process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub root: PathBuf,
}

impl ServerProcess {
    /// Starts a server on a free port.
    pub fn start(root: &Path, args: &[&str]) -> ServerProcess {
        ServerProcess::start_on(root, 0, args)
    }

    /// Starts a server on `port` and waits until it listens.
    pub fn start_on(root: &Path, port: u16, args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(root, port, args, &[])
    }

    /// Starts a server on `port` with more variables in its environment.
    pub fn start_with_env(
        root: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("logs/test-server.log"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["queue", "serve", "--port", &port.to_string(), "--data-root"])
            .arg(root)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the queue server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start: {}",
                    std::fs::read_to_string(root.join("logs/test-server.log")).unwrap_or_default()
                );
            }
        };
        let url = line.rsplit(' ').next().unwrap().to_owned();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        ServerProcess {
            child: Some(child),
            url,
            port,
            root: root.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn api_token(&self) -> SecretString {
        DataRoot::resolve(Some(&self.root))
            .read_token(TokenKind::Api)
            .unwrap()
            .unwrap()
    }

    pub fn agent_token(&self) -> SecretString {
        DataRoot::resolve(Some(&self.root))
            .read_token(TokenKind::Agent)
            .unwrap()
            .unwrap()
    }

    /// kill -9, leaving its agents orphaned (they keep running and retrying).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (its agents are stopped in order).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An HTTP client and the authorization header value.
    pub fn client(&self) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: self.api_token(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
        // Agents a killed server left behind and this test did not reap.
        for pid in processes_mentioning(&self.root.display().to_string()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Minimal client of the farm protocol for tests.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: SecretString,
}

impl Api {
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(self.token.expose_secret())
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .unwrap()
    }

    pub async fn submit(&self, body: serde_json::Value) -> String {
        let response = self.post_json("/v1/jobs", body).await;
        assert!(
            response.status().is_success(),
            "submit: {}",
            response.status()
        );
        let job: serde_json::Value = response.json().await.unwrap();
        job["id"].as_str().unwrap().to_owned()
    }

    pub async fn job(&self, id: &str) -> serde_json::Value {
        self.get(&format!("/v1/jobs/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, panicking with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pids of processes whose command line mentions `text` (the test's data root identifies
/// its agents).
pub fn processes_mentioning(text: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if cmdline.contains(text) && !stat.contains(") Z ") {
            out.push(pid);
        }
    }
    out
}

/// The environment of process `pid`, as `NAME=value` entries.
pub fn environ_of(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Agent processes of the queue at `root`.
pub fn agent_processes(root: &Path) -> Vec<i32> {
    processes_mentioning(&root.join("agents").display().to_string())
}

/// A `farm ARGS` command for the `local` farm whose queue is found through data root `root`
/// alone, as a user's would be: no farms file, no address in the environment.
pub fn farm_command(root: &Path, args: &[&str]) -> Command {
    let config = root.with_extension("farms.yaml");
    if !config.exists() {
        std::fs::write(&config, "farms: {}\n").unwrap();
    }
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("FARM_CONFIG", &config)
        .env("FARM_DATA_ROOT", root)
        .env_remove("FARM")
        .env_remove("FARM_QUEUE_URL")
        .env_remove("FARM_LOCAL_URL")
        .stdin(Stdio::null());
    command
}

/// Runs `farm ARGS` as [`farm_command`] builds it.
pub fn farm_on(root: &Path, args: &[&str]) -> std::process::Output {
    farm_command(root, args).output().expect("run farm")
}

/// Stdout and stderr of a finished command, for assertion messages.
pub fn texts(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a request file `name.yaml` in `dir` and returns its path as a string.
pub fn request_file(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}
