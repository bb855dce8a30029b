//! `farm conformance`: the conformance suite against a farm.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use farm_conformance::{Outcome, Selection, SuiteSettings, TestFarm};
use farm_core::{FarmError, Result};
use serde_json::json;

use super::{Context, duration};
use crate::output::{Output, exit, print_json};

/// `farm conformance` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the checks instead of running them (text, json, or markdown for docs/).
    #[arg(long)]
    pub list: bool,
    /// Print the list as the markdown reference (docs/conformance.md).
    #[arg(long, requires = "list")]
    pub markdown: bool,
    /// Run only this check (repeatable).
    #[arg(long, value_name = "CHECK")]
    pub only: Vec<String>,
    /// Skip this check (repeatable).
    #[arg(long, value_name = "CHECK")]
    pub skip: Vec<String>,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Directory both this host and the farm's jobs can read and write (same path on both).
    #[arg(long, value_name = "DIR")]
    pub shared_dir: Option<PathBuf>,
    /// How long a job may take to reach the state a check waits for.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub job_timeout: std::time::Duration,
    /// Checks to run at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Keep the scratch files of the run (deleted after a run by default).
    #[arg(long)]
    pub keep_scratch: bool,
}

/// Runs the selected checks against the chosen farm (or lists them with `--list`).
pub async fn run(args: &Args, ctx: &Context<'_>) -> Result<ExitCode> {
    let out = ctx.output();
    if args.list {
        return Ok(list_checks(args, out));
    }
    let (name, farm) = ctx.named_farm()?;
    let selection = Selection {
        only: args.only.clone(),
        skip: args.skip.clone(),
    };
    let checks = selection
        .resolve()
        .map_err(|e| FarmError::invalid("--only/--skip", e))?;
    let shared_dir = args
        .shared_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("farm-conformance"));
    let mut settings = SuiteSettings::new(&shared_dir);
    settings.job_timeout = args.job_timeout;
    settings.check_timeout = args.job_timeout * 3 + Duration::from_secs(30);
    let test_farm = TestFarm::new(farm).with_settings(settings);
    let bar = (out == Output::Text && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(checks.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} checks  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    if out == Output::Text {
        eprintln!(
            "running {} checks against farm {name} ({})",
            checks.len(),
            test_farm.farm.adapter()
        );
    }
    let report = farm_conformance::run_all(&test_farm, &checks, args.parallel, |r| {
        let line = format!("{:<7} {}", r.outcome.label(), r.id);
        match &bar {
            Some(bar) => {
                bar.inc(1);
                if matches!(r.outcome, Outcome::Failed(_)) {
                    bar.println(line);
                }
                bar.set_message(r.id.clone());
            }
            None if out == Output::Text => eprintln!("{line}"),
            None => {}
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !args.keep_scratch {
        let _ = std::fs::remove_dir_all(shared_dir.join(report.run_id.to_string()));
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.to_junit())
            .map_err(|e| FarmError::io(format!("cannot write {}", path.display()), e))?;
    }
    match out {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.to_table()),
    }
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::CHECKS_FAILED)
    })
}

fn list_checks(args: &Args, out: Output) -> ExitCode {
    if args.markdown {
        print!("{}", farm_conformance::markdown_reference());
        return ExitCode::SUCCESS;
    }
    match out {
        Output::Json => print_json(
            &farm_conformance::CHECKS
                .iter()
                .map(|c| json!({ "id": c.id, "sentence": c.sentence(), "selected_by": c.selected_by, "details": c.details() }))
                .collect::<Vec<_>>(),
        ),
        Output::Text => {
            for c in farm_conformance::CHECKS {
                println!("{:<62} [{}]\n    {}", c.id, c.selected_by, c.sentence());
            }
            println!("\n{} checks", farm_conformance::CHECKS.len());
        }
    }
    ExitCode::SUCCESS
}
