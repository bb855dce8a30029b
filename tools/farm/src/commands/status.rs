//! `farm status`: the state and details of jobs.

use std::process::ExitCode;

use farm_core::{JobId, Result};

use super::{Context, IdsArgs};
use crate::output::{self, Output, print_json};

/// Shows the state and details of jobs.
pub async fn run(args: &IdsArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let mut jobs = Vec::new();
    for id in &args.ids {
        jobs.push(farm.job(&JobId::new(id.clone())).await?);
    }
    match output {
        Output::Json if jobs.len() == 1 => print_json(&jobs[0]),
        Output::Json => print_json(&jobs),
        Output::Text => {
            for job in &jobs {
                print!("{}", output::job_details(job));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
