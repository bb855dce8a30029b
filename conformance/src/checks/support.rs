//! Helpers the checks share: error-kind expectations and probe jobs that wait for a signal.

use std::path::Path;

use farm_core::{Command, ErrorKind, FarmError, JobId};

use crate::harness::{Harness, Verdict};
use crate::{CheckResult, fail};

/// Passes when `result` is an error of `kind`; `what` names the call in the failure.
pub(super) fn expect_kind<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, FarmError>,
    kind: ErrorKind,
) -> CheckResult {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => fail!(
            "{what}: expected a {kind} error, got {} error: {e}",
            e.kind()
        ),
        Ok(v) => fail!("{what}: expected a {kind} error, got Ok({v:?})"),
    }
}

/// A probe job that appends its pid to `started`, then waits (up to 10 minutes) until the
/// file `go` exists.
pub(super) fn wait_for_go(started: &Path, go: &Path) -> Command {
    Harness::sh(
        "echo \"$$\" >> \"$1\"; n=0; while [ ! -e \"$2\" ] && [ \"$n\" -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; [ -e \"$2\" ]",
        &[&started.display().to_string(), &go.display().to_string()],
    )
}

/// Releases the probe jobs waiting for `path` (see [`wait_for_go`]).
pub(super) fn touch(path: &Path) {
    let _ = std::fs::write(path, b"go");
}

/// Passes when `result` is `Unsupported`: what an operation whose capability is off gives.
pub(super) fn expect_unsupported<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, FarmError>,
) -> CheckResult {
    expect_kind(what, result, ErrorKind::Unsupported)
}

/// A probe command that creates `path`, proof that it ran.
pub(super) fn touch_command(path: &Path) -> Command {
    Harness::sh("touch \"$1\"", &[&path.display().to_string()])
}

/// Submits a job depending on `blocker` that creates `marker` if it ever runs.
pub(super) async fn submit_dependent(
    h: &Harness,
    blocker: &JobId,
    marker: &Path,
) -> Result<JobId, Verdict> {
    let mut dependent = h.request("dependent", vec![touch_command(marker)]);
    dependent.depends_on = vec![blocker.clone()];
    h.submit(&dependent).await
}
