//! Remote agents over TCP: refused without the right token, working with it, and started
//! and stopped over ssh by `agents start|stop` (with a stand-in for ssh that runs the remote
//! side locally).

#![cfg(feature = "local")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, ServerProcess, eventually, processes_mentioning};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::ExposeSecret;
use serde_json::json;

fn agent_command(server: &ServerProcess, work: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "agent",
            "--server",
            &server.url,
            "--name",
            "remote-1",
            "--reconnect-timeout",
            "20s",
            "--work-dir",
        ])
        .arg(work)
        .env_remove("FARM_AGENT_TOKEN")
        .env("HOME", work)
        .env_remove("FARM_DATA_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_the_right_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let wrong = agent_command(&server, &dir.path().join("w1"))
        .env("FARM_AGENT_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("refused the agent token"), "{stderr}");
    assert!(
        !stderr.contains("not-the-token"),
        "the token must not be echoed: {stderr}"
    );
    let none = agent_command(&server, &dir.path().join("w2"))
        .output()
        .unwrap();
    assert!(!none.status.success());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("FARM_AGENT_TOKEN") && stderr.contains("--token-file"),
        "{stderr}"
    );
    // The farm protocol refuses clients without its token too (health needs none).
    let http = reqwest::Client::new();
    let anonymous = http
        .get(format!("{}/v1/jobs", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let agent_token_as_client = http
        .get(format!("{}/v1/jobs", server.url))
        .bearer_auth(server.agent_token().expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(
        agent_token_as_client.status(),
        401,
        "the agent token is not a client token"
    );
    assert_eq!(
        http.get(format!("{}/v1/health", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_with_the_token_runs_jobs_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let api = server.client();
    let marker = dir.path().join("ran");
    let id = api
        .submit(json!({
            "name": "for-the-remote-agent",
            "commands": [["/bin/sh", "-c", "echo \"token:[${FARM_AGENT_TOKEN-unset}]\"; touch \"$1\"", "sh", marker.display().to_string()]],
        }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.job(&id).await["state"], "Waiting", "no agent, no run");
    let mut agent = agent_command(&server, &dir.path().join("w"))
        .env("FARM_AGENT_TOKEN", server.agent_token().expose_secret())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job = eventually(
        "the remote agent to run the job",
        Duration::from_secs(30),
        || async {
            let job = api.job(&id).await;
            (job["state"] == "Completed").then_some(job)
        },
    )
    .await;
    assert!(marker.exists());
    let log = std::fs::read_to_string(job["render_log_filename"].as_str().unwrap()).unwrap();
    assert!(log.contains("on agent remote-1"), "{log}");
    assert!(
        log.contains("token:[unset]"),
        "tasks never see the agent token: {log}"
    );
    kill(Pid::from_raw(agent.id() as i32), Signal::SIGTERM).unwrap();
    let status = agent.wait().unwrap();
    assert!(
        status.success(),
        "an agent stops cleanly on SIGTERM: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_token_from_a_file_and_keeps_it_off_argv_and_environ() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let api = server.client();
    let token = server.agent_token();
    let missing = dir.path().join("no-such.token");
    let out = agent_command(&server, &dir.path().join("w0"))
        .arg("--token-file")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()),
        "the error names the file: {stderr}"
    );
    let file = dir.path().join("agent.token");
    std::fs::write(&file, format!("{}\n", token.expose_secret())).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The file wins over a (wrong) variable.
    let mut agent = agent_command(&server, &dir.path().join("w"))
        .arg("--token-file")
        .arg(&file)
        .env("FARM_AGENT_TOKEN", "not-the-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = api
        .submit(json!({"name": "token-from-a-file", "commands": [["true"]]}))
        .await;
    eventually(
        "the agent to run the job",
        Duration::from_secs(30),
        || async { (api.job(&id).await["state"] == "Completed").then_some(()) },
    )
    .await;
    let pid = agent.id() as i32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(token.expose_secret()));
    assert!(
        common::environ_of(pid)
            .iter()
            .all(|v| !v.contains(token.expose_secret())),
        "the token is not in the agent's environment"
    );
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert!(agent.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_start_and_stop_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let server = ServerProcess::start(&root, &["--agents", "0"]);
    let api = server.client();
    // Stands in for ssh: skips options and the destination, runs the rest here.
    let fake_ssh = dir.path().join("fake-ssh");
    std::fs::write(
        &fake_ssh,
        "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift 2\nexec \"$@\"\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake_ssh).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        &fake_ssh,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let remote_dir = dir.path().join("remote-agents");
    let ssh_args = |action: &str| {
        let mut c = Command::new(BIN);
        c.args([
            "agents",
            action,
            "--ssh",
            "render@farm-node",
            "--ssh-program",
        ])
        .arg(&fake_ssh)
        .arg("--remote-dir")
        .arg(&remote_dir)
        .env_remove("FARM_AGENT_TOKEN");
        c
    };
    let started = ssh_args("start")
        .args([
            "--count",
            "2",
            "--server",
            &server.url,
            "--remote-farm",
            BIN,
            "--slots",
            "2",
            "--tag",
            "lighting",
            "--memory",
            "3G",
            "--data-root",
        ])
        .arg(&root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&started.stdout);
    assert!(
        started.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert_eq!(out.matches("started agent").count(), 2, "{out}");
    let remote = remote_dir.display().to_string();
    eventually("two remote agents", Duration::from_secs(20), || async {
        (processes_mentioning(&remote).len() == 2).then_some(())
    })
    .await;
    for pid in processes_mentioning(&remote) {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !cmdline.contains(server.agent_token().expose_secret()),
            "the token is not on a command line"
        );
    }
    // Each agent registered with the options given to `agents start`.
    let alive: Vec<serde_json::Value> =
        eventually("two registered agents", Duration::from_secs(20), || async {
            let agents: serde_json::Value = api.get("/v1/agents").await.json().await.unwrap();
            let alive: Vec<serde_json::Value> = agents["agents"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["alive"] == true)
                .cloned()
                .collect();
            (alive.len() == 2).then_some(alive)
        })
        .await;
    for agent in &alive {
        assert_eq!(
            (&agent["slots"], &agent["tags"], &agent["memory_mib"]),
            (&json!(2), &json!(["lighting"]), &json!(3072)),
            "{agent}"
        );
    }
    let id = api
        .submit(
            json!({"name": "via-ssh-agents", "commands": [["true"]], "frames": "1-4",
                       "native": {"local": {"pool": "lighting"}}}),
        )
        .await;
    eventually(
        "the job to complete on remote agents",
        Duration::from_secs(30),
        || async { (api.job(&id).await["state"] == "Completed").then_some(()) },
    )
    .await;
    let stopped = ssh_args("stop").output().unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    eventually(
        "the remote agents to exit",
        Duration::from_secs(20),
        || async { processes_mentioning(&remote).is_empty().then_some(()) },
    )
    .await;
}

/// The agent protocol's one call per task, spoken by hand: a lease that starts what it
/// hands out and carries the previous report; a malformed body is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_starts_its_task_and_carries_the_previous_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let api = server.client();
    let id = api
        .submit(json!({"name": "by hand", "commands": [["true"]], "frames": "1-2"}))
        .await;
    let http = reqwest::Client::new();
    let token = server.agent_token();
    let post = |path: String, body: serde_json::Value| {
        http.post(format!("{}/agent/v1{path}", server.url))
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
    };
    let welcome: serde_json::Value = post(
        "/agents".into(),
        json!({"name": "hand", "hostname": "h", "pid": 1}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let agent = welcome["agent_id"].as_i64().unwrap();
    let lease = format!("/agents/{agent}/lease?wait_ms=0");
    let bad = post(lease.clone(), json!({"finished": {"assignment_id": "x"}}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("assignment_id"),
        "{problem}"
    );
    let first: serde_json::Value = post(lease.clone(), json!({"start_as": "hand"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["started"], true, "{first}");
    assert_eq!(api.job(&id).await["state"], "Running");
    let report = |assignment: &serde_json::Value| json!({"start_as": "hand", "finished": {"assignment_id": assignment["assignment_id"], "report": {"outcome": "succeeded"}}});
    let second: serde_json::Value = post(lease.clone(), report(&first))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["task_index"], 1, "{second}");
    let last = post(lease.clone(), report(&second)).await.unwrap();
    assert_eq!(last.status(), 204, "nothing left; the report was recorded");
    let job = api.job(&id).await;
    assert_eq!(job["state"], "Completed", "{job}");
    assert_eq!(job["progress"]["frames_done"], 2, "{job}");
}
