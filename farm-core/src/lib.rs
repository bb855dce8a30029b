//! The core of the render-farm bridge: one trait, [`FarmPlugin`], modelled on Katana's
//! `FarmAPI.BaseFarmPlugin`, the types it speaks, and the machinery every adapter shares.
//!
//! - [`JobState`]: the five states every scheduler is mapped onto.
//! - [`JobRequest`]: what to run (argv commands, frames, environment, resources), loaded from
//!   YAML or JSON and validated with errors naming the field.
//! - [`Job`], [`JobFilter`], [`LogChunk`]: what farms report.
//! - [`FarmError`]: the one error type, with a [`kind`](FarmError::kind) for branching.
//! - [`FrameSet`]: `1-100x5`-style frame sets and their chunking.
//! - [`plan`], [`script`], [`exec`]: the reference meaning of a request, the bash program
//!   Slurm and HTCondor run, and a local executor.
//! - [`SharedStaging`], [`config`], [`AdapterRegistry`]: staging, the farms file, and building
//!   `Arc<dyn FarmPlugin>` from it.
//! - [`Journal`]: what an adapter submitted, kept on disk so the next `farm` process still
//!   knows a job the scheduler forgot.
//! - [`KatanaServices`], [`tail`]: the Katana operations answered from configuration and
//!   render-log tailing, so adapters implement only what is scheduler-specific.
//!
//! The source keeps the two halves apart: `src/contract/` is what adapters implement and
//! callers hold (trait, types, errors, requests, frames, validation); `src/machinery/` is
//! what adapters share (plan, script, exec, runner, journal, staging, tailing,
//! configuration). Both are public here, at the crate root, module by module.

mod contract;
mod machinery;

pub use contract::{command, error, frames, installation, job, plugin, request, resources, state};
pub use machinery::{
    config, exec, journal, katana, plan, registry, run_task, runner, script, secret, staging, tail,
};

pub use command::{Command, Placeholder};
pub use config::{CommonSettings, FarmSpec, FarmsConfig};
pub use error::{ErrorKind, FarmError, Result};
pub use frames::{Chunk, FrameSet, FrameSetError};
pub use installation::InstallationMetadata;
pub use job::{EpochMillis, Job, JobFilter, JobId, LogChunk, Progress, now_millis};
pub use journal::{Journal, JournalEntry};
pub use katana::KatanaServices;
pub use plan::{Step, Task};
pub use plugin::{
    Capabilities, CheckReport, FarmPlugin, FarmPluginExt, RenderedFile, RenderedJob, WaitOptions,
};
pub use registry::{AdapterFactory, AdapterRegistry};
pub use request::{JobRequest, RenderType, Repeat};
pub use resources::{MemorySize, Resources, TimeLimit};
pub use run_task::{RunTaskOptions, TaskReport};
pub use runner::{CommandOutput, CommandRunner, LocalRunner, SshRunner};
pub use staging::SharedStaging;
pub use state::JobState;
pub use tail::utf8_complete_len;

/// Re-exported so adapters and tests name the same versions.
pub use async_trait::async_trait;
pub use uuid::Uuid;
