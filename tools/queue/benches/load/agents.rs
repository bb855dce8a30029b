//! `--mode agents`: a thousand simulated agents (no processes: each leases a task that
//! starts on hand-out, "runs" it for a while and reports it with its next lease, and
//! heartbeats, like a real agent's slot) against one server,
//! with a backlog so that work is always there: lease latency and the server's CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Client, percentile};

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    proc_cpu_seconds(pid, false)
}

/// CPU seconds (user + system) of a process from `/proc/PID/stat`, with those of its
/// children that ended (`cutime`, `cstime`) when `with_children`.
pub fn proc_cpu_seconds(pid: u32, with_children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let last = if with_children { 14 } else { 12 };
    let ticks: f64 = (11..=last)
        .filter_map(|i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

struct Agent {
    http: reqwest::Client,
    url: String,
    token: String,
    id: i64,
}

impl Agent {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/agent/v1/agents/{}{path}", self.url, self.id))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("agent call")
    }
}

/// Runs the simulated agents for `seconds` and prints the table.
pub async fn run(
    client: &Client,
    agent_token: &str,
    pid: u32,
    agents: usize,
    seconds: u64,
    task_ms: u64,
) {
    // A backlog bigger than the agents can finish in the window.
    let backlog = (agents as u64 * (seconds * 1000 / task_ms.max(1) + 2)) as usize;
    eprintln!("submitting a backlog of {backlog} jobs");
    futures::stream::iter(0..backlog)
        .map(|i| {
            let client = client.clone();
            async move { client.submit(&format!("sim-{i}"), "sim").await }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4 * agents)
        .build()
        .expect("client");
    let mut registered = Vec::new();
    for i in 0..agents {
        let reply: Value = http
            .post(format!("{}/agent/v1/agents", client.url))
            .bearer_auth(agent_token)
            .json(&json!({"name": format!("sim-{i}"), "hostname": "sim", "pid": i, "slots": 1, "cpus": 8, "memory_mib": 16384}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("welcome");
        registered.push(Arc::new(Agent {
            http: http.clone(),
            url: client.url.clone(),
            token: agent_token.to_owned(),
            id: reply["agent_id"].as_i64().expect("agent id"),
        }));
    }
    eprintln!("{agents} agents registered; running for {seconds} s");
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let finished = Arc::new(AtomicU64::new(0));
    let beats = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(pid);
    let bench_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for each in &registered {
        let (agent, latencies, finished_count) = (
            Arc::clone(each),
            Arc::clone(&latencies),
            Arc::clone(&finished),
        );
        let running = Arc::new(std::sync::Mutex::new(None::<i64>));
        let held = Arc::clone(&running);
        tasks.spawn(async move {
            // Spread the start so the agents do not move in lockstep.
            tokio::time::sleep(Duration::from_millis(agent.id as u64 * 7 % task_ms.max(1))).await;
            // Like a real agent slot: the previous task's report rides on the next lease,
            // which starts the task it hands out.
            let mut finished: Option<i64> = None;
            while Instant::now() < until {
                let mut ask = json!({"start_as": "sim"});
                if let Some(id) = finished {
                    ask["finished"] =
                        json!({"assignment_id": id, "report": {"outcome": "succeeded"}});
                }
                let t = Instant::now();
                let reply = agent.post("/lease?wait_ms=1000", ask).await;
                let elapsed = t.elapsed().as_secs_f64() * 1000.0;
                if finished.take().is_some() {
                    finished_count.fetch_add(1, Ordering::Relaxed);
                    *held.lock().expect("running") = None;
                }
                if reply.status() != 200 {
                    continue;
                }
                latencies.lock().await.push(elapsed);
                let lease: Value = reply.json().await.expect("assignment");
                let id = lease["assignment_id"].as_i64().expect("id");
                assert_eq!(lease["started"], true, "{lease}");
                *held.lock().expect("running") = Some(id);
                tokio::time::sleep(Duration::from_millis(task_ms)).await;
                finished = Some(id);
            }
        });
        let (agent, beats) = (Arc::clone(each), Arc::clone(&beats));
        tasks.spawn(async move {
            while Instant::now() < until {
                let ids: Vec<i64> = running.lock().expect("running").iter().copied().collect();
                agent
                    .post("/heartbeat?wait_ms=1000", json!({"running": ids}))
                    .await;
                beats.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu_before) / wall;
    let bench_cpu = (cpu_seconds(std::process::id()) - bench_before) / wall;
    let mut lat = latencies.lock().await.clone();
    println!(
        "## {agents} simulated agents against one server ({seconds} s, tasks of {task_ms} ms)\n"
    );
    println!("| metric | value |\n|---|---|");
    println!(
        "| lease latency p50 / p99 / max (work waiting) | {:.1} / {:.1} / {:.1} ms |",
        percentile(&mut lat, 50.0),
        percentile(&mut lat, 99.0),
        lat.iter().copied().fold(0.0, f64::max)
    );
    println!("| leases | {} |", lat.len());
    println!(
        "| tasks finished per second | {:.0} |",
        finished.load(Ordering::Relaxed) as f64 / wall
    );
    println!(
        "| heartbeats per second | {:.0} |",
        beats.load(Ordering::Relaxed) as f64 / wall
    );
    println!("| server CPU, cores (user + system) | {cpu:.2} |");
    println!("| the simulated agents' own CPU (this benchmark), cores | {bench_cpu:.2} |\n");
}
