//! `farm submit`: submit requests, say what was submitted (or only the ids, with --quiet),
//! optionally wait for the jobs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use farm_core::{
    FarmError, FarmPlugin, FarmPluginExt, Job, JobId, JobRequest, JobState, Result, WaitOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Context, duration, load_request, validate};
use crate::output::{self, Output, exit, plural, print_json};

/// `farm submit` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Request files (YAML or JSON; `-` reads stdin).
    #[arg(required = true)]
    pub requests: Vec<PathBuf>,
    /// Wait until the jobs finish, showing progress; exit 10 if one failed, 11 if cancelled.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// Ask the farm first (`farm validate --farm`): submit nothing unless it could run every
    /// request. A refusal exits 4 naming the field, in the scheduler's words; a farm that
    /// cannot check exits 5.
    #[arg(long)]
    pub check: bool,
    /// Give up waiting after this long (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration)]
    pub timeout: std::time::Duration,
    /// Print only the job ids, one a line (for scripts).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Submits the requests in order, then waits for them if asked.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let (farm_name, farm) = ctx.named_farm()?;
    let output = ctx.output();
    let requests: Vec<JobRequest> = args
        .requests
        .iter()
        .map(|p| load_request(p))
        .collect::<Result<_>>()?;
    if args.check {
        check_all(farm.as_ref(), &requests, output).await?;
    }
    let mut ids = Vec::new();
    for request in &requests {
        let id = match farm.submit(request).await {
            Ok(id) => id,
            // Jobs already submitted exist: never lose their ids because a later one failed.
            Err(err) if !ids.is_empty() => {
                if output == Output::Json {
                    // One JSON document: the error, with the ids that exist.
                    let mut doc = output::error_json(&err);
                    doc["submitted"] = json!(ids);
                    println!("{doc}");
                    return Ok(ExitCode::from(output::exit_code(&err)));
                } else {
                    eprintln!(
                        "farm: submitted {} before the error: {}",
                        ids.len(),
                        ids.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        if output == Output::Text {
            let what = describe(request, &id, &farm_name);
            match (args.quiet, args.wait) {
                (true, _) => println!("{id}"),
                (false, true) => eprintln!("{what}"),
                (false, false) => println!("{what}"),
            }
        }
        ids.push(id);
    }
    if !args.wait {
        if output == Output::Json {
            let mut jobs = Vec::new();
            for id in &ids {
                jobs.push(farm.job(id).await?);
            }
            print_json(&json!({ "jobs": jobs }));
        } else if !args.quiet {
            println!("{}", hints(&ids, &farm_name, "watch"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut finished = Vec::new();
    for (request, id) in requests.iter().zip(&ids) {
        let wait = wait_with_progress(farm.as_ref(), id, request, args.timeout, output);
        tokio::select! {
            job = wait => finished.push(job?),
            // Waiting ends here, the jobs do not: say so, and how to stop them.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\nfarm: stopped waiting; the jobs keep running on farm {farm_name}.\n{}", hints(&ids, &farm_name, "follow"));
                if output == Output::Json {
                    let err = farm_core::FarmError::unavailable("interrupted while waiting; the jobs keep running");
                    let mut doc = output::error_json(&err);
                    doc["error"]["kind"] = json!("interrupted");
                    doc["submitted"] = json!(ids);
                    println!("{doc}");
                }
                return Ok(ExitCode::from(exit::INTERRUPTED));
            }
        }
    }
    if output == Output::Json {
        print_json(&json!({ "jobs": finished }));
    } else {
        for job in &finished {
            let log = job
                .render_log_filename
                .as_deref()
                .map(|l| format!("; log: {l}"))
                .unwrap_or_default();
            let reason = job
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            println!("job {} {}{reason}{log}", job.id, job.state);
        }
    }
    let code = if finished.iter().any(|j| j.state == JobState::Failed) {
        exit::JOB_FAILED
    } else if finished.iter().any(|j| j.state == JobState::Cancelled) {
        exit::JOB_CANCELLED
    } else {
        0
    };
    Ok(ExitCode::from(code))
}

/// `submitted job 7 (render-demo, 8 frames) to farm local`.
fn describe(request: &JobRequest, id: &JobId, farm: &str) -> String {
    let frames = match request.frames {
        Some(_) => plural(request.frame_count(), "frame"),
        None => "no frames".to_owned(),
    };
    format!(
        "submitted job {id} ({}, {frames}) to farm {farm}",
        request.name
    )
}

/// The commands that follow and stop the jobs.
fn hints(ids: &[JobId], farm: &str, verb: &str) -> String {
    let all = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let first = ids.first().map(ToString::to_string).unwrap_or_default();
    format!(
        "  {verb} it: farm log -f {first} --farm {farm}   (or: farm status {all} --farm {farm})\n  stop it:  farm stop {all} --farm {farm}"
    )
}

/// `, about 1m 5s left` from the frames done since the job started running.
fn eta(running_since: Option<Instant>, done: u64, total: u64) -> String {
    match running_since {
        Some(since) if done > 0 && done < total => {
            let left = since.elapsed().mul_f64((total - done) as f64 / done as f64);
            let left = Duration::from_secs(left.as_secs().max(1));
            format!(", about {} left", humantime::format_duration(left))
        }
        _ => String::new(),
    }
}

/// Asks the farm about every request before any is submitted; the first refusal is the
/// error. What the farm said goes to stderr, so stdout keeps only the ids.
async fn check_all(farm: &dyn FarmPlugin, requests: &[JobRequest], output: Output) -> Result<()> {
    for request in requests {
        match validate::ask(farm, request).await? {
            validate::FarmAnswer::Accepted(report) => {
                if output == Output::Text {
                    eprintln!(
                        "checked {}: {}",
                        request.name,
                        validate::describe(&report).join("; ")
                    );
                }
            }
            validate::FarmAnswer::Refused { field, problem } => {
                return Err(FarmError::invalid(
                    field,
                    format!(
                        "{problem} (the farm refused {}; nothing was submitted)",
                        request.name
                    ),
                ));
            }
            validate::FarmAnswer::Unsupported(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits for a job with a progress bar (frames done / total) on a terminal, or a line per
/// state change otherwise.
async fn wait_with_progress(
    farm: &dyn FarmPlugin,
    id: &JobId,
    request: &JobRequest,
    timeout: Duration,
    output: Output,
) -> Result<Job> {
    let started = Instant::now();
    let total = request.frame_count() as u64;
    let interactive = std::io::stderr().is_terminal() && output == Output::Text;
    let bar = if interactive {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} job {prefix} [{bar:30}] {pos}/{len} frames  {msg}  {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let mut last_state: Option<JobState> = None;
    let mut last_done: Option<u64> = None;
    let mut running_since: Option<Instant> = None;
    let options = WaitOptions {
        timeout,
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(3),
    };
    let mut on_update = |job: &Job| {
        if job.state == JobState::Running && running_since.is_none() {
            running_since = Some(Instant::now());
        }
        let done = job.progress.map(|p| p.frames_done);
        let left = job
            .progress
            .map(|p| eta(running_since, p.frames_done, p.frames_total))
            .unwrap_or_default();
        if let Some(bar) = &bar {
            if let Some(p) = job.progress {
                bar.set_length(p.frames_total.max(1));
                bar.set_position(p.frames_done);
            }
            bar.set_message(format!("{}{left}", job.state));
        } else if output == Output::Text && (last_state != Some(job.state) || last_done != done) {
            let frames = job
                .progress
                .map(|p| format!(" ({}/{} frames)", p.frames_done, p.frames_total))
                .unwrap_or_default();
            eprintln!(
                "job {} {}{frames} after {:.1}s{left}",
                job.id,
                job.state,
                started.elapsed().as_secs_f64()
            );
        }
        last_state = Some(job.state);
        last_done = done;
    };
    let result = farm.wait_until_finished(id, &options, &mut on_update).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}
