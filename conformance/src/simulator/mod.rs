//! An in-memory scheduler simulator and its adapter, with deliberate flaws.
//!
//! [`SimScheduler`] plays the scheduler: it queues jobs, honours dependencies, runs each
//! task's commands for real through [`farm_core::exec`], and answers calls with JSON text in
//! its own vocabulary (`QUEUED`, `BLOCKED`, `RUNNING`, `DONE`, `ERROR`, `KILLED`).
//! [`SimFarm`] is the adapter: it sends calls, parses replies and maps native states onto
//! the five, with a reply timeout. The boundary is real, so a scheduler can be made to
//! forget jobs, reply garbage or fall silent ([`SchedulerControl`](crate::SchedulerControl)).
//!
//! Each [`Flaw`] breaks one contract clause; the suite's own tests run the check aimed at
//! each flaw and require it to fail, which proves every check can fail.
//!
//! The scheduler lives in `scheduler.rs`, the adapter in `adapter.rs`, the flaws and the
//! check each is aimed at in `flaws.rs`; this file holds the configuration and registers
//! the `simulator` adapter.

mod adapter;
mod flaws;
mod nodes;
mod scheduler;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use farm_core::{Capabilities, FarmError, FarmPlugin, InstallationMetadata};
use serde::Deserialize;

pub use adapter::SimFarm;
pub use flaws::{FLAW_TARGETS, Flaw};
pub use nodes::{NODE_CPUS, NODE_GPUS, NODE_MEMORY_MIB};
pub use scheduler::SimScheduler;

/// How the simulated farm behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Time a job spends queued before it may start.
    pub queue_delay: Duration,
    /// Tasks that may run at once, over all jobs.
    pub slots: usize,
    /// What the adapter claims (and enforces, unless flawed).
    pub capabilities: Capabilities,
    /// How long the adapter waits for a reply before `Unavailable`.
    pub reply_timeout: Duration,
    /// Where logs and staged files go; a temporary directory when `None`.
    pub state_dir: Option<PathBuf>,
    /// Shared staging root (the farm's `staging_root`); `<state_dir>/staging` when `None`.
    pub staging_root: Option<PathBuf>,
    /// Installation metadata and render environment.
    pub installation: Option<InstallationMetadata>,
    /// Deliberate contract breaches.
    pub flaws: HashSet<Flaw>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            queue_delay: Duration::from_millis(20),
            slots: 8,
            capabilities: Capabilities::ALL,
            reply_timeout: Duration::from_secs(2),
            state_dir: None,
            staging_root: None,
            installation: None,
            flaws: HashSet::new(),
        }
    }
}

impl SimulatorConfig {
    /// The default configuration with one flaw.
    pub fn with_flaw(flaw: Flaw) -> SimulatorConfig {
        let mut config = SimulatorConfig::default();
        config.flaws.insert(flaw);
        if flaw == Flaw::ActsWithoutCapabilities {
            config.capabilities = Capabilities::default();
        }
        if flaw == Flaw::CheckIgnoresCapability {
            config.capabilities.check = false;
        }
        config
    }
}

/// Settings of the `simulator` adapter in a farms file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Milliseconds a job stays queued (default 200).
    #[serde(default = "default_queue_delay_ms")]
    pub queue_delay_ms: u64,
    /// Tasks that run at once (default 2).
    #[serde(default = "default_slots")]
    pub slots: usize,
    /// Where logs go (default: a temporary directory).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

fn default_queue_delay_ms() -> u64 {
    200
}

fn default_slots() -> usize {
    2
}

/// Registers the `simulator` adapter: an in-memory farm that runs jobs on this machine for
/// as long as the process lives. For trying the CLI and for adapter authors.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        "simulator",
        "in-memory scheduler simulator running jobs on this machine (lives as long as the process)",
        |name, spec| {
            let settings: SimulatorSettings = spec.settings_as(name)?;
            let config = SimulatorConfig {
                queue_delay: Duration::from_millis(settings.queue_delay_ms),
                slots: settings.slots.max(1),
                state_dir: settings.state_dir,
                staging_root: spec.staging_root.clone(),
                installation: spec.installation.clone(),
                ..SimulatorConfig::default()
            };
            let farm = SimFarm::new(config)
                .map_err(|e| FarmError::io("cannot create the simulator's state directory", e))?;
            Ok(Arc::new(farm) as Arc<dyn FarmPlugin>)
        },
    );
}
