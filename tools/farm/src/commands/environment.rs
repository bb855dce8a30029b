//! `farm environment`: the extra environment the farm gives render processes.

use std::process::ExitCode;

use farm_core::Result;

use super::{Context, ContextArgs};
use crate::output::{Output, print_json};

/// Prints the render environment.
pub async fn run(args: &ContextArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let env = farm.render_environment(args.render_context).await?;
    match output {
        Output::Json => print_json(&env),
        Output::Text => {
            for (k, v) in &env {
                println!("{k}={v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
