//! `farm farms`: the configured farms and what their adapters can do.

use std::process::ExitCode;

use farm_core::Result;
use serde_json::json;

use super::Context;
use crate::farms::Source;
use crate::output::{Output, print_json};

/// Lists the farms, where each is defined and what its adapter can do.
pub async fn run(ctx: &Context<'_>) -> Result<ExitCode> {
    let farms = ctx.farms()?;
    let out = ctx.output();
    let mut rows = Vec::new();
    for (name, spec) in &farms.config.farms {
        let source = match &farms.sources[name] {
            Source::File(path) => path.display().to_string(),
            Source::BuiltIn => "built-in".to_owned(),
        };
        let (caps, problem) = if farms.registry.has(&spec.adapter) {
            match farms.build(name) {
                Ok(farm) => (Some(farm.capabilities()), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (
                None,
                Some(
                    farms
                        .build(name)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                ),
            )
        };
        rows.push((
            name.clone(),
            spec.adapter.clone(),
            source,
            spec.description.clone(),
            caps,
            problem,
        ));
    }
    match out {
        Output::Json => print_json(
            &rows
                .iter()
                .map(|(name, adapter, source, description, caps, problem)| {
                    json!({
                        "name": name, "adapter": adapter, "source": source, "description": description,
                        "default": farms.chosen_name(None) == *name,
                        "capabilities": caps, "problem": problem,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Output::Text => {
            let default = farms.chosen_name(None);
            for (name, adapter, source, description, caps, problem) in &rows {
                let mark = if *name == default { " (default)" } else { "" };
                println!("{name}{mark}  adapter={adapter}  from {source}");
                if let Some(d) = description {
                    println!("  {d}");
                }
                if let Some(caps) = caps {
                    let on: Vec<&str> = caps.entries().iter().filter(|(_, v)| *v).map(|(k, _)| *k).collect();
                    println!("  can: {}", if on.is_empty() { "(submit, status and render only)".to_owned() } else { on.join(", ") });
                }
                if let Some(p) = problem {
                    println!("  unavailable: {p}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
