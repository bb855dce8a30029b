//! The generic HTTP scheduler adapter (`adapter: http`).
//!
//! Many render farms speak JSON over HTTP; few speak the same JSON. Rather than one
//! adapter per API, this crate has one engine and a *profile* per API: a YAML file saying
//! which method and path each operation uses, how the request is templated into a body
//! (values are injected as JSON values, never spliced into text), where the id, state,
//! times and log are in responses (JSON pointers), and how native states map onto the five.
//! Our own protocol (`docs/http-scheduler.openapi.yaml`, served by the local queue) is
//! just the built-in profile; a Deadline Web Service profile ships beside it.
//!
//! Why the shape:
//! - Everything a profile says is checked when it loads, with the line of the mistake,
//!   because a farm misconfigured at submit time fails at the worst moment.
//! - One function ([`parse::farm_error`]) turns HTTP outcomes into `FarmError`, so
//!   404/401/409/422/5xx mean the same thing for every profile and the server's words are
//!   kept.
//! - Retries happen only where repeating is harmless: reads, stop and start, and a submit
//!   the server deduplicates by `Idempotency-Key` (or that the adapter first looks up by
//!   render context). A lost answer to a submit therefore never makes a second job.
//! - Tokens are `SecretString`s: `Debug` redacts them and no message contains them.
//! - `render` is pure and is byte for byte what `submit` sends, so `farm render` works
//!   offline and shows the truth.

pub mod client;
pub mod config;
pub mod files;
pub mod parse;
pub mod plugin;
pub mod profile;
pub mod render;
pub mod template;

use std::sync::Arc;

pub use config::{HttpSettings, RetryPolicy};
pub use plugin::{ADAPTER, HttpFarm};
pub use profile::Profile;

/// Registers the `http` adapter.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "HTTP schedulers: our JSON protocol (the local queue), or any API a YAML profile describes",
        |name, spec| {
            Ok(Arc::new(HttpFarm::from_spec(name, spec)?) as Arc<dyn farm_core::FarmPlugin>)
        },
    );
}
