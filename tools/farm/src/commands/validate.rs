//! `farm validate`: check requests without submitting and list every problem; with
//! `--farm`, also ask the farm whether it could ever run each valid one.
//!
//! JSON (`-o json`): one array, an object per request:
//! `{request, valid, problems: [{field, problem}], checked_by: "local" | "farm", farm?}`.
//! `farm` is present when the farm was asked: `{name, supported, accepted, message?,
//! estimated_start? (epoch ms), placement?, field?, problem?}`; a refusal makes `valid`
//! false and names the field Slurm, HTCondor or the server blamed.

use std::path::PathBuf;
use std::process::ExitCode;

use farm_core::{CheckReport, FarmError, FarmPlugin, JobRequest, Result};
use serde_json::{Value, json};

use super::{Context, read_request_text};
use crate::output::{Output, exit, plural, print_json};

/// `farm validate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Request files (YAML or JSON; `-` reads stdin).
    #[arg(required = true)]
    pub requests: Vec<PathBuf>,
}

/// What the farm said about a request that passed local validation.
#[derive(Debug)]
pub enum FarmAnswer {
    /// It could run it.
    Accepted(CheckReport),
    /// It never could: the field and the farm's words.
    Refused {
        /// The field the farm blamed.
        field: String,
        /// The farm's words.
        problem: String,
    },
    /// The farm's adapter cannot check before submitting (an `Unsupported` error).
    Unsupported(FarmError),
}

/// Asks the farm about one request: a refusal is an answer, other errors are errors.
pub async fn ask(farm: &dyn FarmPlugin, request: &JobRequest) -> Result<FarmAnswer> {
    match farm.check(request).await {
        Ok(report) => Ok(FarmAnswer::Accepted(report)),
        Err(FarmError::InvalidRequest { field, problem }) => {
            Ok(FarmAnswer::Refused { field, problem })
        }
        Err(e @ FarmError::Unsupported { .. }) => Ok(FarmAnswer::Unsupported(e)),
        Err(e) => Err(e),
    }
}

/// The accepted report as lines for people: the farm's words, then start and placement.
pub fn describe(report: &CheckReport) -> Vec<String> {
    let mut lines = vec![report.message.clone()];
    if let Some(ms) = report.estimated_start {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
        let wait = when
            .duration_since(std::time::SystemTime::now())
            .map(|d| {
                let secs = std::time::Duration::from_secs(d.as_secs());
                format!("in {}", humantime::format_duration(secs))
            })
            .unwrap_or_else(|_| "now".into());
        lines.push(format!(
            "estimated start: {} ({wait})",
            humantime::format_rfc3339_seconds(when)
        ));
    }
    if let Some(placement) = &report.placement {
        lines.push(format!("placement: {placement}"));
    }
    lines
}

struct Entry {
    path: PathBuf,
    problems: Vec<(String, String)>,
    answer: Option<FarmAnswer>,
}

impl Entry {
    fn valid(&self) -> bool {
        self.problems.is_empty() && !matches!(self.answer, Some(FarmAnswer::Refused { .. }))
    }

    fn json(&self, farm: Option<&str>) -> Value {
        let mut doc = json!({
            "request": self.path,
            "valid": self.valid(),
            "problems": self.problems.iter().map(|(f, p)| json!({"field": f, "problem": p})).collect::<Vec<_>>(),
            "checked_by": if self.answer.is_some() { "farm" } else { "local" },
        });
        let (Some(answer), Some(name)) = (&self.answer, farm) else {
            return doc;
        };
        doc["farm"] = match answer {
            FarmAnswer::Accepted(report) => {
                let mut f = json!({"name": name, "supported": true, "accepted": true, "message": report.message});
                if let Some(ms) = report.estimated_start {
                    f["estimated_start"] = json!(ms);
                }
                if let Some(p) = &report.placement {
                    f["placement"] = json!(p);
                }
                f
            }
            FarmAnswer::Refused { field, problem } => json!({
                "name": name, "supported": true, "accepted": false, "field": field, "problem": problem,
            }),
            FarmAnswer::Unsupported(why) => json!({
                "name": name, "supported": false, "message": why.to_string(),
            }),
        };
        doc
    }

    fn print(&self, farm: Option<&str>) {
        let path = self.path.display();
        if !self.problems.is_empty() {
            println!("{path}: {}", plural(self.problems.len(), "problem"));
            for (field, problem) in &self.problems {
                println!("  {field}: {problem}");
            }
            return;
        }
        let name = farm.unwrap_or_default();
        match &self.answer {
            None => println!(
                "{path}: valid (checked locally only; --farm NAME also asks the farm whether it could run it)"
            ),
            Some(FarmAnswer::Accepted(report)) => {
                println!("{path}: valid; farm {name} accepts it");
                for line in describe(report) {
                    println!("  {line}");
                }
            }
            Some(FarmAnswer::Refused { field, problem }) => {
                println!("{path}: refused by farm {name}");
                println!("  {field}: {problem}");
            }
            Some(FarmAnswer::Unsupported(why)) => println!(
                "{path}: valid locally; farm {name} cannot check a request before submit ({why})"
            ),
        }
    }
}

/// Prints every problem of each request, then, with `--farm`, the farm's answer for each
/// valid one; exits 4 when a request has a problem or the farm refused it.
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let output = ctx.output();
    let farm = if ctx.farm_named() {
        Some(ctx.named_farm()?)
    } else {
        None
    };
    let mut entries = Vec::new();
    for path in &args.requests {
        // Every problem of the file in one run, type errors included.
        let (text, json) = read_request_text(path)?;
        let problems = JobRequest::problems_in_text(&text, json);
        let request = if problems.is_empty() {
            Some(if json {
                JobRequest::from_json_str(&text)?
            } else {
                JobRequest::from_yaml_str(&text)?
            })
        } else {
            None
        };
        let answer = match (&farm, request) {
            (Some((_, farm)), Some(request)) if problems.is_empty() => {
                Some(ask(farm.as_ref(), &request).await?)
            }
            _ => None,
        };
        entries.push(Entry {
            path: path.clone(),
            problems,
            answer,
        });
    }
    let name = farm.as_ref().map(|(name, _)| name.as_str());
    match output {
        Output::Json => print_json(&entries.iter().map(|e| e.json(name)).collect::<Vec<_>>()),
        Output::Text => entries.iter().for_each(|e| e.print(name)),
    }
    Ok(if entries.iter().all(Entry::valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INVALID)
    })
}
