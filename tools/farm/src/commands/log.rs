//! `farm log`: a job's render log; --follow keeps printing until the job ends, as `tail -f`
//! does, and then exits as `submit --wait` does (10 Failed, 11 Cancelled).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use farm_core::{FarmError, JobId, JobState, Result};
use serde_json::json;

use super::Context;
use crate::output::{Output, exit, print_json};

/// `farm log` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job id.
    pub id: String,
    /// Keep printing new output until the job ends (as `tail -f`); then exit 10 if it
    /// Failed, 11 if it was Cancelled.
    #[arg(long, short = 'f', short_alias = 'F')]
    pub follow: bool,
    /// Start at this byte offset.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Only print the log's path (Katana's render log filename).
    #[arg(long)]
    pub path: bool,
}

/// Prints the log (or its path).
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let id = JobId::new(args.id.clone());
    if args.path {
        let path = farm.render_log_filename(&id).await?;
        match output {
            Output::Json => print_json(&json!({ "id": id, "render_log_filename": path })),
            Output::Text => println!("{}", path.unwrap_or_default()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !farm.capabilities().read_log {
        // Fall back to reading the file the farm names, which must be visible here.
        let path = farm
            .render_log_filename(&id)
            .await?
            .ok_or_else(|| FarmError::unsupported("read_log", farm.adapter()))?;
        let text = std::fs::read(&path)
            .map_err(|e| FarmError::io(format!("cannot read render log {path}"), e))?;
        let from = (args.offset as usize).min(text.len());
        std::io::stdout()
            .write_all(&text[from..])
            .map_err(|e| FarmError::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut offset = args.offset;
    let mut all = String::new();
    let mut idle = Duration::from_millis(200);
    loop {
        let chunk = farm.read_log(&id, offset).await?;
        if !chunk.data.is_empty() {
            if output == Output::Text {
                print!("{}", chunk.data);
                let _ = std::io::stdout().flush();
            } else {
                all.push_str(&chunk.data);
            }
            idle = Duration::from_millis(200);
        }
        offset = chunk.next_offset;
        if !args.follow || chunk.complete {
            // Following ends with the job: say how it ended, as `submit --wait` does.
            let state = match args.follow {
                true => Some(farm.job(&id).await?.state),
                false => None,
            };
            if output == Output::Json {
                print_json(
                    &json!({ "id": id, "data": all, "next_offset": offset, "complete": chunk.complete, "state": state }),
                );
            }
            return Ok(ExitCode::from(match state {
                Some(JobState::Failed) => exit::JOB_FAILED,
                Some(JobState::Cancelled) => exit::JOB_CANCELLED,
                _ => 0,
            }));
        }
        tokio::time::sleep(idle).await;
        idle = (idle * 3 / 2).min(Duration::from_secs(2));
    }
}
