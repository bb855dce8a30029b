//! Slurm adapter: sbatch scripts, the CLI (sbatch, squeue, sacct, scancel) and slurmrestd
//! transports.
//!
//! Why it is shaped this way:
//!
//! - **One job, one Slurm id.** A request's chunks become one job array whose indices are
//!   chunk indices (`0..n-1`), not frame numbers, so frame 1001 never meets
//!   `MaxArraySize`. The array's id is the job's id; its state combines the tasks'.
//! - **Slurm is the source of truth, and forgets.** Name, tags, render context and shape
//!   travel in the job (`--job-name`, `--comment`), so listing, idempotent submit and
//!   re-attaching work from Slurm alone. After `MinJobAge` slurmctld drops finished jobs:
//!   the adapter then asks `sacct`, the `jobcomp/filetxt` log, and finally its own journal
//!   of the jobs it submitted, so a forgotten job is reported as it ended, or as lost —
//!   never as completed, never as unknown.
//! - **Quoting is a boundary between three parsers.** bash runs the task body (quoted by
//!   `farm_core::script`), sbatch's directive parser reads `#SBATCH` values (double-quoted
//!   with `\` escapes, verified against the real sbatch), slurmd expands output paths
//!   (`%` doubled, backslashes refused). See [`render`].
//! - **A slurmctld restart is not a job's end.** Slurm 22.05 reports a slurmctld it cannot
//!   reach as `errors[]` in a listing (`squeue --json` exits 0) or, from slurmrestd, as
//!   "Unable to find JobId"; [`client::to_farm_error`] makes both `Unavailable`, so a poller
//!   keeps polling instead of reporting a running job lost or unknown.
//! - **Render is what submit sends**, for both transports: the sbatch script goes to
//!   `sbatch --parsable` on stdin; for slurmrestd the render is the `job/submit` body.
//! - **Every command goes through a `CommandRunner`**, so the CLI works over ssh and tests
//!   replace Slurm with a simulator; the REST token only ever sits in a sensitive header.
//!
//! `docs/slurm.md` describes settings and operation; `docs/state-mapping.md` the states.

pub mod client;
pub mod config;
pub mod journal;
pub mod parse;
pub mod plugin;
pub mod render;

use std::sync::Arc;

pub use config::{Accounting, SlurmSettings, SshSettings, Transport};
pub use plugin::{ADAPTER, SlurmFarm};
pub use render::{FarmComment, RenderOptions};

/// Registers the `slurm` adapter.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "Slurm through sbatch/squeue/sacct/scancel (locally or over ssh) or slurmrestd",
        |name, spec| {
            Ok(Arc::new(SlurmFarm::from_spec(name, spec)?) as Arc<dyn farm_core::FarmPlugin>)
        },
    );
}
