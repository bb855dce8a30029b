//! Crash tests: the server killed with 1,000 jobs in flight, agents killed or frozen
//! mid-task, a graceful restart. Every job must end exactly once, nothing may run twice at
//! once, and no job may stay Running.

#![cfg(feature = "local")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Api, FAST, ServerProcess, agent_processes, eventually};
use farm_queue::store::{Store, StoreOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// Jobs of this test not yet terminal, and the states of all of them.
async fn states(api: &Api) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=1000&cursor={c}"),
            None => "/v1/jobs?limit=1000".to_owned(),
        };
        let page: serde_json::Value = match api
            .http
            .get(format!("{}{path}", api.url))
            .bearer_auth(secrecy::ExposeSecret::expose_secret(&api.token))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => return BTreeMap::new(),
        };
        for job in page["jobs"].as_array().cloned().unwrap_or_default() {
            out.insert(
                job["name"].as_str().unwrap_or_default().to_owned(),
                job["state"].as_str().unwrap_or_default().to_owned(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_with_1000_jobs_in_flight_loses_none_and_runs_none_twice() {
    const JOBS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let runs = dir.path().join("runs.txt");
    let mut server = ServerProcess::start(&root, FAST);
    let api = server.client();
    let submits = futures::stream::iter(0..JOBS).map(|i| {
        let api = api.clone();
        let runs = runs.display().to_string();
        async move {
            api.submit(json!({
                "name": format!("crash-{i:04}"),
                "commands": [["/bin/sh", "-c", "echo \"$1\" >> \"$2\"", "sh", format!("crash-{i:04}"), runs]],
                "tags": ["crash-test"],
            }))
            .await
        }
    });
    use futures::StreamExt;
    let ids: Vec<String> = submits.buffer_unordered(16).collect().await;
    assert_eq!(ids.len(), JOBS);
    // Let some finish, then kill the server while the rest are queued or running.
    eventually(
        "some jobs to finish before the crash",
        Duration::from_secs(120),
        || async {
            let done = lines(&runs).len();
            (done >= 100).then_some(())
        },
    )
    .await;
    server.kill9();
    let at_crash = lines(&runs).len();
    eprintln!("{at_crash} of {JOBS} jobs had run when the server was killed");
    assert!(
        at_crash < JOBS,
        "every job finished before the crash ({at_crash}); the test proves nothing"
    );
    let mut server = ServerProcess::start_on(&root, server.port, FAST);
    let api = server.client();
    let finished = eventually(
        "every job to end after the restart",
        Duration::from_secs(300),
        || async {
            let s = states(&api).await;
            (s.len() == JOBS
                && s.values()
                    .all(|st| matches!(st.as_str(), "Completed" | "Failed" | "Cancelled")))
            .then_some(s)
        },
    )
    .await;
    server.terminate();
    let not_completed: Vec<_> = finished
        .iter()
        .filter(|(_, st)| *st != "Completed")
        .collect();
    assert!(
        not_completed.is_empty(),
        "jobs that did not complete: {not_completed:?}"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines(&runs) {
        *counts.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs that ran more than once: {twice:?}");
    assert_eq!(counts.len(), JOBS, "every job ran");
    let store = Store::open(
        &root.join("queue.db"),
        &root.join("logs/jobs"),
        StoreOptions::default(),
    )
    .unwrap();
    let terminal = store.terminal_transition_counts().unwrap();
    assert_eq!(terminal.len(), JOBS);
    let wrong: Vec<_> = terminal.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        wrong.is_empty(),
        "jobs that reached a terminal state other than exactly once: {wrong:?}"
    );
}

/// A job that records `<agent pid> <shell pid>` and waits for `go`.
fn waiting_job(name: &str, started: &Path, go: &Path) -> serde_json::Value {
    json!({
        "name": name,
        "commands": [["/bin/sh", "-c", "echo \"$PPID $$\" >> \"$1\"; while [ ! -e \"$2\" ]; do sleep 0.05; done",
                      "sh", started.display().to_string(), go.display().to_string()]],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_replaced_its_orphans_killed_and_its_task_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let server = ServerProcess::start(&root, FAST);
    let api = server.client();
    eventually("two local agents", Duration::from_secs(30), || async {
        (agent_processes(&root).len() == 2).then_some(())
    })
    .await;
    let id = api.submit(waiting_job("victim", &started, &go)).await;
    let first = eventually("the task to start", Duration::from_secs(30), || async {
        lines(&started).first().cloned()
    })
    .await;
    let (agent, shell): (i32, i32) = {
        let mut it = first.split(' ').map(|p| p.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    assert!(
        agent_processes(&root).contains(&agent),
        "the task's parent {agent} is one of the queue's agents"
    );
    kill(Pid::from_raw(agent), Signal::SIGKILL).unwrap();
    let second = eventually(
        "the task to run again elsewhere",
        Duration::from_secs(30),
        || async { lines(&started).get(1).cloned() },
    )
    .await;
    assert_ne!(
        second.split(' ').next().unwrap().parse::<i32>().unwrap(),
        agent
    );
    eventually(
        "the dead agent's task process to be killed",
        Duration::from_secs(10),
        || async { (!alive(shell)).then_some(()) },
    )
    .await;
    eventually("a replacement agent", Duration::from_secs(30), || async {
        let agents = agent_processes(&root);
        (agents.len() == 2 && !agents.contains(&agent)).then_some(())
    })
    .await;
    std::fs::write(&go, "go").unwrap();
    let job = eventually("the job to complete", Duration::from_secs(30), || async {
        let job = api.job(&id).await;
        (job["state"] == "Completed").then_some(job)
    })
    .await;
    assert_eq!(job["attempt"], 1, "a requeue is not a new attempt");
    let log = std::fs::read_to_string(job["render_log_filename"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("requeued: agent local-") && log.contains("try 2"),
        "{log}"
    );
    assert_eq!(lines(&started).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_is_declared_lost_and_stops_its_task_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let server = ServerProcess::start(&root, FAST);
    let api = server.client();
    eventually("two local agents", Duration::from_secs(30), || async {
        (agent_processes(&root).len() == 2).then_some(())
    })
    .await;
    let id = api.submit(waiting_job("frozen", &started, &go)).await;
    let first = eventually("the task to start", Duration::from_secs(30), || async {
        lines(&started).first().cloned()
    })
    .await;
    let mut it = first.split(' ').map(|p| p.parse::<i32>().unwrap());
    let (agent, shell) = (it.next().unwrap(), it.next().unwrap());
    kill(Pid::from_raw(agent), Signal::SIGSTOP).unwrap();
    let job = eventually(
        "the task to be requeued and run by the other agent",
        Duration::from_secs(30),
        || async { (lines(&started).len() == 2).then_some(()) },
    );
    job.await;
    let record = api.job(&id).await;
    assert_eq!(record["state"], "Running", "{record}");
    kill(Pid::from_raw(agent), Signal::SIGCONT).unwrap();
    // Told it is lost, the woken agent stops its copy of the task and registers again.
    eventually(
        "the lost agent's task process to stop",
        Duration::from_secs(30),
        || async { (!alive(shell)).then_some(()) },
    )
    .await;
    std::fs::write(&go, "go").unwrap();
    eventually("the job to complete", Duration::from_secs(30), || async {
        (api.job(&id).await["state"] == "Completed").then_some(())
    })
    .await;
    assert!(alive(agent), "a lost agent stays alive and rejoins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_requeues_running_tasks_and_keeps_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let mut server = ServerProcess::start(
        &root,
        &[
            "--agents",
            "1",
            "--heartbeat",
            "200ms",
            "--agent-timeout",
            "3s",
            "--kill-grace",
            "1s",
        ],
    );
    let api = server.client();
    let running = api.submit(waiting_job("running", &started, &go)).await;
    eventually("the task to start", Duration::from_secs(30), || async {
        lines(&started).first().cloned()
    })
    .await;
    let queued = api
        .submit(json!({"name": "queued", "commands": [["true"]]}))
        .await;
    assert_eq!(api.job(&queued).await["state"], "Waiting");
    server.terminate();
    assert!(
        agent_processes(&root).is_empty(),
        "stopping the server stops its agents"
    );
    let server = ServerProcess::start_on(
        &root,
        server.port,
        &[
            "--agents",
            "1",
            "--heartbeat",
            "200ms",
            "--kill-grace",
            "1s",
        ],
    );
    let api = server.client();
    eventually(
        "the interrupted task to run again",
        Duration::from_secs(30),
        || async { (lines(&started).len() == 2).then_some(()) },
    )
    .await;
    std::fs::write(&go, "go").unwrap();
    for id in [&running, &queued] {
        eventually("both jobs to complete", Duration::from_secs(30), || async {
            (api.job(id).await["state"] == "Completed").then_some(())
        })
        .await;
    }
}
