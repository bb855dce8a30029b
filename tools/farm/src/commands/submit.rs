//! `farm submit`: submit requests, print the job ids, optionally wait for the jobs.

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
use crate::output::{self, Output, exit, print_json};

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
}

/// Submits the requests in order, then waits for them if asked.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
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
            if args.wait {
                eprintln!("submitted {} as job {id}", request.name);
            } else {
                println!("{id}");
            }
        }
        ids.push(id);
    }
    if !args.wait {
        if output == Output::Json {
            print_json(&json!({ "ids": ids }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut finished = Vec::new();
    for (request, id) in requests.iter().zip(&ids) {
        finished.push(wait_with_progress(farm.as_ref(), id, request, args.timeout, output).await?);
    }
    if output == Output::Json {
        print_json(&finished);
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
    let options = WaitOptions {
        timeout,
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(3),
    };
    let mut on_update = |job: &Job| {
        if let Some(bar) = &bar {
            if let Some(p) = job.progress {
                bar.set_length(p.frames_total.max(1));
                bar.set_position(p.frames_done);
            }
            bar.set_message(job.state.to_string());
        } else if output == Output::Text && last_state != Some(job.state) {
            let frames = job
                .progress
                .map(|p| format!(" ({}/{} frames)", p.frames_done, p.frames_total))
                .unwrap_or_default();
            eprintln!(
                "job {} {}{frames} after {:.1}s",
                job.id,
                job.state,
                started.elapsed().as_secs_f64()
            );
        }
        last_state = Some(job.state);
    };
    let result = farm.wait_until_finished(id, &options, &mut on_update).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}
