//! `farm copy-files`: copy render files where the render nodes can read them.

use std::path::PathBuf;
use std::process::ExitCode;

use farm_core::Result;

use super::Context;
use crate::output::{Output, print_json};

/// `farm copy-files` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The render context (a UUID).
    pub render_context: uuid::Uuid,
    /// Files to copy.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Copies the files and prints source -> copy.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let copies = farm
        .copy_render_files(&args.files, args.render_context)
        .await?;
    match output {
        Output::Json => print_json(&copies),
        Output::Text => {
            for (source, copy) in &copies {
                println!("{} -> {copy}", source.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
