//! The shared machinery: what adapters use instead of writing it again. The meaning of a
//! request as tasks and steps (`plan`), as a bash program (`script`) and run here (`exec`,
//! and one task of it for farms whose own plug-in calls `farm run-task`: `run_task`);
//! command runners (local, ssh); the on-disk job journal; log tailing; the Katana
//! operations answered from configuration (`katana`, `staging`); the farms file and the
//! registry that builds farms from it. Everything here is public at the crate root
//! (`farm_core::journal`, `farm_core::Journal`, ...).

pub mod config;
pub mod exec;
pub mod journal;
pub mod katana;
pub mod plan;
pub mod registry;
pub mod run_task;
pub mod runner;
pub mod script;
pub mod secret;
pub mod staging;
pub mod tail;
