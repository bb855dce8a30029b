//! `farm validate`: check requests without submitting and list every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use farm_core::{JobRequest, Result};
use serde_json::json;

use super::{Context, read_request_text};
use crate::output::{Output, exit, plural, print_json};

/// `farm validate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Request files (YAML or JSON; `-` reads stdin).
    #[arg(required = true)]
    pub requests: Vec<PathBuf>,
}

/// Prints every problem of each request; exits 4 when one has any.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let output = ctx.output();
    let mut reports = Vec::new();
    let mut any_bad = false;
    for path in &args.requests {
        // Every problem of the file in one run, type errors included.
        let (text, json) = read_request_text(path)?;
        let problems = JobRequest::problems_in_text(&text, json);
        any_bad |= !problems.is_empty();
        reports.push((path.clone(), problems));
    }
    match output {
        Output::Json => print_json(
            &reports
                .iter()
                .map(|(path, problems)| {
                    json!({
                        "request": path,
                        "valid": problems.is_empty(),
                        "problems": problems.iter().map(|(f, p)| json!({"field": f, "problem": p})).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Output::Text => {
            for (path, problems) in &reports {
                if problems.is_empty() {
                    println!("{}: valid", path.display());
                } else {
                    println!("{}: {}", path.display(), plural(problems.len(), "problem"));
                    for (field, problem) in problems {
                        println!("  {field}: {problem}");
                    }
                }
            }
        }
    }
    Ok(if any_bad {
        ExitCode::from(exit::INVALID)
    } else {
        ExitCode::SUCCESS
    })
}
