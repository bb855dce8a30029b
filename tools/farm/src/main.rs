//! `farm`: the command line of the render-farm bridge.

mod cli;
mod commands;
mod farms;
mod output;
mod queue_cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use farm_conformance::{Outcome, Selection, SuiteSettings, TestFarm};
use farm_core::{FarmError, Result};
use serde_json::json;

use cli::{Cli, Command, ConformanceArgs, Output};
use farms::{Farms, Source};
use output::{exit, print_json};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return output::report_error(
                &FarmError::io("cannot start the async runtime", e),
                cli.global.output,
                true,
            );
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(err) => output::report_error(&err, cli.global.output, cli.global.verbose),
    }
}

async fn run(cli: &Cli) -> Result<ExitCode> {
    let out = cli.global.output;
    match &cli.command {
        Command::Queue {
            command: cli::QueueCommand::Serve(args),
        } => {
            queue_cli::serve(args.clone()).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Queue {
            command: cli::QueueCommand::Url(args),
        } => {
            queue_cli::url(args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Agent(args) => {
            queue_cli::agent(args.clone()).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Agents(args) => {
            queue_cli::agents(args.clone()).await?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Command::Validate(args) = &cli.command {
        return commands::validate(args, out);
    }
    if let Command::Conformance(args) = &cli.command
        && args.list
    {
        return Ok(list_checks(args, out));
    }
    let farms = Farms::load(cli.global.config.as_deref())?;
    if let Command::Farms = &cli.command {
        return Ok(list_farms(&farms, out));
    }
    let name = farms.chosen_name(cli.global.farm.as_deref());
    let farm = farms.build(&name)?;
    tracing::debug!(farm = %name, adapter = farm.adapter(), "using farm");
    match &cli.command {
        Command::Render(args) => commands::render(farm, args, out).await,
        Command::Submit(args) => commands::submit(farm, args, out).await,
        Command::Status(args) => commands::status(farm, args, out).await,
        Command::List(args) => commands::list(farm, args, out).await,
        Command::Log(args) => commands::log(farm, args, out).await,
        Command::Stop(args) => commands::stop(farm, args, out).await,
        Command::Start(args) => commands::start(farm, args, out).await,
        Command::Conformance(args) => conformance(farm, &name, args, out).await,
        Command::TempDir(args) => commands::temp_dir(farm, args, out).await,
        Command::CopyFiles(args) => commands::copy_files(farm, args, out).await,
        Command::Installation => commands::installation(farm, out).await,
        Command::Environment(args) => commands::environment(farm, args, out).await,
        Command::Validate(_)
        | Command::Farms
        | Command::Queue { .. }
        | Command::Agent(_)
        | Command::Agents(_) => {
            unreachable!("handled above")
        }
    }
}

fn list_farms(farms: &Farms, out: Output) -> ExitCode {
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
    ExitCode::SUCCESS
}

fn list_checks(args: &ConformanceArgs, out: Output) -> ExitCode {
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

async fn conformance(
    farm: std::sync::Arc<dyn farm_core::FarmPlugin>,
    name: &str,
    args: &ConformanceArgs,
    out: Output,
) -> Result<ExitCode> {
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
