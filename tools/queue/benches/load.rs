//! Load and latency benchmark of the local queue: a real `farm queue serve` process
//! with real agent processes, driven over HTTP like any client.
//!
//! Measures, with trivial jobs (`true`):
//! - submit -> running latency on an idle queue (the server's own submit and start times);
//! - end-to-end throughput of N jobs with the configured agents, and the latency under that
//!   backlog;
//! - server memory once it holds the given number of finished jobs;
//! - list latency at that size (first page, filters, delta polling, a deep cursor).
//!
//! With `--mode scale`: one 100,000-frame job against 100,000 one-frame jobs in the same
//! run (per-task cost must not grow with the job), and tasks per second against the
//! fork+exec limit measured in the same run. With `--mode agents`: 1,000 simulated agents
//! (no processes) against one server, lease latency and server CPU.
//!
//! Prints a Markdown report (the figures in `docs/performance.md` come from it).
//! Build the server with `cargo build --release -p farm`, then run
//! `cargo bench -p farm-queue --bench load -- --jobs 5000 --memory-jobs 100000`,
//! `cargo bench -p farm-queue --bench load -- --mode scale --agents 2 --agent-slots 4`, and
//! `cargo bench -p farm-queue --bench load -- --mode agents` (`--quick` for smaller runs).

#[path = "load/agents.rs"]
mod agents;
#[path = "load/scale.rs"]
mod scale;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "farm-queue-load",
    about = "Benchmark the local queue end to end"
)]
struct Args {
    /// What to measure: `full` (latency, throughput, memory, lists), `scale` (one big job
    /// vs many small ones, against the fork+exec limit), `agents` (simulated agents).
    #[arg(long, default_value = "full")]
    mode: String,
    /// Smaller runs: 10,000 frames in `scale`, 10 s in `agents`.
    #[arg(long)]
    quick: bool,
    /// Frames of the big job, and number of one-frame jobs, in `scale`.
    #[arg(long, default_value_t = 100_000)]
    frames: usize,
    /// Tasks each local agent runs at once.
    #[arg(long, default_value_t = 1)]
    agent_slots: u32,
    /// Simulated agents in `agents`.
    #[arg(long, default_value_t = 1000)]
    sim_agents: usize,
    /// How long the simulated agents run, in seconds.
    #[arg(long, default_value_t = 30)]
    sim_seconds: u64,
    /// How long a simulated task "runs", in ms.
    #[arg(long, default_value_t = 2000)]
    sim_task_ms: u64,
    /// Jobs for the throughput run.
    #[arg(long, default_value_t = 5000)]
    jobs: usize,
    /// Local agents.
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// Sequential jobs for the idle-queue latency.
    #[arg(long, default_value_t = 300)]
    latency_jobs: usize,
    /// Finished jobs the queue holds when memory and list latency are measured (0: skip).
    #[arg(long, default_value_t = 100_000)]
    memory_jobs: usize,
    /// Submissions in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Samples per list query.
    #[arg(long, default_value_t = 50)]
    list_samples: usize,
    /// The `farm` binary (default: the one in this benchmark's target directory).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Extra arguments for `queue serve` (e.g. `--durability full`).
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn submit(&self, name: &str, tag: &str) -> Value {
        let body = json!({"name": name, "commands": [["true"]], "tags": [tag]});
        self.submit_body(&body).await
    }

    async fn submit_body(&self, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("submit");
        assert!(
            response.status().is_success(),
            "submit failed: {}",
            response.status()
        );
        response.json().await.expect("job json")
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    /// Waits until no job with `tag` is Waiting or Running.
    /// Waits until no job is Waiting or Running. Only one batch (`tag`) runs at a time, so
    /// the query needs no tag filter: by state alone it reads one index entry, where with
    /// the tag it would walk all of the tag's jobs, a cost of the benchmark that grows with
    /// the batch.
    async fn drain(&self, tag: &str) {
        loop {
            let page = self
                .get("/v1/jobs?state=Waiting&state=Running&limit=1")
                .await;
            match page["jobs"].as_array().and_then(|j| j.first()) {
                None => return,
                Some(job) => assert!(
                    job["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == tag)),
                    "a job of another batch is still running: {job}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `start_time - submit_time` of every job with `tag`, in ms.
    async fn latencies(&self, tag: &str) -> Vec<f64> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!("/v1/jobs?tag={tag}&limit=1000{cursor}"))
                .await;
            for job in page["jobs"].as_array().into_iter().flatten() {
                if let (Some(s), Some(r)) =
                    (job["submit_time"].as_i64(), job["start_time"].as_i64())
                {
                    out.push((r - s) as f64);
                }
                assert_eq!(job["state"], "Completed", "{job}");
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => return out,
            }
        }
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn start_server(args: &Args) -> (Server, String) {
    // A benchmark runs from target/<profile>/deps/, the `farm` binary is in target/<profile>/.
    let bin = args.server_bin.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("exe");
        let profile = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir");
        profile.join("farm")
    });
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --release -p farm) or pass --server-bin",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("queue");
    let mut child = Command::new(&bin)
        .args([
            "queue",
            "serve",
            "--port",
            "0",
            "--agents",
            &if args.mode == "agents" {
                0
            } else {
                args.agents
            }
            .to_string(),
            "--agent-slots",
            &args.agent_slots.to_string(),
            "--data-root",
        ])
        .arg(&root)
        .args(&args.serve_arg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server output");
    let url = line.trim().rsplit(' ').next().expect("url").to_owned();
    let token = std::fs::read_to_string(root.join("api.token"))
        .expect("api token")
        .trim()
        .to_owned();
    (
        Server {
            child,
            url,
            _dir: dir,
        },
        token,
    )
}

async fn run_batch(client: &Client, count: usize, concurrency: usize, tag: &str) -> Duration {
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            let tag = tag.to_owned();
            async move { client.submit(&format!("{tag}-{i}"), &tag).await }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    client.drain(tag).await;
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let (server, token) = start_server(&args);
    let pid = server.child.id();
    let client = Client {
        http: reqwest::Client::new(),
        url: server.url.clone(),
        token,
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# farm-queue load benchmark\n\nmachine: {cores} cores ({cpu}); {} local agents of {} slots; server args {:?}\n",
        args.agents, args.agent_slots, args.serve_arg
    );
    match args.mode.as_str() {
        "scale" => {
            run_batch(&client, 20, 4, "warmup").await;
            let frames = if args.quick { 10_000 } else { args.frames };
            let agents = format!("{} agents of {} slots", args.agents, args.agent_slots);
            scale::run(&client, pid, frames, args.concurrency, &agents).await;
            return;
        }
        "agents" => {
            let token = std::fs::read_to_string(server._dir.path().join("queue/agent.token"))
                .expect("agent token");
            let seconds = if args.quick { 10 } else { args.sim_seconds };
            agents::run(
                &client,
                token.trim(),
                pid,
                args.sim_agents,
                seconds,
                args.sim_task_ms,
            )
            .await;
            return;
        }
        _ => {}
    }

    // Warm up: agents registered, caches hot.
    run_batch(&client, 20, 4, "warmup").await;

    // Idle queue: one job at a time.
    let mut submit_ms = Vec::new();
    for i in 0..args.latency_jobs {
        let t = Instant::now();
        let job = client.submit(&format!("latency-{i}"), "latency").await;
        submit_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let id = job["id"].as_str().expect("id").to_owned();
        loop {
            let j = client.get(&format!("/v1/jobs/{id}")).await;
            if j["state"] == "Completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut idle = client.latencies("latency").await;
    println!("## Idle queue ({} sequential jobs)\n", args.latency_jobs);
    println!("| metric | p50 | p99 | max |\n|---|---|---|---|");
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "| submit -> running (server clock, ms) | {:.0} | {:.0} | {:.0} |",
        percentile(&mut idle, 50.0),
        percentile(&mut idle, 99.0),
        max(&idle)
    );
    println!(
        "| submit request round trip (client, ms) | {:.2} | {:.2} | {:.2} |\n",
        percentile(&mut submit_ms, 50.0),
        percentile(&mut submit_ms, 99.0),
        max(&submit_ms)
    );

    // Throughput with a backlog.
    let elapsed = run_batch(&client, args.jobs, args.concurrency, "throughput").await;
    let mut loaded = client.latencies("throughput").await;
    let rate = args.jobs as f64 / elapsed.as_secs_f64();
    println!(
        "## Throughput ({} jobs submitted {} at a time)\n",
        args.jobs, args.concurrency
    );
    println!("| metric | value |\n|---|---|");
    println!(
        "| wall time, first submit to last job finished | {:.2} s |",
        elapsed.as_secs_f64()
    );
    println!("| jobs per second | {rate:.0} |");
    println!("| jobs per minute | {:.0} |", rate * 60.0);
    println!(
        "| submit -> running under backlog p50 / p99 (ms) | {:.0} / {:.0} |\n",
        percentile(&mut loaded, 50.0),
        percentile(&mut loaded, 99.0)
    );

    if args.memory_jobs == 0 {
        return;
    }
    let done = args.jobs + args.latency_jobs + 20;
    // The kernel updates VmHWM lazily and its RSS counters are approximate, so VmHWM can
    // read lower than an earlier VmRSS sample of the same process: the peak reported is the
    // largest of every reading.
    let (rss_before, hwm_before) = rss_kib(pid);
    let mut peak = rss_before.max(hwm_before);
    let mut remaining = args.memory_jobs.saturating_sub(done);
    let fill_started = Instant::now();
    let mut batch: usize = 0;
    while remaining > 0 {
        let n = remaining.min(10_000);
        run_batch(&client, n, args.concurrency, &format!("fill{batch}")).await;
        remaining -= n;
        batch += 1;
        let (rss, hwm) = rss_kib(pid);
        peak = peak.max(rss).max(hwm);
        eprintln!("{} jobs left to fill", remaining);
    }
    let fill = fill_started.elapsed();
    let total = done.max(args.memory_jobs);
    let (rss, hwm) = rss_kib(pid);
    let peak = peak.max(rss).max(hwm);
    let db = std::fs::metadata(server._dir.path().join("queue/queue.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(server._dir.path().join("queue/queue.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("## Memory with {total} finished jobs\n");
    println!("| metric | value |\n|---|---|");
    println!(
        "| server RSS after the throughput run | {:.1} MiB |",
        rss_before as f64 / 1024.0
    );
    println!(
        "| server RSS holding {total} finished jobs | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    println!(
        "| server peak RSS (largest VmRSS or VmHWM read) | {:.1} MiB |",
        peak as f64 / 1024.0
    );
    println!(
        "| database on disk | {:.1} MiB |",
        db as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| filling rate ({} jobs end to end) | {:.0} jobs/s |\n",
        total - done,
        (total - done) as f64 / fill.as_secs_f64().max(0.001)
    );

    // List latency at that size.
    let recent = client
        .get("/v1/jobs?limit=1&state=Completed&tag=fill0")
        .await;
    let mid_cursor = {
        let page = client
            .get(&format!("/v1/jobs?limit=1000&tag=fill{}", batch / 2))
            .await;
        page["next_cursor"].as_str().unwrap_or_default().to_owned()
    };
    let updated = client
        .get(&format!(
            "/v1/jobs?limit=1&tag=fill{}",
            batch.saturating_sub(1)
        ))
        .await["jobs"][0]["updated_at"]
        .as_i64()
        .unwrap_or(0);
    let _ = recent;
    let queries = [
        ("first page, 100 jobs", "/v1/jobs?limit=100".to_owned()),
        ("first page, 1000 jobs", "/v1/jobs?limit=1000".to_owned()),
        (
            "state=Failed (none match)",
            "/v1/jobs?state=Failed&limit=100".to_owned(),
        ),
        (
            "state=Waiting&state=Running (none)",
            "/v1/jobs?state=Waiting&state=Running&limit=100".to_owned(),
        ),
        ("exact name", "/v1/jobs?name=throughput-17".to_owned()),
        (
            "tag of 300 jobs",
            "/v1/jobs?tag=latency&limit=1000".to_owned(),
        ),
        (
            "delta poll, updated_since of the last batch, 100",
            format!("/v1/jobs?updated_since={updated}&limit=100"),
        ),
        (
            "page from a deep cursor, 100",
            format!("/v1/jobs?limit=100&cursor={mid_cursor}"),
        ),
        ("one job by id", "/v1/jobs/12345".to_owned()),
    ];
    println!(
        "## List latency with {total} jobs ({} samples each, client round trip)\n",
        args.list_samples
    );
    println!("| query | p50 ms | p99 ms |\n|---|---|---|");
    for (what, path) in queries {
        let mut samples = Vec::new();
        for _ in 0..args.list_samples {
            let t = Instant::now();
            client.get(&path).await;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| {what} | {:.2} | {:.2} |",
            percentile(&mut samples, 50.0),
            percentile(&mut samples, 99.0)
        );
    }
    println!();
}
