//! `farm`: the command line of the render-farm bridge.

mod commands;
mod farms;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use farm_core::{FarmError, Result};

use commands::{Context, ContextArgs, IdsArgs};
use output::Output;

const EXIT_CODES: &str = "\
Exit status:
  0   success
  1   other error (I/O, internal)
  2   usage error
  3   job not found
  4   invalid request
  5   operation not supported by the farm's adapter
  6   scheduler unavailable (retry later)
  7   permission denied
  8   scheduler error
  9   configuration error
  10  job finished Failed (submit --wait, log --follow)
  11  job finished Cancelled (submit --wait, log --follow)
  12  conformance checks failed
  130 interrupted (Ctrl-C) while waiting; the jobs keep running

Environment:
  FARM_CONFIG        farms file (default: ~/.config/farm/farms.yaml)
  FARM               farm to use when --farm is not given
  FARM_DATA_ROOT     the local queue's data root (its address is found there)
  FARM_QUEUE_URL     the local queue's address, when it is not the data root's
  RUST_LOG           tracing filter, e.g. RUST_LOG=farm=debug";

/// Render, submit, watch and control render jobs on any configured farm.
///
/// A farm is a named scheduler from the farms file (Slurm, HTCondor, an HTTP scheduler, the
/// local queue). Without a farms file, the built-in `local` farm (a queue on this machine)
/// and `simulator` farm are available.
#[derive(Debug, Parser)]
#[command(name = "farm", version, after_long_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct Global {
    /// Farms file to read instead of $FARM_CONFIG or ~/.config/farm/farms.yaml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Farm to use (a name from the farms file, `local` or `simulator`).
    #[arg(long, global = true, env = "FARM", value_name = "NAME")]
    pub farm: Option<String>,
    /// Output format: text for people, json for programs (one JSON document on stdout).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print the full cause chain of errors.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the native job file(s) for a request without submitting (offline).
    ///
    /// Prints the main file (an sbatch script, an HTCondor submit description, the JSON body
    /// an HTTP scheduler receives) on stdout. With --out, writes every file atomically: to
    /// the given path for a single file, or into the given directory.
    Render(commands::render::Args),
    /// Submit one or more requests and print the job ids.
    Submit(commands::submit::Args),
    /// Check requests without submitting and list every problem.
    Validate(commands::validate::Args),
    /// Show the state and details of jobs.
    Status(commands::status::Args),
    /// List jobs, optionally filtered.
    List(commands::list::Args),
    /// Print a job's render log; --follow keeps printing until the job ends.
    Log(commands::log::Args),
    /// Stop jobs (a finished job is left as it is).
    Stop(IdsArgs),
    /// Start jobs again (a finished job runs a new attempt; a running one is left alone).
    Start(commands::start::Args),
    /// List the configured farms and what their adapters can do.
    Farms,
    /// Create (or find) the render context's directory that render nodes can read.
    TempDir(ContextArgs),
    /// Copy render files where the render nodes can read them; prints source -> copy.
    CopyFiles(commands::copy_files::Args),
    /// Show the Katana installation the farm's render nodes use.
    Installation,
    /// Show the extra environment the farm gives render processes.
    Environment(ContextArgs),
    /// Run the conformance suite against a farm.
    Conformance(commands::conformance::Args),
    /// Run one task (one chunk) of a request on this machine, as a farm's own plug-in does.
    ///
    /// The execution path for farms that run our tasks through their own plug-in (Deadline's
    /// FarmBridge): argv without a shell, placeholders substituted, FARM_* variables, stop at
    /// the first failing command. The last line names the outcome; the exit status is the
    /// failing command's.
    RunTask(commands::run_task::Args),
    /// The local queue server (what the `local` farm talks to).
    #[cfg(feature = "local")]
    Queue(commands::queue::Args),
    /// Run one local-queue agent that joins a queue, here or over the network.
    #[cfg(feature = "local")]
    Agent(commands::agent::Args),
    /// Start or stop local-queue agents on another machine over ssh.
    #[cfg(feature = "local")]
    Agents(commands::agents::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return output::usage_error(err, output::asks_for_json(std::env::args_os())),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // An agent mostly waits (for replies, for its tasks' processes): on one thread it does
    // not wake a second one for every reply and process exit, which cost it more CPU than
    // the work itself when tasks are short.
    #[cfg(feature = "local")]
    let agent = matches!(cli.command, Command::Agent(_));
    #[cfg(not(feature = "local"))]
    let agent = false;
    let mut builder = if agent {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
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
    let ctx = Context::new(&cli.global);
    match &cli.command {
        Command::Render(args) => commands::render::run(args, &ctx).await,
        Command::Submit(args) => commands::submit::run(args, &ctx).await,
        Command::Validate(args) => commands::validate::run(args, &ctx).await,
        Command::Status(args) => commands::status::run(args, &ctx).await,
        Command::List(args) => commands::list::run(args, &ctx).await,
        Command::Log(args) => commands::log::run(args, &ctx).await,
        Command::Stop(args) => commands::stop::run(args, &ctx).await,
        Command::Start(args) => commands::start::run(args, &ctx).await,
        Command::Farms => commands::farms::run(&ctx).await,
        Command::TempDir(args) => commands::temp_dir::run(args, &ctx).await,
        Command::CopyFiles(args) => commands::copy_files::run(args, &ctx).await,
        Command::Installation => commands::installation::run(&ctx).await,
        Command::Environment(args) => commands::environment::run(args, &ctx).await,
        Command::Conformance(args) => commands::conformance::run(args, &ctx).await,
        Command::RunTask(args) => commands::run_task::run(args).await,
        #[cfg(feature = "local")]
        Command::Queue(args) => commands::queue::run(args).await,
        #[cfg(feature = "local")]
        Command::Agent(args) => commands::agent::run(args).await,
        #[cfg(feature = "local")]
        Command::Agents(args) => commands::agents::run(args).await,
    }
}
