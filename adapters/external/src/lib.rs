//! External adapters: a farm implemented by another program, in any language, spoken to as
//! JSON lines over its standard input and output (`docs/external-adapters.md`).
//!
//! The bridge validates requests and enforces capabilities itself, so an external adapter
//! gets only valid requests, already expanded into tasks and concrete argv per step; it
//! needs no frame-set parser and no placeholder logic of its own. A child that dies is
//! restarted on the next call; a child that does not answer in time gives `Unavailable`.
//!
//! Shaped like every adapter: [`config`] (settings), [`render`] (the wire tasks), [`parse`]
//! (replies and protocol errors), [`client`] (the process and its pipes, the only I/O) and
//! [`plugin`] (the trait). [`katana`] builds on it: `adapter: katana-plugin`, a Katana farm
//! plug-in run by the embedded plug-in host.

pub mod client;
pub mod config;
pub mod katana;
pub mod parse;
pub mod plugin;
pub mod render;

use std::sync::Arc;

pub use config::ExternalSettings;
pub use katana::KatanaPluginSettings;
pub use plugin::{ADAPTER, ExternalFarm};
pub use render::{WireStep, WireTask, wire_tasks};

/// The protocol version this bridge speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Registers `adapter: external`.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "a farm implemented by another program, spoken to as JSON lines over stdio",
        |name, spec| {
            Ok(Arc::new(ExternalFarm::from_spec(name, spec)?) as Arc<dyn farm_core::FarmPlugin>)
        },
    );
}
