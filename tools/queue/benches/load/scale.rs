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

/// One job of `frames` frames (chunk 1): frames per second, submit to Completed.
pub async fn one_big_job(client: &Client, frames: usize) -> f64 {
    let body = json!({"name": "big", "commands": [["true"]], "frames": format!("1-{frames}"), "tags": ["big"]});
    let started = Instant::now();
    let job = client.submit_body(&body).await;
    let id = job["id"].as_str().expect("id").to_owned();
    loop {
        let j = client.get(&format!("/v1/jobs/{id}")).await;
        match j["state"].as_str() {
            Some("Completed") => break,
            Some("Failed" | "Cancelled") => panic!("the big job ended {j}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    frames as f64 / started.elapsed().as_secs_f64()
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

/// Runs the scale section and prints its tables.
pub async fn run(client: &Client, frames: usize, concurrency: usize, agents: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fork = fork_exec_limit(4000, cores);
    println!("## Per-task cost and throughput ({agents})\n");
    let big = one_big_job(client, frames).await;
    let small = many_small_jobs(client, frames, concurrency).await;
    let fork_after = fork_exec_limit(4000, cores);
    println!("| measured in the same run | value |\n|---|---|");
    println!("| one {frames}-frame job, frames per second | {big:.0} |");
    println!("| {frames} one-frame jobs, frames per second | {small:.0} |");
    println!(
        "| ratio, one big job / many small jobs | {:.2} |",
        big / small
    );
    println!(
        "| fork+exec limit (`true` from {cores} threads), before / after, per second | {fork:.0} / {fork_after:.0} |"
    );
    println!(
        "| trivial tasks per second / fork+exec limit | {:.2} |\n",
        big.max(small) / fork.max(fork_after)
    );
}
