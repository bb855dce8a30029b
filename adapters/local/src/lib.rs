//! The reference local queue: what a new user runs first, the yardstick every other adapter
//! is compared with, and a real server for the HTTP adapter's conformance run.
//!
//! Why it is built this way:
//! - **One protocol.** The server speaks exactly `docs/http-scheduler.openapi.yaml`, and the
//!   `local` adapter *is* the HTTP adapter plus "start a queue when none answers"
//!   ([`LocalQueue`]). Whatever works against the local queue works against any server of
//!   that protocol, and the other way round.
//! - **Durable by construction.** Jobs, tasks, attempts, agents and transitions live in
//!   SQLite ([`store`]); each change is one transaction that also re-derives the job's state
//!   from its tasks ([`state`]). Killing the server loses nothing: queued work stays queued,
//!   agents keep running their tasks and report once it is back, and anything that cannot
//!   be re-attached is requeued or failed as `lost` — no job stays Running forever.
//! - **Agents are separate processes** ([`agent`]), local ones launched and replaced by the
//!   server ([`supervisor`]), remote ones started by hand or over ssh ([`remote`]). They
//!   upload output by byte offset, so no shared file system is needed, and they never start
//!   a task the server has taken back.
//! - **Tokens everywhere.** Any local user could otherwise run commands as you through a
//!   loopback port, so clients and agents each need a token, generated in the data root
//!   ([`data_root`]) and read from there by the adapter. For the same reason a client
//!   trusts the port no more than that: the server must prove it holds the token before
//!   it is sent, and the web page logs in with single-use codes, never a token in an
//!   address ([`auth`]).
//! - **Jobs get no one else's secrets.** A queue the adapter starts on demand keeps only an
//!   allowlist of the caller's environment ([`client`]), and no agent or task ever carries
//!   a credential variable.
//!
//! Entry points for the `farm` command line are in [`cli`].

pub mod agent;
pub mod agent_api;
pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod data_root;
pub mod plugin;
pub mod remote;
pub mod server;
pub mod state;
pub mod store;
pub mod supervisor;

use std::sync::Arc;

pub use config::LocalSettings;
pub use data_root::DataRoot;
pub use plugin::{ADAPTER, LocalQueue};
pub use server::{RunningServer, ServerConfig};

/// Registers the `local` adapter.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "the local queue on this machine (started on demand), with local and remote agents",
        |name, spec| {
            let settings: LocalSettings = spec.settings_as(name)?;
            let farm = LocalQueue::new(settings, spec.common())?.with_name(name);
            Ok(Arc::new(farm) as Arc<dyn farm_core::FarmPlugin>)
        },
    );
}
