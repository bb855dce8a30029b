//! `farm installation`: the Katana installation the farm's render nodes use.

use std::process::ExitCode;

use farm_core::Result;

use super::Context;
use crate::output::{Output, print_json};

/// Prints the installation metadata.
pub async fn run(ctx: &Context<'_>) -> Result<ExitCode> {
    let farm = ctx.farm()?;
    let output = ctx.output();
    let meta = farm.installation_metadata().await?;
    match output {
        Output::Json => print_json(&meta),
        Output::Text => {
            println!("katana_root         {}", meta.katana_root);
            println!("renderboot_command  {}", meta.renderboot_command());
            for (plugin, path) in &meta.render_plugin_dso_paths {
                println!("render plug-in      {plugin}: {path}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
