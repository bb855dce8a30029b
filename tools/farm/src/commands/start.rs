//! `farm start`: start jobs again (a finished job runs a new attempt; a waiting or running
//! one is left as it is), or with `--failed` run again only their failed and cancelled
//! tasks; says what happened to each.

use std::process::ExitCode;

use farm_core::{JobId, Result};

use super::{Context, IdsArgs};
use crate::output;

/// `farm start`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    ids: IdsArgs,
    /// Run again only the failed and cancelled tasks (frames), under the same job id;
    /// frames that completed do not run again.
    #[arg(long)]
    failed: bool,
}

/// Starts jobs again.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let mut report = output::Report::new("results");
    for id in &args.ids.ids {
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
        let now = if args.failed {
            farm.retry_failed(&id).await?
        } else {
            farm.start(&id).await?
        };
        let after = farm.job(&now).await?;
        let (outcome, message) = match (args.failed, now == id) {
            (true, _) if after.state.is_terminal() => (
                "unchanged",
                format!(
                    "job {id} has no failed or cancelled task; left {}",
                    after.state
                ),
            ),
            (true, _) => (
                "retried",
                format!(
                    "job {id}: its failed and cancelled tasks run again (was {})",
                    before.state
                ),
            ),
            (false, true) => (
                "started",
                format!(
                    "job {id} started again (was {}; attempt {})",
                    before.state, after.attempt
                ),
            ),
            (false, false) => (
                "started",
                format!("job {id} started again as job {now} (was {})", before.state),
            ),
        };
        report.outcome(ctx.output(), &id, outcome, after.state, &now, message);
    }
    Ok(report.finish(ctx.output()))
}
