//! The words render, parse, client and plugin share: the custom attributes a job carries,
//! the job directory and its files, and what a job id and a job directory may be. It sits
//! below all of them (it needs only [`crate::syntax`]), so none of them has to import
//! another for a name.

use farm_core::{JobId, JobRequest};

use crate::syntax;

/// The submit description's file name in the job directory.
pub const SUBMIT_FILE: &str = "job.sub";
/// The wrapper script's file name.
pub const WRAPPER_FILE: &str = "task.sh";
/// HTCondor's per-job user (event) log.
pub const USER_LOG_FILE: &str = "condor.log";

/// Custom job attributes the adapter sets and reads back.
pub mod attr {
    /// The request's name, percent-encoded ([`crate::syntax::percent_encode`]).
    pub const NAME: &str = "FarmName";
    /// The render context (idempotency key).
    pub const RENDER_CONTEXT: &str = "FarmRenderContext";
    /// Tags, comma-separated (tags never hold commas).
    pub const TAGS: &str = "FarmTags";
    /// Which run of the job this cluster is, from 1.
    pub const ATTEMPT: &str = "FarmAttempt";
    /// Procs in the cluster (tasks of the request).
    pub const TASKS: &str = "FarmTasks";
    /// Frames in the request.
    pub const FRAMES: &str = "FarmFrames";
    /// Frames per task.
    pub const CHUNK_SIZE: &str = "FarmChunkSize";
    /// The cluster a restart replaced.
    pub const RESTART_OF: &str = "FarmRestartOf";
}

/// Where one job's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLayout {
    dir: String,
}

impl JobLayout {
    /// `<log_directory>/<render context>`, the request's log directory first, else the
    /// farm's (`settings.log_directory`).
    pub fn for_request(request: &JobRequest, log_directory: &str) -> JobLayout {
        let base = request.log_directory.as_deref().unwrap_or(log_directory);
        // HTCondor collapses runs of separators in the user log path (`UserLog`); do the
        // same so the paths the adapter computes are the ones HTCondor uses.
        let mut collapsed = String::with_capacity(base.len());
        for c in base.chars() {
            if !(c == '/' && collapsed.ends_with('/')) {
                collapsed.push(c);
            }
        }
        let base = collapsed.trim_end_matches('/');
        JobLayout {
            dir: format!("{base}/{}", request.render_context),
        }
    }

    /// The layout of a job whose user log is at `user_log` (the `UserLog` attribute).
    pub fn from_user_log(user_log: &str) -> Option<JobLayout> {
        let dir = user_log.strip_suffix(USER_LOG_FILE)?.strip_suffix('/')?;
        (!dir.is_empty()).then(|| JobLayout {
            dir: dir.to_owned(),
        })
    }

    /// The job directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// A file in the job directory.
    pub fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// HTCondor's user log.
    pub fn user_log(&self) -> String {
        self.file(USER_LOG_FILE)
    }

    /// The render log of the attempt running as `cluster`.
    pub fn render_log(&self, cluster: u32) -> String {
        self.file(&format!("render.{cluster}.log"))
    }
}

/// Why a job directory cannot hold HTCondor's files at the path the adapter computes.
pub fn check_directory(dir: &str) -> std::result::Result<(), &'static str> {
    syntax::check_value(dir)?;
    if dir.contains('\\') {
        // HTCondor rewrites `\` next to `/` in the user log path (Windows separators).
        return Err(
            "contains a backslash, which HTCondor treats as a path separator in `log` paths",
        );
    }
    Ok(())
}

/// The cluster id a job id names: a positive decimal `int` without leading zeros. Anything
/// else names no HTCondor job.
pub fn cluster_id(id: &JobId) -> Option<u32> {
    let s = id.as_str();
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse::<u32>().ok().filter(|n| *n <= i32::MAX as u32)
}
