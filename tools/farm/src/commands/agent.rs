//! `farm agent`: run one local-queue agent that joins a queue, here or over the network.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use farm_core::{FarmError, Result};
use farm_queue::agent::{AgentConfig, hostname};
use farm_queue::data_root::{DataRoot, TokenKind};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::{duration, wait_for_signal};

fn secret(text: &str) -> std::result::Result<SecretString, String> {
    if text.trim().is_empty() {
        Err("the token is empty".into())
    } else {
        Ok(SecretString::from(text.trim().to_owned()))
    }
}

/// `farm agent`: run one agent that joins a queue.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue's URL, as this machine reaches it (default: where the queue of --data-root
    /// listens, on this machine).
    #[arg(long, env = super::queue::QUEUE_URL_ENV, value_name = "URL")]
    server: Option<String>,
    /// The queue's agent token (its data root's agent.token). Prefer --token-file or the
    /// variable: a command line is visible to other users.
    #[arg(long, env = "FARM_AGENT_TOKEN", hide_env_values = true, value_parser = secret, value_name = "TOKEN")]
    token: Option<SecretString>,
    /// Read the token from this file (its first line), e.g. a copy of agent.token readable
    /// only by you: neither a command line nor the environment then holds it. Wins over
    /// --token and FARM_AGENT_TOKEN.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Read the token from this data root when none is given (agents on the queue's machine).
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Name shown in render logs (default: HOST-PID).
    #[arg(long)]
    name: Option<String>,
    /// Where output is spooled before it is uploaded (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Exit when the queue has been unreachable this long (default: keep trying).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    reconnect_timeout: Option<Duration>,
    /// Time a stopped task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    kill_grace: Duration,
    /// Tasks this agent runs at once.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: u32,
    /// A tag (pool, group) requests can ask for with `native.local: {pool: TAG}` or
    /// `{tags: [...]}`; repeat for several.
    #[arg(long = "tag", value_name = "TAG", value_parser = tag)]
    tags: Vec<String>,
    /// CPU cores offered to tasks' `resources.cpus` (default: this machine's).
    #[arg(long, value_name = "N")]
    cpus: Option<u64>,
    /// Memory offered to tasks' `resources.memory`, such as 64G (default: this machine's).
    #[arg(long, value_name = "SIZE", value_parser = memory)]
    memory: Option<u64>,
    /// GPUs offered to tasks' `resources.gpus` (default: this machine's NVIDIA devices).
    #[arg(long, value_name = "N")]
    gpus: Option<u64>,
    /// Set by the queue for the agents it launches itself.
    #[arg(long, hide = true)]
    local: bool,
}

pub(crate) fn tag(text: &str) -> std::result::Result<String, String> {
    farm_core::request::check_tag(text).map(|()| text.to_owned())
}

pub(crate) fn memory(text: &str) -> std::result::Result<u64, String> {
    farm_core::MemorySize::parse(text).map(|m| m.mib())
}

/// Runs an agent until SIGTERM or Ctrl-C (its running task is stopped and requeued).
pub async fn run(args: &Args) -> Result<ExitCode> {
    let token = match (&args.token_file, args.token.clone()) {
        (Some(path), _) => read_token_file(path)?,
        (None, Some(token)) => token,
        (None, None) => DataRoot::resolve(args.data_root.as_deref())
            .read_token(TokenKind::Agent)
            .ok()
            .flatten()
            .ok_or_else(|| {
                FarmError::config(
                    "an agent needs the queue's agent token: use --token-file PATH or set \
                     FARM_AGENT_TOKEN; it is agent.token in the queue's data root",
                )
            })?,
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("farm-agent-{name}")));
    let config = AgentConfig {
        server: args.server.clone().unwrap_or_else(|| {
            DataRoot::resolve(args.data_root.as_deref()).queue_url(farm_queue::DEFAULT_PORT)
        }),
        token,
        name,
        work_dir,
        local: args.local,
        reconnect_timeout: args.reconnect_timeout,
        kill_grace: args.kill_grace,
        capacity: {
            let machine = farm_queue::placement::this_machine();
            farm_queue::placement::Capacity {
                slots: u64::from(args.slots),
                cpus: args.cpus.unwrap_or(machine.cpus),
                memory_mib: args.memory.unwrap_or(machine.memory_mib),
                gpus: args.gpus.unwrap_or(machine.gpus),
                tags: args.tags.clone(),
            }
        },
    };
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.cancel();
        });
    }
    farm_queue::agent::run(config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The first line of a token file; its content is never shown in an error.
fn read_token_file(path: &std::path::Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FarmError::io(
            format!("cannot read the agent token file {}", path.display()),
            e,
        )
    })?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(FarmError::config(format!(
            "the agent token file {} is empty",
            path.display()
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "the agent token file is readable by other users; chmod 600 it");
    }
    Ok(SecretString::from(line.to_owned()))
}
