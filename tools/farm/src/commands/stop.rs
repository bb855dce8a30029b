//! `farm stop`: stop jobs (a finished job is left as it is), saying what happened to each.

use std::process::ExitCode;

use farm_core::{JobId, Result};

use super::{Context, IdsArgs};
use crate::output;

/// Stops jobs; unknown ids are reported after the others are done.
pub async fn run(args: &IdsArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let mut report = output::Report::new("results");
    for id in &args.ids {
        let id = JobId::new(id.clone());
        let before = match farm.job(&id).await {
            Ok(job) => job,
            Err(err) => {
                report.not_found(ctx.output(), err)?;
                continue;
            }
        };
        if before.state.is_terminal() {
            let message = format!("job {id} already {}; left as it is", before.state);
            report.outcome(ctx.output(), &id, "unchanged", before.state, &id, message);
            continue;
        }
        farm.stop(&id).await?;
        let now = farm.job(&id).await.map(|j| j.state).unwrap_or(before.state);
        let message = if now.is_terminal() {
            format!("job {id} stopped (was {}; now {now})", before.state)
        } else {
            format!(
                "job {id} stopping (was {}; its running tasks are being stopped)",
                before.state
            )
        };
        report.outcome(ctx.output(), &id, "stopped", now, &id, message);
    }
    Ok(report.finish(ctx.output()))
}
