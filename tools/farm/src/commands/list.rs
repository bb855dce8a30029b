//! `farm list`: jobs, optionally filtered.

use std::process::ExitCode;

use farm_core::{JobFilter, Result};

use super::Context;
use crate::output::{self, Output, print_json};

/// `farm list` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only jobs in this state (repeat for several; any case): Waiting, Running, Completed,
    /// Cancelled, Failed.
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
    /// Show at most this many jobs (the newest).
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
}

/// Lists the jobs, newest first (as the queue's web page does).
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
    // Ids that are numbers compare as numbers (job 10 is newer than job 9).
    let id_key = |j: &farm_core::Job| (j.id.as_str().parse::<u64>().ok(), j.id.clone());
    jobs.sort_by(|a, b| {
        b.submit_time
            .cmp(&a.submit_time)
            .then_with(|| id_key(b).cmp(&id_key(a)))
    });
    jobs.truncate(args.limit.unwrap_or(usize::MAX));
    match output {
        Output::Json => print_json(&serde_json::json!({ "jobs": jobs })),
        Output::Text => print!("{}", output::job_table(&jobs)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A state in any case (`failed`, `FAILED`, `Failed`).
fn parse_state(s: &str) -> Result<farm_core::JobState, String> {
    farm_core::JobState::ALL
        .into_iter()
        .find(|state| state.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            s.parse::<farm_core::JobState>()
                .map_err(|e| e.to_string())
                .err()
                .unwrap_or_default()
        })
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
