//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
  10  job finished Failed (submit --wait)
  11  job finished Cancelled (submit --wait)
  12  conformance checks failed

Environment:
  FARM_CONFIG        farms file (default: ~/.config/farm/farms.yaml)
  FARM               farm to use when --farm is not given
  RUST_LOG           tracing filter, e.g. RUST_LOG=farm=debug";

/// Render, submit, watch and control render jobs on any configured farm.
///
/// A farm is a named scheduler from the farms file (Slurm, HTCondor, an HTTP scheduler, the
/// local queue). Without a farms file, the built-in `local` farm (a queue on this machine)
/// and `simulator` farm are available.
#[derive(Debug, Parser)]
#[command(name = "farm", version, after_long_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Farms file to read instead of $FARM_CONFIG or ~/.config/farm/farms.yaml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Farm to use (a name from the farms file, `local` or `simulator`).
    #[arg(long, short = 'f', global = true, env = "FARM", value_name = "NAME")]
    pub farm: Option<String>,
    /// Output format: text for people, json for programs (one JSON document on stdout).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print the full cause chain of errors.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// JSON on stdout (errors too, as {"error": {...}}).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the native job file(s) for a request without submitting (offline).
    ///
    /// Prints the main file (an sbatch script, an HTCondor submit description, the JSON body
    /// an HTTP scheduler receives) on stdout. With --out, writes every file atomically: to
    /// the given path for a single file, or into the given directory.
    Render(RenderArgs),
    /// Submit one or more requests and print the job ids.
    Submit(SubmitArgs),
    /// Check requests without submitting and list every problem.
    Validate(ValidateArgs),
    /// Show the state and details of jobs.
    Status(IdsArgs),
    /// List jobs, optionally filtered.
    List(ListArgs),
    /// Print a job's render log; --follow keeps printing until the job ends.
    Log(LogArgs),
    /// Stop jobs (a finished job is left as it is).
    Stop(IdsArgs),
    /// Start jobs again (a finished job runs a new attempt; a running one is left alone).
    Start(IdsArgs),
    /// List the configured farms and what their adapters can do.
    Farms,
    /// Create (or find) the render context's directory that render nodes can read.
    TempDir(ContextArgs),
    /// Copy render files where the render nodes can read them; prints source -> copy.
    CopyFiles(CopyArgs),
    /// Show the Katana installation the farm's render nodes use.
    Installation,
    /// Show the extra environment the farm gives render processes.
    Environment(ContextArgs),
    /// Run the conformance suite against a farm.
    Conformance(ConformanceArgs),
    /// The local queue server (what the `local` farm talks to).
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Run one local-queue agent that joins a queue, here or over the network.
    Agent(crate::queue_cli::AgentArgs),
    /// Start or stop local-queue agents on another machine over ssh.
    Agents(crate::queue_cli::AgentsArgs),
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Run the queue in the foreground: HTTP API and web page, local agents, SQLite state.
    Serve(crate::queue_cli::ServeArgs),
    /// Print a one-time login link to the queue's web page (the queue must be running).
    Url(crate::queue_cli::UrlArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Request file (YAML or JSON; `-` reads stdin).
    pub request: PathBuf,
    /// Write the file(s) here instead of printing the main file.
    #[arg(long = "out", value_name = "PATH")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Request files (YAML or JSON; `-` reads stdin).
    #[arg(required = true)]
    pub requests: Vec<PathBuf>,
    /// Wait until the jobs finish, showing progress; exit 10 if one failed, 11 if cancelled.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ContextArgs {
    /// The render context (a UUID).
    pub render_context: uuid::Uuid,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The render context (a UUID).
    pub render_context: uuid::Uuid,
    /// Files to copy.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Request files (YAML or JSON; `-` reads stdin).
    #[arg(required = true)]
    pub requests: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Job ids as the farm printed them.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state (repeat for several): Waiting, Running, Completed, Cancelled, Failed.
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub states: Vec<farm_core::JobState>,
    /// Only jobs with exactly this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only jobs submitted since: a duration ago (2h, 3d) or a time (2026-11-22T10:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Job id.
    pub id: String,
    /// Keep printing new output until the job ends.
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Start at this byte offset.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Only print the log's path (Katana's render log filename).
    #[arg(long)]
    pub path: bool,
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime_duration)]
    pub job_timeout: std::time::Duration,
    /// Checks to run at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Keep the scratch files of the run (deleted after a run by default).
    #[arg(long)]
    pub keep_scratch: bool,
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 30s, 10m or 2h: {e}"))
}

fn parse_state(s: &str) -> Result<farm_core::JobState, String> {
    s.parse()
        .map_err(|e: farm_core::state::UnknownJobState| e.to_string())
}

fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(farm_core::now_millis() - d.as_millis() as i64);
    }
    humantime::parse_rfc3339_weak(s)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
        .map_err(|_| format!("{s:?} is neither a duration (2h) nor a time (2026-11-22T10:00:00Z)"))
}
