//! What the queue keeps from whom: the caller's secrets stay out of a queue the adapter
//! starts, credentials stay out of agents, the queue proves it holds the token, and the web
//! page's login codes work once (impostors are in `adapters/local/tests/impostor.rs`).

#![cfg(feature = "local")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, ServerProcess, agent_processes, environ_of, eventually};
use farm_core::{
    CommonSettings, FarmPlugin, FarmPluginExt, JobFilter, JobRequest, JobState, WaitOptions,
};
use farm_local::client::{Probe, probe, web_login_url};
use farm_local::{LocalQueue, LocalSettings};
use farm_queue::{DataRoot, auth};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::ExposeSecret;
use serde_json::json;

const SENTINEL: &str = "sentinel-secret-4f1d9c";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_dump_request(name: &str, out: &std::path::Path) -> JobRequest {
    JobRequest::new(
        name,
        vec![farm_core::Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            "env > \"$1\"".into(),
            "sh".into(),
            out.display().to_string(),
        ])],
    )
}

/// Names of the `NAME=value` entries that contain `text` (never the values: they may be
/// secrets).
fn carrying(entries: &[String], text: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.contains(text))
        .map(|e| e.split('=').next().unwrap_or_default().to_owned())
        .collect()
}

/// Set in the child process that plays the caller with secrets in its environment.
const CALLER: &str = "FARM_TEST_CALLER_WITH_SECRETS";

#[test]
fn the_callers_secrets_never_reach_a_queue_it_starts_nor_its_jobs() {
    if std::env::var_os(CALLER).is_none() {
        // Tests cannot change their own environment, so this test runs again in a child
        // process whose environment holds the secrets, and checks from there.
        let name = "the_callers_secrets_never_reach_a_queue_it_starts_nor_its_jobs";
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CALLER, "1")
            .env("AWS_SECRET_ACCESS_KEY", SENTINEL)
            .env("SLURM_JWT", SENTINEL)
            .env("FARM_HTTP_TOKEN", SENTINEL)
            .env("FARM_LOCAL_TOKEN", SENTINEL)
            .env("STUDIO_DB_PASSWORD", SENTINEL)
            .env("FARM_TEST_PASSED", "passed-by-pass-env")
            .env("LC_MESSAGES", "C")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the check ran: {text}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(caller_with_secrets());
}

async fn caller_with_secrets() {
    assert_eq!(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(), SENTINEL);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let url = format!("http://127.0.0.1:{}", free_port());
    let settings = LocalSettings {
        url: Some(url.clone()),
        data_root: Some(root.clone()),
        agents: Some(1),
        idle_shutdown: Duration::from_secs(60),
        pass_env: vec!["FARM_TEST_PASSED".into()],
        server_command: Some(vec![BIN.into(), "queue".into(), "serve".into()]),
        ..LocalSettings::default()
    };
    let farm = LocalQueue::new(settings, CommonSettings::default()).unwrap();
    let out = dir.path().join("job-env");
    let id = farm
        .submit(&env_dump_request("env-of-an-autostarted-queue", &out))
        .await
        .unwrap();
    let options = WaitOptions {
        timeout: Duration::from_secs(60),
        interval: Duration::from_millis(50),
        ..WaitOptions::default()
    };
    let job = farm
        .wait_until_finished(&id, &options, &mut |_| {})
        .await
        .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("server.json")).unwrap()).unwrap();
    let server_pid = info["pid"].as_i64().unwrap() as i32;
    let server_env = environ_of(server_pid);
    let agents = agent_processes(&root);
    let agent_env: Vec<String> = agents.iter().flat_map(|pid| environ_of(*pid)).collect();
    let _ = kill(Pid::from_raw(server_pid), Signal::SIGTERM);

    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let job_env = std::fs::read_to_string(&out).unwrap();
    let job_env: Vec<String> = job_env.lines().map(str::to_owned).collect();
    assert_eq!(
        carrying(&job_env, SENTINEL),
        Vec::<String>::new(),
        "secrets reached the job"
    );
    assert!(!server_env.is_empty() && !agents.is_empty());
    assert_eq!(
        carrying(&server_env, SENTINEL),
        Vec::<String>::new(),
        "secrets reached the queue"
    );
    assert_eq!(
        carrying(&agent_env, SENTINEL),
        Vec::<String>::new(),
        "secrets reached its agents"
    );
    // What it keeps: the allowlist and pass_env.
    for kept in [
        "PATH=",
        "LC_MESSAGES=C",
        "FARM_TEST_PASSED=passed-by-pass-env",
    ] {
        assert!(
            job_env.iter().any(|l| l.starts_with(kept)),
            "{kept} missing"
        );
    }
    assert!(
        carrying(&job_env, CALLER).is_empty(),
        "an unlisted variable reached the job"
    );
    eventually("the queue to stop", Duration::from_secs(30), || async {
        matches!(probe(&url).await, Probe::Down(_)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_started_by_hand_keeps_the_users_environment_but_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let server = ServerProcess::start_with_env(
        &root,
        0,
        &["--agents", "1"],
        &[
            ("SLURM_JWT", SENTINEL),
            ("FARM_HTTP_TOKEN", SENTINEL),
            ("STUDIO_SHOW", "show-010"),
        ],
    );
    let api = server.client();
    let out = dir.path().join("job-env");
    let id = api
        .submit(json!({
            "name": "env-of-a-hand-started-queue",
            "commands": [["/bin/sh", "-c", "env > \"$1\"", "sh", out.display().to_string()]],
        }))
        .await;
    eventually("the job to complete", Duration::from_secs(30), || async {
        (api.job(&id).await["state"] == "Completed").then_some(())
    })
    .await;
    let job_env: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(job_env.iter().any(|l| l == "STUDIO_SHOW=show-010"));
    for secret in [SENTINEL, server.agent_token().expose_secret()] {
        assert_eq!(
            carrying(&job_env, secret),
            Vec::<String>::new(),
            "credentials reached the job"
        );
    }
    let agents = agent_processes(&root);
    assert_eq!(agents.len(), 1);
    let agent_env = environ_of(agents[0]);
    assert_eq!(
        carrying(&agent_env, SENTINEL),
        Vec::<String>::new(),
        "the agent carries the user's credentials"
    );
    assert!(agent_env.iter().any(|v| v == "STUDIO_SHOW=show-010"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_proves_it_holds_the_token_and_refuses_malformed_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let http = reqwest::Client::new();
    let health = |query: String| {
        let http = http.clone();
        let url = format!("{}/v1/health{query}", server.url);
        async move { http.get(url).send().await.unwrap() }
    };
    let challenge = auth::new_challenge();
    let answer: serde_json::Value = health(format!("?challenge={challenge}"))
        .await
        .json()
        .await
        .unwrap();
    let proof = answer["proof"].as_str().unwrap();
    assert!(auth::health_proof_matches(
        &server.api_token(),
        &challenge,
        proof
    ));
    assert!(!auth::health_proof_matches(
        &server.agent_token(),
        &challenge,
        proof
    ));
    let plain: serde_json::Value = health(String::new()).await.json().await.unwrap();
    assert_eq!(plain["status"], "ok");
    assert!(plain.get("proof").is_none());
    for bad in [
        "?challenge=abc".to_owned(),
        format!("?challenge={}", "z".repeat(40)),
        format!("?challenge={challenge}&challenge={challenge}"),
    ] {
        let r = health(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // The adapter accepts it.
    let farm = LocalQueue::new(
        LocalSettings::connect(server.url.clone(), server.api_token()),
        CommonSettings::default(),
    )
    .unwrap();
    assert!(
        farm.list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn exchange(url: &str, body: String, content_type: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/web/v1/session"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_code_opens_one_session_and_guessing_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let server = ServerProcess::start(&root, &["--agents", "0"]);
    let token = server.api_token();
    // Issuing codes needs the client token.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/web/v1/login-codes", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // What `farm queue url` prints.
    let url = format!("{}/", server.url);
    let root = DataRoot::resolve(Some(&root));
    let link = web_login_url(&url, &root).await.unwrap();
    assert!(
        link.starts_with(&format!("{}/#code=", server.url)),
        "{link}"
    );
    assert!(!link.contains(token.expose_secret()), "{link}");
    let code = link.rsplit("#code=").next().unwrap().to_owned();
    let body = |code: &str| json!({ "code": code }).to_string();
    assert_eq!(
        exchange(&server.url, body(&code), "text/plain").await.0,
        415,
        "JSON only"
    );
    let (status, session) = exchange(&server.url, body(&code), "application/json").await;
    assert_eq!(
        (status, session["token"].as_str()),
        (200, Some(token.expose_secret()))
    );
    let (status, problem) = exchange(&server.url, body(&code), "application/json").await;
    assert_eq!(status, 401, "a code works once");
    assert!(!problem.to_string().contains(token.expose_secret()));

    let fresh = web_login_url(&url, &root).await.unwrap();
    let fresh = fresh.rsplit("#code=").next().unwrap().to_owned();
    let mut refused = 0;
    for i in 0..20 {
        let (status, _) =
            exchange(&server.url, body(&format!("{i:064x}")), "application/json").await;
        if status == 429 {
            refused += 1;
        } else {
            assert_eq!(status, 401);
        }
    }
    assert!(
        refused >= 10,
        "wrong guesses are cut off ({refused} refused)"
    );
    let (status, _) = exchange(&server.url, body(&fresh), "application/json").await;
    assert_eq!(
        status, 429,
        "while cut off, even a right code is not looked at"
    );
}
