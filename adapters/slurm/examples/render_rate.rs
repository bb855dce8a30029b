//! Prints how many sbatch scripts per second this machine renders, for the side-by-side
//! comparison with dask-jobqueue (`tools/bench/slurm-vs-dask-jobqueue.sh`).
//!
//! `render_rate [dask|typical|breakdown] [SECONDS]`: `dask` is a job comparable to what
//! `SLURMJob.job_script()` writes (one worker command, CPUs, memory, time limit, partition,
//! account, name); `typical` is a 10-command, 100-frame render. Prints
//! `renders_per_second N` and the script once on stderr. `breakdown` prints how a render of
//! the comparable job divides between `farm_core` (validation, the task program) and this
//! crate.

use std::time::{Duration, Instant};

use farm_core::{Command, JobRequest};
use farm_slurm::render::{self, RenderOptions};

fn dask_like() -> JobRequest {
    let argv = [
        "/usr/bin/python3",
        "-m",
        "distributed.cli.dask_worker",
        "tcp://10.0.0.1:8786",
        "--nthreads",
        "2",
        "--nworkers",
        "4",
        "--memory-limit",
        "7.45GiB",
        "--name",
        "dummy-name",
        "--nanny",
        "--death-timeout",
        "60",
    ];
    let mut r = JobRequest::new(
        "dask-worker",
        vec![Command::Argv(
            argv.iter().map(|s| (*s).to_owned()).collect(),
        )],
    );
    r.resources.cpus = Some(8);
    r.resources.memory = Some(farm_core::MemorySize::from_mib(30 * 1024));
    r.resources.time_limit = Some(farm_core::TimeLimit::from_secs(7200));
    r.log_directory = Some("/mnt/render/logs".into());
    r
}

fn typical() -> JobRequest {
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
    r.working_directory = Some("/mnt/show/shot010".into());
    r.log_directory = Some("/mnt/render/logs".into());
    r.environment
        .insert("SCENE".into(), "shot 010 'hero'".into());
    r
}

fn per_call(seconds: f64, mut f: impl FnMut() -> usize) -> Duration {
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let (mut n, mut sink) = (0u32, 0usize);
    while started.elapsed() < budget {
        for _ in 0..256 {
            sink += f();
        }
        n += 256;
    }
    std::hint::black_box(sink);
    started.elapsed() / n
}

fn breakdown(seconds: f64) {
    let request = dask_like();
    let options = RenderOptions {
        partition: Some("render".into()),
        account: Some("vfx".into()),
        ..RenderOptions::default()
    };
    let validate = per_call(seconds, || {
        std::hint::black_box(&request).validate().map_or(0, |()| 1)
    });
    let body = per_call(seconds, || {
        farm_core::script::render_task_body(
            std::hint::black_box(&request),
            render::CHUNK_INDEX_EXPR,
        )
        .len()
    });
    let total = per_call(seconds, || {
        render::sbatch_script(std::hint::black_box(&request), &options, 1)
            .unwrap()
            .len()
    });
    println!(
        "validate {validate:?}  task body {body:?}  whole render {total:?}  (this crate: {:?})",
        total.saturating_sub(validate + body)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "dask".into());
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    if kind == "breakdown" {
        breakdown(seconds);
        return;
    }
    let request = if kind == "typical" {
        typical()
    } else {
        dask_like()
    };
    let options = RenderOptions {
        partition: Some("render".into()),
        account: Some("vfx".into()),
        ..RenderOptions::default()
    };
    eprintln!("{}", render::sbatch_script(&request, &options, 1).unwrap());
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut bytes = 0usize;
    while started.elapsed() < budget {
        for _ in 0..256 {
            bytes += std::hint::black_box(
                render::sbatch_script(std::hint::black_box(&request), &options, 1).unwrap(),
            )
            .len();
        }
        n += 256;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("renders_per_second {rate:.0}");
    std::hint::black_box(bytes);
}
