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

pub mod command;
pub mod config;
pub mod error;
pub mod exec;
pub mod frames;
pub mod installation;
pub mod job;
pub mod journal;
pub mod plan;
pub mod plugin;
pub mod registry;
pub mod request;
pub mod resources;
pub mod run_task;
pub mod runner;
pub mod script;
pub mod secret;
pub mod staging;
pub mod state;

pub use command::{Command, Placeholder};
pub use config::{CommonSettings, FarmSpec, FarmsConfig};
pub use error::{ErrorKind, FarmError, Result};
pub use frames::{Chunk, FrameSet, FrameSetError};
pub use installation::InstallationMetadata;
pub use job::{
    EpochMillis, Job, JobFilter, JobId, LogChunk, Progress, now_millis, utf8_complete_len,
};
pub use journal::{Journal, JournalEntry};
pub use plan::{Step, Task};
pub use plugin::{Capabilities, FarmPlugin, FarmPluginExt, RenderedFile, RenderedJob, WaitOptions};
pub use registry::{AdapterFactory, AdapterRegistry};
pub use request::{JobRequest, RenderType, Repeat};
pub use resources::{MemorySize, Resources, TimeLimit};
pub use run_task::{RunTaskOptions, TaskReport};
pub use runner::{CommandOutput, CommandRunner, LocalRunner, SshRunner};
pub use staging::SharedStaging;
pub use state::JobState;

/// Re-exported so adapters and tests name the same versions.
pub use async_trait::async_trait;
pub use uuid::Uuid;
