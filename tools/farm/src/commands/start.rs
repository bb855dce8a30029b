//! `farm start`: start jobs again (a finished job runs a new attempt).

use std::process::ExitCode;

use farm_core::{JobId, Result};
use serde_json::json;

use super::{Context, IdsArgs};
use crate::output::{Output, print_json};

/// Starts jobs again.
pub async fn run(args: &IdsArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let mut started = Vec::new();
    for id in &args.ids {
        let id = JobId::new(id.clone());
        let now = farm.start(&id).await?;
        if output == Output::Text {
            if now == id {
                println!("started {id}");
            } else {
                println!("started {id} again as job {now}");
            }
        }
        started.push(json!({ "id": id, "now": now }));
    }
    if output == Output::Json {
        print_json(&json!({ "started": started }));
    }
    Ok(ExitCode::SUCCESS)
}
