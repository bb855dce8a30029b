//! `farm start`: start jobs again (a finished job runs a new attempt), or with `--failed`
//! run again only their failed and cancelled tasks.

use std::process::ExitCode;

use farm_core::{JobId, Result};
use serde_json::json;

use super::{Context, IdsArgs};
use crate::output::{Output, print_json};

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
    let output = ctx.output();
    let mut started = Vec::new();
    for id in &args.ids.ids {
        let id = JobId::new(id.clone());
        let now = if args.failed {
            farm.retry_failed(&id).await?
        } else {
            farm.start(&id).await?
        };
        if output == Output::Text {
            let what = if args.failed {
                "retried the failed tasks of"
            } else {
                "started"
            };
            if now == id {
                println!("{what} {id}");
            } else {
                println!("{what} {id}, now job {now}");
            }
        }
        started.push(json!({ "id": id, "now": now }));
    }
    if output == Output::Json {
        print_json(&json!({ "started": started }));
    }
    Ok(ExitCode::SUCCESS)
}
