//! The local queue's commands without the rest of the `farm` command line: `queue serve`,
//! `agent` and `agents`, spelled as `farm` spells them (so a queue started by this program
//! launches its agents with it too).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use farm_local::cli;

#[derive(Debug, Parser)]
#[command(
    name = "farm-local",
    version,
    about = "The farm local queue: server and agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The queue server.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Run one agent that joins a queue.
    Agent(cli::AgentArgs),
    /// Start or stop agents on another machine over ssh.
    Agents(cli::AgentsArgs),
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Run the queue in the foreground.
    Serve(cli::ServeArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("farm-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            Command::Queue {
                command: QueueCommand::Serve(a),
            } => cli::serve(a).await,
            Command::Agent(a) => cli::agent(a).await,
            Command::Agents(a) => cli::agents(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-local: {}", e.chain());
            ExitCode::FAILURE
        }
    }
}
