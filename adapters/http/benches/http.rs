//! Throughput of the adapter against a local emulation of our protocol (wiremock on
//! loopback), and what the adapter adds to each call over a bare HTTP client.
//!
//! `cargo bench -p farm-http` (small samples: a couple of seconds per benchmark).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use farm_core::{Command, FarmPlugin, JobId, JobRequest};
use farm_http::{HttpFarm, HttpSettings};
use support::{Dialect, Emulation};

fn request() -> JobRequest {
    let mut r = JobRequest::new(
        "bench",
        vec![Command::Argv(vec!["true".into(), "{frame}".into()])],
    );
    r.frames = Some("1-100".parse().unwrap());
    r.chunk_size = 10;
    r.environment
        .insert("SCENE".into(), "shot 010 'hero'".into());
    r
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(Emulation::start(Dialect::FarmV1, Some("bench-token")));
    // Jobs stay queued: the benchmark measures the API, not the shell.
    emu.engine.run_jobs.store(false, Ordering::Relaxed);
    let farm = rt.block_on(async {
        HttpFarm::new(HttpSettings::new(emu.url()).with_token("bench-token")).unwrap()
    });
    let id: JobId = rt.block_on(farm.submit(&request())).unwrap();
    let raw = reqwest::Client::new();
    let job_url = format!("{}/v1/jobs/{}", emu.url(), id);

    let mut group = c.benchmark_group("http");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));

    group.bench_function("submit", |b| {
        b.iter(|| rt.block_on(farm.submit(&request())).unwrap());
    });
    group.bench_function("poll (job)", |b| {
        b.iter(|| rt.block_on(farm.job(&id)).unwrap());
    });
    group.bench_function("bare reqwest GET of the same record", |b| {
        b.iter(|| {
            rt.block_on(async {
                let body = raw
                    .get(&job_url)
                    .bearer_auth("bench-token")
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(body.contains("\"id\""));
            })
        });
    });
    group.bench_function("render (offline)", |b| {
        let r = request();
        b.iter(|| rt.block_on(farm.render(&r)).unwrap());
    });
    group.finish();
}

criterion_group!(http, benches);
criterion_main!(http);
