//! The `local` adapter: the farm on this machine, the local queue (package `farm-queue`).
//!
//! The queue speaks exactly `docs/http-scheduler.openapi.yaml`, so this adapter *is* the
//! HTTP adapter ([`farm_http::HttpFarm`]) plus what a farm on this machine can do for its
//! user:
//! - **Discovery.** It finds the queue's URL and token in the queue's data root
//!   ([`farm_queue::DataRoot`]), so a fresh machine needs no configuration ([`config`]).
//! - **Autostart.** When no queue answers at a loopback URL it starts one in the background
//!   (`farm queue serve`, exiting when idle) with an allowlist of the caller's environment,
//!   so jobs get no one else's secrets ([`client`]).
//! - **Trust no port.** Before the token is sent anywhere the server must prove it holds it
//!   ([`client::authenticate`]): while a queue is stopped, any local user may listen on its
//!   port.
//! - **Staging** goes to the data root when no shared staging root is configured
//!   ([`LocalQueue`]).

pub mod client;
pub mod config;
pub mod plugin;

use std::sync::Arc;

pub use config::LocalSettings;
pub use farm_queue::DataRoot;
pub use plugin::{ADAPTER, LocalQueue};

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
