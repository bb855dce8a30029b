//! `farm list`: jobs, optionally filtered.

use std::process::ExitCode;

use farm_core::{JobFilter, Result};

use super::Context;
use crate::output::{self, Output, print_json};

/// `farm list` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only jobs in this state (repeat for several): Waiting, Running, Completed, Cancelled, Failed.
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub states: Vec<farm_core::JobState>,
    /// Only jobs with exactly this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only jobs submitted since: a duration ago (2h, 3d) or a time (2026-11-22T10:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,
}

/// Lists the jobs, oldest first.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let filter = JobFilter {
        states: args.states.clone(),
        name: args.name.clone(),
        tag: args.tag.clone(),
        since: args.since,
    };
    let mut jobs = farm.list_jobs(&filter).await?;
    jobs.sort_by(|a, b| {
        a.submit_time
            .cmp(&b.submit_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    match output {
        Output::Json => print_json(&jobs),
        Output::Text => print!("{}", output::job_table(&jobs)),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_state(s: &str) -> Result<farm_core::JobState, String> {
    s.parse()
        .map_err(|e: farm_core::state::UnknownJobState| e.to_string())
}

fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(farm_core::now_millis() - d.as_millis() as i64);
    }
    humantime::parse_rfc3339_weak(s)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
        .map_err(|_| format!("{s:?} is neither a duration (2h) nor a time (2026-11-22T10:00:00Z)"))
}
