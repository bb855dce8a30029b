//! `farm agents start|stop`: local-queue agents on another machine, over ssh.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use farm_core::{FarmError, Result};
use farm_queue::DEFAULT_PORT;
use farm_queue::agent::hostname;
use farm_queue::data_root::{DataRoot, TokenKind};
use farm_queue::remote::Remote;

/// `farm agents`: start or stop remote agents over ssh.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: AgentsAction,
}

/// Start or stop.
#[derive(Debug, Subcommand)]
enum AgentsAction {
    /// Start agents on another machine that join this queue.
    Start(AgentsStartArgs),
    /// Stop the agents started on another machine.
    Stop(AgentsStopArgs),
}

/// How to reach the remote machine.
#[derive(Debug, clap::Args)]
struct SshArgs {
    /// `user@host` of the remote machine (key-based ssh must work).
    #[arg(long, value_name = "USER@HOST")]
    ssh: String,
    /// Extra option for ssh (repeat for several), e.g. `--ssh-option=-p2222`.
    #[arg(long = "ssh-option", value_name = "OPTION", allow_hyphen_values = true)]
    ssh_options: Vec<String>,
    /// The agents' directory on the remote machine.
    #[arg(long, default_value = "~/.local/share/farm/agents", value_name = "DIR")]
    remote_dir: String,
    /// The ssh program.
    #[arg(long, default_value = "ssh", hide = true)]
    ssh_program: String,
}

impl SshArgs {
    fn remote(&self) -> Remote {
        Remote {
            destination: self.ssh.clone(),
            ssh_options: self.ssh_options.clone(),
            ssh_program: self.ssh_program.clone(),
            dir: self.remote_dir.clone(),
        }
    }
}

/// `farm agents start`.
#[derive(Debug, clap::Args)]
struct AgentsStartArgs {
    /// The remote machine.
    #[command(flatten)]
    ssh: SshArgs,
    /// Agents to start there.
    #[arg(long, default_value_t = 1, value_name = "N")]
    count: u32,
    /// The queue's URL as the remote machine reaches it (default: http://THIS_HOST:7575;
    /// the queue must listen beyond loopback, e.g. `farm queue serve --bind 0.0.0.0`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The `farm` program on the remote machine.
    #[arg(long, default_value = "farm", value_name = "PROGRAM")]
    remote_farm: String,
    /// This queue's data root, where the agent token is read.
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Tasks each agent runs at once (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: Option<u32>,
    /// A tag (pool) for each agent, as `farm agent --tag`; repeat for several.
    #[arg(long = "tag", value_name = "TAG", value_parser = super::agent::tag)]
    tags: Vec<String>,
    /// CPU cores each agent offers (default: the remote machine's).
    #[arg(long, value_name = "N")]
    cpus: Option<u64>,
    /// Memory each agent offers, such as 64G (default: the remote machine's).
    #[arg(long, value_name = "SIZE", value_parser = super::agent::memory)]
    memory: Option<u64>,
    /// GPUs each agent offers (default: the remote machine's NVIDIA devices).
    #[arg(long, value_name = "N")]
    gpus: Option<u64>,
}

impl AgentsStartArgs {
    /// The `farm agent` options every started agent gets, already validated here so that
    /// a typo fails before anything starts on the remote machine.
    fn agent_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(slots) = self.slots {
            options.extend(["--slots".to_owned(), slots.to_string()]);
        }
        for tag in &self.tags {
            options.extend(["--tag".to_owned(), tag.clone()]);
        }
        if let Some(cpus) = self.cpus {
            options.extend(["--cpus".to_owned(), cpus.to_string()]);
        }
        if let Some(mib) = self.memory {
            options.extend(["--memory".to_owned(), format!("{mib}M")]);
        }
        if let Some(gpus) = self.gpus {
            options.extend(["--gpus".to_owned(), gpus.to_string()]);
        }
        options
    }
}

/// `farm agents stop`.
#[derive(Debug, clap::Args)]
struct AgentsStopArgs {
    /// The remote machine.
    #[command(flatten)]
    ssh: SshArgs,
}

/// Starts or stops remote agents, printing what the remote machine said.
pub async fn run(args: &Args) -> Result<ExitCode> {
    let output = match &args.action {
        AgentsAction::Start(start) => {
            let root = DataRoot::resolve(start.data_root.as_deref());
            let token = root
                .read_token(TokenKind::Agent)
                .map_err(|e| {
                    FarmError::io(
                        format!("cannot read the agent token in {}", root.path().display()),
                        e,
                    )
                })?
                .ok_or_else(|| {
                    FarmError::config(format!(
                        "no agent token in {}: start the queue there first (`farm queue serve`)",
                        root.path().display()
                    ))
                })?;
            let server = start
                .server
                .clone()
                .unwrap_or_else(|| format!("http://{}:{DEFAULT_PORT}", hostname()));
            start
                .ssh
                .remote()
                .start(
                    &start.remote_farm,
                    &server,
                    start.count,
                    &start.agent_options(),
                    &token,
                )
                .await?
        }
        AgentsAction::Stop(stop) => stop.ssh.remote().stop().await?,
    };
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}
