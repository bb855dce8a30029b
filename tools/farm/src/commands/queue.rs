//! `farm queue serve` and `farm queue url`: the local queue server (what the `local` farm
//! talks to) and its web page.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use farm_core::Result;
use farm_queue::data_root::DataRoot;
use farm_queue::server::{DEFAULT_PORT, ServerConfig};
use farm_queue::store::Durability;

use super::{duration, wait_for_signal};

/// `farm queue` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Run the queue in the foreground: HTTP API and web page, local agents, SQLite state.
    Serve(ServeArgs),
    /// Print a one-time login link to the queue's web page (the queue must be running).
    Url(UrlArgs),
}

/// Runs `queue serve` or `queue url`.
pub async fn run(args: &Args) -> Result<ExitCode> {
    match &args.command {
        QueueCommand::Serve(args) => serve(args).await?,
        QueueCommand::Url(args) => url(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `farm queue serve`: run the local queue in the foreground.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on. Anything but loopback lets other machines (remote agents,
    /// clients) connect; every call needs a token either way.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    bind: IpAddr,
    /// Port to listen on (0: any free port). Default: the port of $FARM_QUEUE_URL; else the
    /// one this data root's queue used last, else 7575, and when that is taken (another
    /// user's queue) a free one; the data root records it for clients and the next start.
    #[arg(long)]
    port: Option<u16>,
    /// Where jobs, logs and tokens live (default: USER_DATA_DIR/farm/queue).
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Local agents to keep running (a dead one is replaced).
    #[arg(long, env = "FARM_NUM_AGENTS", default_value_t = 2, value_name = "N")]
    agents: usize,
    /// Tasks each local agent runs at once.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    agent_slots: u32,
    /// Program that runs an agent as `PROGRAM agent ...` (default: this program).
    #[arg(long, value_name = "PROGRAM")]
    agent_program: Option<PathBuf>,
    /// Times a task may be handed to an agent (lost agents count) before it fails.
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_tries: u32,
    /// Heartbeat interval asked of agents.
    #[arg(long, default_value = "1s", value_parser = duration, value_name = "DURATION")]
    heartbeat: Duration,
    /// Silence after which an agent is lost and its task requeued.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    agent_timeout: Duration,
    /// Exit after this long with nothing waiting or running and no client requests.
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    idle_shutdown: Option<Duration>,
    /// Time a stopped task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    kill_grace: Duration,
    /// normal: nothing acknowledged is lost if the server is killed; full: nor on power loss
    /// (every commit waits for the disk).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Normal)]
    durability: DurabilityArg,
}

/// How durable a commit is before it is acknowledged ([`Durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
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
    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(DataRoot::resolve(self.data_root.as_deref()));
        config.bind = self.bind;
        let from_url = queue_url_env().and_then(|u| reqwest_port(&u));
        let recorded = config.data_root.recorded_port();
        (config.port, config.free_port_if_taken) = match (self.port, from_url, recorded) {
            (Some(port), _, _) | (None, Some(port), _) => (port, false),
            (None, None, Some(port)) => (port, true),
            (None, None, None) => (DEFAULT_PORT, true),
        };
        config.agents = self.agents;
        if let Some(program) = &self.agent_program {
            config.launcher.program = program.clone();
        }
        config.launcher.kill_grace = self.kill_grace;
        config.launcher.slots = self.agent_slots;
        config.max_tries = self.max_tries;
        config.heartbeat = self.heartbeat;
        config.agent_timeout = self.agent_timeout;
        config.idle_shutdown = self.idle_shutdown;
        config.durability = self.durability.into();
        config
    }
}

/// Runs the queue until Ctrl-C, SIGTERM, or the idle shutdown.
async fn serve(args: &ServeArgs) -> Result<()> {
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

/// `farm queue url`: the address of the queue's web page, with a one-time login code.
#[derive(Debug, clap::Args)]
struct UrlArgs {
    /// The queue's URL (default: where the data root says its queue listens).
    #[arg(long, env = QUEUE_URL_ENV, value_name = "URL")]
    url: Option<String>,
    /// The queue's data root, where its api.token is (default: as `queue serve`).
    #[arg(long, env = "FARM_DATA_ROOT", value_name = "DIR")]
    data_root: Option<PathBuf>,
}

/// Prints the web page's address with a one-time login code.
async fn url(args: &UrlArgs) -> Result<()> {
    let root = DataRoot::resolve(args.data_root.as_deref());
    let url = match &args.url {
        Some(url) => url.clone(),
        None => root.queue_url(DEFAULT_PORT),
    };
    println!("{}", farm_local::client::web_login_url(&url, &root).await?);
    Ok(())
}

/// The one variable naming the local queue's address, for every command (`queue serve`,
/// `queue url`, `agent`, the `local` farm).
pub const QUEUE_URL_ENV: &str = farm_local::config::QUEUE_URL_ENV;

/// `$FARM_QUEUE_URL`, when set.
fn queue_url_env() -> Option<String> {
    std::env::var(QUEUE_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// The port of a URL (`http://127.0.0.1:7600` -> 7600).
fn reqwest_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}
