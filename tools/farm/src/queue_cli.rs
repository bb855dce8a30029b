//! `farm queue serve`, `farm queue url`, `farm agent` and `farm agents`: the local queue's
//! commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use farm_core::{FarmError, Result};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use farm_queue::agent::{AgentConfig, hostname};
use farm_queue::data_root::{DataRoot, TokenKind};
use farm_queue::remote::Remote;
use farm_queue::server::{DEFAULT_PORT, ServerConfig};
use farm_queue::store::Durability;

fn duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 10s or 15m: {e}"))
}

fn secret(text: &str) -> std::result::Result<SecretString, String> {
    if text.trim().is_empty() {
        Err("the token is empty".into())
    } else {
        Ok(SecretString::from(text.trim().to_owned()))
    }
}

/// `farm queue serve`: run the local queue in the foreground.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback lets other machines (remote agents,
    /// clients) connect; every call needs a token either way.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub bind: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT, env = "FARM_QUEUE_PORT")]
    pub port: u16,
    /// Where jobs, logs and tokens live (default: USER_DATA_DIR/farm/queue).
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Local agents to keep running (a dead one is replaced).
    #[arg(long, env = "FARM_NUM_AGENTS", default_value_t = 2, value_name = "N")]
    pub agents: usize,
    /// Program that runs an agent as `PROGRAM agent ...` (default: this program).
    #[arg(long, value_name = "PROGRAM")]
    pub agent_program: Option<PathBuf>,
    /// Times a task may be handed to an agent (lost agents count) before it fails.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_tries: u32,
    /// Heartbeat interval asked of agents.
    #[arg(long, default_value = "1s", value_parser = duration, value_name = "DURATION")]
    pub heartbeat: Duration,
    /// Silence after which an agent is lost and its task requeued.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub agent_timeout: Duration,
    /// Exit after this long with nothing waiting or running and no client requests.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub idle_shutdown: Option<Duration>,
    /// Time a stopped task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    pub kill_grace: Duration,
    /// normal: nothing acknowledged is lost if the server is killed; full: nor on power loss
    /// (every commit waits for the disk).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Normal)]
    pub durability: DurabilityArg,
}

/// How durable a commit is before it is acknowledged ([`Durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survives the server being killed; the last moments may be lost on power failure.
    Normal,
    /// Every commit reaches the disk before the reply (slower).
    Full,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Durability {
        match arg {
            DurabilityArg::Normal => Durability::Normal,
            DurabilityArg::Full => Durability::Full,
        }
    }
}

impl ServeArgs {
    /// The server configuration these arguments describe.
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(DataRoot::resolve(self.data_root.as_deref()));
        config.bind = self.bind;
        config.port = self.port;
        config.agents = self.agents;
        if let Some(program) = &self.agent_program {
            config.launcher.program = program.clone();
        }
        config.launcher.kill_grace = self.kill_grace;
        config.max_tries = self.max_tries;
        config.heartbeat = self.heartbeat;
        config.agent_timeout = self.agent_timeout;
        config.idle_shutdown = self.idle_shutdown;
        config.durability = self.durability.into();
        config
    }
}

/// Runs the queue until Ctrl-C, SIGTERM, or the idle shutdown.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let config = args.config();
    let root = config.data_root.clone();
    let server = farm_queue::server::start(config).await?;
    println!("farm queue listening on {}", server.url());
    eprintln!(
        "data root {} ({} local agents); clients need the token in {}, agents the one in {}",
        root.path().display(),
        args.agents,
        root.path().join("api.token").display(),
        root.path().join("agent.token").display()
    );
    let stop = server.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    server.wait().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}

/// `farm queue url`: the address of the queue's web page, with a one-time login code.
#[derive(Debug, Clone, Args)]
pub struct UrlArgs {
    /// The queue's URL.
    #[arg(
        long,
        env = "FARM_QUEUE_URL",
        default_value = "http://127.0.0.1:7575",
        value_name = "URL"
    )]
    pub url: String,
    /// The queue's data root, where its api.token is (default: as `queue serve`).
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
}

/// Prints the web page's address with a one-time login code.
pub async fn url(args: &UrlArgs) -> Result<()> {
    let root = DataRoot::resolve(args.data_root.as_deref());
    println!(
        "{}",
        farm_local::client::web_login_url(&args.url, &root).await?
    );
    Ok(())
}

/// `farm agent`: run one agent that joins a queue.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The queue's URL, as this machine reaches it.
    #[arg(
        long,
        env = "FARM_QUEUE_URL",
        default_value = "http://127.0.0.1:7575",
        value_name = "URL"
    )]
    pub server: String,
    /// The queue's agent token (its data root's agent.token). Prefer --token-file or the
    /// variable: a command line is visible to other users.
    #[arg(long, env = "FARM_AGENT_TOKEN", hide_env_values = true, value_parser = secret, value_name = "TOKEN")]
    pub token: Option<SecretString>,
    /// Read the token from this file (its first line), e.g. a copy of agent.token readable
    /// only by you: neither a command line nor the environment then holds it. Wins over
    /// --token and FARM_AGENT_TOKEN.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Read the token from this data root when none is given (agents on the queue's machine).
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Name shown in render logs (default: HOST-PID).
    #[arg(long)]
    pub name: Option<String>,
    /// Where output is spooled before it is uploaded (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Exit when the queue has been unreachable this long (default: keep trying).
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub reconnect_timeout: Option<Duration>,
    /// Time a stopped task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    pub kill_grace: Duration,
    /// Set by the queue for the agents it launches itself.
    #[arg(long, hide = true)]
    pub local: bool,
}

/// Runs an agent until SIGTERM or Ctrl-C (its running task is stopped and requeued).
pub async fn agent(args: AgentArgs) -> Result<()> {
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
        server: args.server.clone(),
        token,
        name,
        work_dir,
        local: args.local,
        reconnect_timeout: args.reconnect_timeout,
        kill_grace: args.kill_grace,
    };
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.cancel();
        });
    }
    farm_queue::agent::run(config, shutdown).await
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

/// `farm agents`: start or stop remote agents over ssh.
#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AgentsAction,
}

/// Start or stop.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentsAction {
    /// Start agents on another machine that join this queue.
    Start(AgentsStartArgs),
    /// Stop the agents started on another machine.
    Stop(AgentsStopArgs),
}

/// How to reach the remote machine.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// `user@host` of the remote machine (key-based ssh must work).
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: String,
    /// Extra option for ssh (repeat for several), e.g. `--ssh-option=-p2222`.
    #[arg(long = "ssh-option", value_name = "OPTION", allow_hyphen_values = true)]
    pub ssh_options: Vec<String>,
    /// The agents' directory on the remote machine.
    #[arg(long, default_value = "~/.local/share/farm/agents", value_name = "DIR")]
    pub remote_dir: String,
    /// The ssh program.
    #[arg(long, default_value = "ssh", hide = true)]
    pub ssh_program: String,
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
#[derive(Debug, Clone, Args)]
pub struct AgentsStartArgs {
    /// The remote machine.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Agents to start there.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u32,
    /// The queue's URL as the remote machine reaches it (default: http://THIS_HOST:7575;
    /// the queue must listen beyond loopback, e.g. `farm queue serve --bind 0.0.0.0`).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The `farm` program on the remote machine.
    #[arg(long, default_value = "farm", value_name = "PROGRAM")]
    pub remote_farm: String,
    /// This queue's data root, where the agent token is read.
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
}

/// `farm agents stop`.
#[derive(Debug, Clone, Args)]
pub struct AgentsStopArgs {
    /// The remote machine.
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// Starts or stops remote agents, printing what the remote machine said.
pub async fn agents(args: AgentsArgs) -> Result<()> {
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
    Ok(())
}
