//! `farm start`: start jobs again (a finished job runs a new attempt; a waiting or running
//! one is left as it is), saying what happened to each.

use std::process::ExitCode;

use farm_core::{JobId, Result};

use super::{Context, IdsArgs};
use crate::output;

/// Starts jobs again.
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
        if !before.state.is_terminal() {
            let message = format!("job {id} already {}; left as it is", before.state);
            report.outcome(ctx.output(), &id, "unchanged", before.state, &id, message);
            continue;
        }
        let now = farm.start(&id).await?;
        let after = farm.job(&now).await?;
        let message = if now == id {
            format!(
                "job {id} started again (was {}; attempt {})",
                before.state, after.attempt
            )
        } else {
            format!("job {id} started again as job {now} (was {})", before.state)
        };
        report.outcome(ctx.output(), &id, "started", after.state, &now, message);
    }
    Ok(report.finish(ctx.output()))
}
