//! Open Job Description adapter: a request becomes an OpenJD job bundle
//! (`template.yaml` + `parameter_values.yaml`, spec `jobtemplate-2023-09`) that AWS Deadline
//! Cloud accepts and any OpenJD runtime runs.
//!
//! - [`render`]: the bundle, pure and golden-tested; the real `openjd check` validates every
//!   golden and thousands of adversarial requests in CI.
//! - Transport `local` (default): each job is a folder under the data root, run by a
//!   detached `openjd run` (the openjd-sessions runtime Deadline Cloud's workers use) that
//!   outlives the `farm` process; state, log and attempt live in the folder.
//! - Transport `deadline-cloud`: the official `deadline` CLI (`bundle submit`, `job get`,
//!   `job cancel`, `job requeue-tasks`, `job logs`) through a `CommandRunner`.
//!
//! `docs/openjd.md` explains the mapping and its limits; `docs/state-mapping.md` the states.

pub mod client;
pub mod config;
pub mod parse;
pub mod plugin;
pub mod render;

use std::sync::Arc;

pub use config::{OpenJdSettings, Transport};
pub use plugin::{ADAPTER, OpenJdFarm};

/// One-line summary for `farm adapters`.
pub const SUMMARY: &str =
    "Open Job Description bundles: run locally by `openjd run` or submitted to AWS Deadline Cloud";

/// Builds an `openjd` farm from its farms-file entry (the registry's factory).
pub fn factory(
    name: &str,
    spec: &farm_core::FarmSpec,
) -> farm_core::Result<Arc<dyn farm_core::FarmPlugin>> {
    Ok(Arc::new(OpenJdFarm::from_spec(name, spec)?) as Arc<dyn farm_core::FarmPlugin>)
}

/// Registers the `openjd` adapter.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(ADAPTER, SUMMARY, factory);
}
