//! The reference local queue: what a new user runs first (`farm queue serve`, or started on
//! demand by the `local` adapter), the yardstick every other adapter is compared with, and a
//! real server for the HTTP adapter's conformance run.
//!
//! Why it is built this way:
//! - **One protocol.** The server speaks exactly `docs/http-scheduler.openapi.yaml`
//!   ([`api`]), so whatever works against the local queue works against any server of that
//!   protocol, and the other way round. Its clients are the `local` and `http` adapters.
//! - **Durable by construction.** Jobs, tasks, attempts, agents and transitions live in
//!   SQLite ([`store`]); each change is one transaction that also re-derives the job's state
//!   from its tasks ([`state`]). Killing the server loses nothing: queued work stays queued,
//!   agents keep running their tasks and report once it is back, and anything that cannot
//!   be re-attached is requeued or failed as `lost` — no job stays Running forever.
//! - **Agents are separate processes** ([`agent`]), local ones launched and replaced by the
//!   server ([`supervisor`]), remote ones started by hand or over ssh ([`remote`]). They
//!   speak the agent protocol ([`wire`] on both sides, [`agent_api`] on the server's), upload
//!   output by byte offset, so no shared file system is needed, and never start a task the
//!   server has taken back.
//! - **Tokens everywhere.** Any local user could otherwise run commands as you through a
//!   loopback port, so clients and agents each need a token, generated in the data root
//!   ([`data_root`]). For the same reason a client trusts the port no more than that: the
//!   server proves it holds the token before it is sent, and the web page logs in with
//!   single-use codes, never a token in an address ([`auth`]).
//! - **Jobs get no one else's secrets.** No agent or task ever carries a credential
//!   variable ([`supervisor`]).
//!
//! The `farm` command line runs it: `farm queue serve`, `farm agent`, `farm agents`.

pub mod agent;
pub mod agent_api;
pub mod api;
pub mod auth;
pub mod data_root;
pub mod outputs;
pub mod placement;
pub mod problem;
pub mod remote;
pub mod server;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod web;
pub mod wire;

pub use data_root::DataRoot;
pub use server::{DEFAULT_PORT, RunningServer, ServerConfig, start};
