//! The contract: what an adapter implements and what callers hold. The trait and its
//! `# Behavior` lists, the types it speaks, the one error enum, requests and their
//! validation, frame sets. Everything here is public at the crate root
//! (`farm_core::plugin`, `farm_core::FarmPlugin`, ...). Nothing here runs a command or
//! keeps state (reading a request file is the one I/O), so it can stay small and stable
//! while the machinery changes.

pub mod command;
pub mod error;
pub mod frames;
pub mod installation;
pub mod job;
pub mod plugin;
pub mod request;
pub mod resources;
pub mod state;
