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
                .start(&start.remote_farm, &server, start.count, &token)
                .await?
        }
        AgentsAction::Stop(stop) => stop.ssh.remote().stop().await?,
    };
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}
