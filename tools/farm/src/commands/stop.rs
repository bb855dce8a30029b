//! `farm stop`: stop jobs (a finished job is left as it is).

use std::process::ExitCode;

use farm_core::{JobId, Result};
use serde_json::json;

use super::{Context, IdsArgs};
use crate::output::{Output, print_json};

/// Stops jobs.
pub async fn run(args: &IdsArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let mut done = Vec::new();
    for id in &args.ids {
        let id = JobId::new(id.clone());
        farm.stop(&id).await?;
        if output == Output::Text {
            println!("stopped {id}");
        }
        done.push(id);
    }
    if output == Output::Json {
        print_json(&json!({ "stopped": done }));
    }
    Ok(ExitCode::SUCCESS)
}
