//! `--mode scale`: per-task cost against job size, and throughput against the machine's
//! fork+exec limit, in one run: the same N trivial frames as one N-frame job and as N
//! one-frame jobs, and how fast this machine can start `true` at all.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::Client;

/// `true` started `count` times from `threads` threads at once: processes per second, the
/// ceiling for any queue running trivial tasks on this machine.
pub fn fork_exec_limit(count: usize, threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..count / threads {
                    let status = std::process::Command::new("true")
                        .status()
                        .expect("true runs");
                    assert!(status.success());
                }
            });
        }
    });
    (count / threads * threads) as f64 / started.elapsed().as_secs_f64()
}

/// How one big job went: frames per second from submit to Completed, and for each tenth
/// of its frames the rate and the server's CPU per frame (flat when a task costs the same
/// however far the job is).
pub struct BigJob {
    pub rate: f64,
    pub tenths: Vec<(f64, f64)>,
}

/// One job of `frames` frames (chunk 1), its progress read every 50 ms.
pub async fn one_big_job(client: &Client, server: u32, frames: usize) -> BigJob {
    let body = json!({"name": "big", "commands": [["true"]], "frames": format!("1-{frames}"), "tags": ["big"]});
    let started = Instant::now();
    let job = client.submit_body(&body).await;
    let id = job["id"].as_str().expect("id").to_owned();
    let step = (frames / 10).max(1) as f64;
    let mut tenths = Vec::new();
    let mut last = (Instant::now(), 0.0, super::agents::cpu_seconds(server));
    loop {
        let j = client.get(&format!("/v1/jobs/{id}")).await;
        let done = j["progress"]["frames_done"].as_f64().unwrap_or(0.0);
        let completed = j["state"] == "Completed";
        if done >= last.1 + step || (completed && done > last.1) {
            let (now, cpu) = (Instant::now(), super::agents::cpu_seconds(server));
            let span = done - last.1;
            tenths.push((
                span / now.duration_since(last.0).as_secs_f64().max(1e-9),
                (cpu - last.2) * 1000.0 / span,
            ));
            last = (now, done, cpu);
        }
        match j["state"].as_str() {
            Some("Completed") => break,
            Some("Failed" | "Cancelled") => panic!("the big job ended {j}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    BigJob {
        rate: frames as f64 / started.elapsed().as_secs_f64(),
        tenths,
    }
}

/// `count` one-frame jobs submitted `concurrency` at a time: frames (jobs) per second,
/// first submit to the last job finished.
pub async fn many_small_jobs(client: &Client, count: usize, concurrency: usize) -> f64 {
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move { client.submit(&format!("small-{i}"), "small").await }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    client.drain("small").await;
    count as f64 / started.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) used so far by the server, its agents (its child
/// processes, whose finished tasks' time is in their `cutime`), and this benchmark.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    agents: f64,
    bench: f64,
}

impl Cpu {
    fn now(server: u32) -> Cpu {
        // Each thread lists the children it started.
        let children: Vec<u32> = std::fs::read_dir(format!("/proc/{server}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        Cpu {
            server: super::agents::cpu_seconds(server),
            agents: children
                .iter()
                .map(|p| super::agents::proc_cpu_seconds(*p, true))
                .sum(),
            bench: super::agents::cpu_seconds(std::process::id()),
        }
    }

    /// Milliseconds of CPU per frame since `before`.
    fn per_frame(self, before: Cpu, frames: usize) -> String {
        let ms = |a: f64, b: f64| (a - b) * 1000.0 / frames as f64;
        format!(
            "{:.2} / {:.2} / {:.2}",
            ms(self.server, before.server),
            ms(self.agents, before.agents),
            ms(self.bench, before.bench)
        )
    }
}

/// Runs the scale section and prints its tables.
pub async fn run(client: &Client, server: u32, frames: usize, concurrency: usize, agents: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fork = fork_exec_limit(4000, cores);
    println!("## Per-task cost and throughput ({agents})\n");
    let at_start = Cpu::now(server);
    let big_job = one_big_job(client, server, frames).await;
    let big = big_job.rate;
    let after_big = Cpu::now(server);
    let small = many_small_jobs(client, frames, concurrency).await;
    let after_small = Cpu::now(server);
    let fork_after = fork_exec_limit(4000, cores);
    println!("| measured in the same run | value |\n|---|---|");
    println!("| one {frames}-frame job, frames per second | {big:.0} |");
    let list =
        |f: fn(&(f64, f64)) -> String| big_job.tenths.iter().map(f).collect::<Vec<_>>().join(", ");
    println!(
        "| the same job, frames per second by tenth of its frames | {} |",
        list(|t| format!("{:.0}", t.0))
    );
    println!(
        "| the same job, server CPU ms per frame by tenth | {} |",
        list(|t| format!("{:.2}", t.1))
    );
    println!("| {frames} one-frame jobs, frames per second | {small:.0} |");
    println!(
        "| ratio, one big job / many small jobs | {:.2} |",
        big / small
    );
    println!(
        "| fork+exec limit (`true` from {cores} threads), before / after, per second | {fork:.0} / {fork_after:.0} |"
    );
    println!(
        "| trivial tasks per second / fork+exec limit | {:.2} |",
        big.max(small) / fork.max(fork_after)
    );
    println!(
        "| CPU ms per frame, server / agents (with their tasks) / benchmark client: one big job | {} |",
        after_big.per_frame(at_start, frames)
    );
    println!(
        "| CPU ms per frame, server / agents (with their tasks) / benchmark client: one-frame jobs | {} |\n",
        after_small.per_frame(after_big, frames)
    );
}
