//! HTCondor adapter: submit description files and the `condor_*` command line.
//!
//! Why it is shaped this way:
//!
//! - **The submit language is a minefield**, so nothing is written into a submit file that
//!   HTCondor's own parser has not been shown to carry exactly: argv and environment use the
//!   new quoting syntax, `$` is escaped with the parity rules of macro expansion, and values
//!   the language cannot carry at all (line breaks, `$$(`, a literal `$(DOLLAR)`) go through
//!   a generated bash wrapper instead ([`syntax`], [`render`]). A test selected by
//!   `FARM_TEST_HTCONDOR_PYTHON` runs every rendered file through the `htcondor==24.0.24`
//!   wheel's `Submit.jobs()` and decodes the job ads it builds.
//! - **A cluster is a job.** One request is one cluster, one chunk one proc, so the job id is
//!   the cluster id and `condor_rm`/`condor_hold`/`condor_release` act on the whole job.
//! - **Jobs leave the queue.** Finished procs vanish from `condor_q`; the adapter falls back
//!   to `condor_history`, then to the job's user log, and only a job that it submitted and
//!   that no record knows any more is reported lost ([`parse`]). Every `farm` command is a
//!   new process, so what the adapter knows about the clusters it submitted (identity, user
//!   log, last terminal state) lives in an on-disk [`journal`], not in memory.
//! - **State mapping is data** ([`parse::JOB_STATUS`]): Completed is a success only with
//!   exit code 0 and no signal; a hold is Waiting, never Running, and turns Failed after
//!   `hold_timeout`.
//! - **Every command goes through a [`farm_core::CommandRunner`]** ([`client`]), so the same
//!   adapter drives a local schedd, a submit host over ssh, or a simulator in tests.
//!
//! The user guide is `docs/htcondor.md`; the state table is in `docs/state-mapping.md`.

pub mod client;
pub mod config;
pub mod journal;
pub mod parse;
pub mod plugin;
pub mod render;
pub mod syntax;
pub mod vocabulary;

use std::sync::Arc;

pub use config::CondorSettings;
pub use plugin::{ADAPTER, CondorFarm};

/// Registers the `htcondor` adapter.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "HTCondor through condor_submit/condor_q/condor_history, locally or over ssh",
        |name, spec| Ok(Arc::new(CondorFarm::from_spec(name, spec)?)),
    );
}
