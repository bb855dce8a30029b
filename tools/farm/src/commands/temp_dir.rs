//! `farm temp-dir`: create (or find) the render context's directory render nodes can read.

use std::process::ExitCode;

use farm_core::Result;
use serde_json::json;

use super::{Context, ContextArgs};
use crate::output::{Output, print_json};

/// Prints the render context's directory.
pub async fn run(args: &ContextArgs, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let path = farm.create_temp_directory(args.render_context).await?;
    match output {
        Output::Json => print_json(&json!({ "path": path })),
        Output::Text => println!("{path}"),
    }
    Ok(ExitCode::SUCCESS)
}
