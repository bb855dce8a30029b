//! `farm status`: the state and details of jobs; unknown ids are reported after the jobs
//! that exist.

use std::process::ExitCode;

use farm_core::{JobId, Result};

use super::{Context, IdsArgs};
use crate::output::{self, Output};

/// Shows the state and details of jobs.
pub async fn run(args: &IdsArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let mut report = output::Report::new("jobs");
    for id in &args.ids {
        match farm.job(&JobId::new(id.clone())).await {
            Ok(job) => {
                if output == Output::Text {
                    print!("{}", output::job_details(&job));
                }
                report.item(&job);
            }
            Err(err) => report.not_found(output, err)?,
        }
    }
    Ok(report.finish(output))
}
