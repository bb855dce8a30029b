//! Render and poll throughput: sbatch scripts per second for a typical 10-command,
//! 100-frame request, and one status poll over a 10,000-job `squeue --json`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use farm_core::{Command, JobRequest};
use farm_slurm::parse;
use farm_slurm::render::{self, RenderOptions};

/// Ten renderer steps per frame, frames 1001-1100 in chunks of 5, a few variables.
pub fn typical_request() -> JobRequest {
    let commands = (0..10)
        .map(|i| {
            Command::Argv(vec![
                "/opt/Katana7.0v1/bin/renderboot".into(),
                format!("--step={i}"),
                "--render-context={render_context}".into(),
                "--frame={frame}".into(),
                "--optree=/mnt/render/staging/scene 'v3'.optree".into(),
                format!("--output=/mnt/show/shot010/pass{i}/beauty.{{frame}}.exr"),
            ])
        })
        .collect();
    let mut r = JobRequest::new("shot010_beauty_v003", commands);
    r.frames = Some("1001-1100".parse().unwrap());
    r.chunk_size = 5;
    r.tags = vec!["show:demo".into(), "shot:010".into()];
    r.working_directory = Some("/mnt/show/shot010".into());
    r.log_directory = Some("/mnt/render/logs".into());
    for (k, v) in [
        ("KATANA_ROOT", "/opt/Katana7.0v1"),
        ("FOUNDRY_LICENSE", "4101@license-server"),
        ("SCENE", "shot 010 'hero'"),
    ] {
        r.environment.insert(k.into(), v.into());
    }
    r.resources.cpus = Some(8);
    r.resources.memory = Some(farm_core::MemorySize::from_mib(32 * 1024));
    r.resources.time_limit = Some(farm_core::TimeLimit::from_secs(7200));
    r
}

/// A `squeue --json` document of `n` jobs built from the recorded job shape: a mix of
/// states, arrays and our comments.
pub fn squeue_json(n: usize) -> String {
    let recorded = include_str!("../../../fixtures/slurm/cli/squeue-finished.json");
    let mut doc: serde_json::Value = serde_json::from_str(recorded).unwrap();
    let template = doc["jobs"][0].clone();
    let states = [
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "COMPLETING",
    ];
    let jobs: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut j = template.clone();
            let master = 1000 + (i / 4) as u64;
            j["job_id"] = (1000 + i as u64).into();
            j["array_job_id"] = master.into();
            j["array_task_id"] = ((i % 4) as u64).into();
            j["name"] = format!("shot{:03}_beauty_v{}", i % 500, i % 7).into();
            j["job_state"] = states[i % states.len()].into();
            j["exit_code"] = (if i % 6 == 3 { 256 } else { 0 }).into();
            j["comment"] = format!("farm=1;ctx=6f1c0d9e-3b0a-4c1e-9d55-{:012x};attempt=1;tasks=4;chunk=5;frames=20;tags=show:demo", master).into();
            j
        })
        .collect();
    doc["jobs"] = jobs.into();
    serde_json::to_string_pretty(&doc).unwrap()
}

/// One poll: parse every record and assemble every job.
pub fn poll(text: &str) -> usize {
    let reply = parse::parse_jobs(text).unwrap();
    let mut by_job: std::collections::BTreeMap<u64, Vec<&parse::TaskRecord>> =
        std::collections::BTreeMap::new();
    for r in &reply.records {
        by_job.entry(r.master).or_default().push(r);
    }
    by_job
        .iter()
        .map(|(id, recs)| {
            parse::assemble(*id, recs, &parse::JobHint::default())
                .job
                .attempt as usize
        })
        .sum()
}

fn benches(c: &mut Criterion) {
    let request = typical_request();
    let options = RenderOptions {
        partition: Some("render".into()),
        array_limit: Some(50),
        ..RenderOptions::default()
    };
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sbatch_10_commands_100_frames", |b| {
        b.iter(|| render::sbatch_script(black_box(&request), &options, 1).unwrap())
    });
    group.finish();

    let text = squeue_json(10_000);
    let mut group = c.benchmark_group("poll");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("squeue_json_10000_jobs", |b| {
        b.iter(|| poll(black_box(&text)))
    });
    group.bench_function("squeue_json_10000_jobs_parse_only", |b| {
        b.iter(|| parse::parse_jobs(black_box(&text)).unwrap().records.len())
    });
    group.finish();
}

criterion_group! {
    name = slurm;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(slurm);
