//! Asking the farm before submitting: an impossible request is refused in the scheduler's
//! words, a valid one passes, and asking creates nothing.

use farm_core::{FarmError, JobFilter, JobId, JobRequest, MemorySize};

use super::support::expect_unsupported;
use crate::harness::{Context, Harness, Verdict, run_tag};
use crate::{CheckResult, ensure, fail};

/// CPUs of the impossible request: the most local validation lets through.
pub const IMPOSSIBLE_CPUS: u32 = 100_000;

/// Memory of the impossible request, in MiB: 64 TiB, the most local validation lets through.
pub const IMPOSSIBLE_MEMORY_MIB: u64 = 64 * 1024 * 1024;

/// A request no farm can ever run: valid locally, but beyond any node (100000 CPUs and 64T
/// of memory per task).
pub fn impossible_request(h: &Harness) -> JobRequest {
    let mut req = h.request("impossible", vec![Harness::sh("true", &[])]);
    req.resources.cpus = Some(IMPOSSIBLE_CPUS);
    req.resources.memory = Some(MemorySize::from_mib(IMPOSSIBLE_MEMORY_MIB));
    req
}

/// A request a farm that runs anything can run: one CPU, `true`.
fn runnable_request(h: &Harness) -> JobRequest {
    let mut req = h.request("runnable", vec![Harness::sh("true", &[])]);
    req.resources.cpus = Some(1);
    req
}

/// A request the farm can never run is refused by check.
///
/// `check` of a request for 100000 CPUs and 64T of memory fails with `InvalidRequest`
/// whose message is not empty (the scheduler's own words). Not applicable when the adapter
/// declares that its check does not know the farm's resources (`check_resources` off).
pub async fn a_request_the_farm_can_never_run_is_refused_by_check(h: &Harness) -> CheckResult {
    let req = impossible_request(h);
    if !h.caps().check {
        return expect_unsupported("check without the capability", h.farm().check(&req).await);
    }
    if !h.caps().check_resources {
        return Err(Verdict::NotApplicable(
            "the adapter declares that its check does not know the farm's resources \
             (check_resources is off), so it cannot tell that 100000 CPUs can never run"
                .into(),
        ));
    }
    match h.farm().check(&req).await {
        Err(FarmError::InvalidRequest { field, problem }) => {
            ensure!(
                !problem.trim().is_empty(),
                "the refusal of {field} says nothing"
            );
        }
        Err(e) => fail!("expected InvalidRequest, got {} error: {e}", e.kind()),
        Ok(report) => fail!(
            "check accepted a request for {IMPOSSIBLE_CPUS} CPUs and 64T of memory: {report:?}"
        ),
    }
    Ok(())
}

/// A request the farm can run passes check.
///
/// `check` of a one-CPU `true` job returns a report whose message is not empty.
pub async fn a_request_the_farm_can_run_passes_check(h: &Harness) -> CheckResult {
    let req = runnable_request(h);
    if !h.caps().check {
        return expect_unsupported("check without the capability", h.farm().check(&req).await);
    }
    let report = h.farm().check(&req).await.context("check")?;
    ensure!(
        !report.message.trim().is_empty(),
        "check passed with an empty message: {report:?}"
    );
    Ok(())
}

/// Checking a request creates no job.
///
/// The run's jobs listed before and after checking a runnable and an impossible request
/// are the same, no job carries either name, and (on a simulated scheduler) nothing was
/// submitted. Not applicable without `list_jobs` on a real scheduler.
pub async fn checking_a_request_creates_no_job(h: &Harness) -> CheckResult {
    let runnable = runnable_request(h);
    let impossible = impossible_request(h);
    if !h.caps().check {
        return expect_unsupported(
            "check without the capability",
            h.farm().check(&runnable).await,
        );
    }
    let control = h.control().ok();
    if !h.caps().list_jobs && control.is_none() {
        return Err(Verdict::NotApplicable(
            "without list_jobs or a simulated scheduler nothing can show what check created".into(),
        ));
    }
    let sent_before = match control {
        Some(c) => c.last_submission().await,
        None => None,
    };
    let before = run_jobs(h).await?;
    let _ = h.farm().check(&runnable).await;
    let _ = h.farm().check(&impossible).await;
    let after = run_jobs(h).await?;
    if let Some(c) = control {
        ensure!(
            c.last_submission().await == sent_before,
            "check submitted a job to the scheduler"
        );
    }
    if let (Some(before), Some(after)) = (before, after) {
        let new: Vec<&(JobId, String)> = after.iter().filter(|j| !before.contains(j)).collect();
        ensure!(new.is_empty(), "check created jobs: {new:?}");
        let named: Vec<&(JobId, String)> = after
            .iter()
            .filter(|(_, name)| *name == runnable.name || *name == impossible.name)
            .collect();
        ensure!(
            named.is_empty(),
            "jobs named after the checked requests exist: {named:?}"
        );
    }
    Ok(())
}

/// The run's jobs as `(id, name)`, or `None` without `list_jobs`. Listed after one poll
/// interval, so a job a flawed check created a moment late is seen too.
async fn run_jobs(h: &Harness) -> Result<Option<Vec<(JobId, String)>>, Verdict> {
    if !h.caps().list_jobs {
        return Ok(None);
    }
    let filter = JobFilter {
        tag: Some(run_tag(h.run_id())),
        ..Default::default()
    };
    tokio::time::sleep(h.settings().poll_interval).await;
    let jobs = h.farm().list_jobs(&filter).await.context("list_jobs")?;
    Ok(Some(jobs.into_iter().map(|j| (j.id, j.name)).collect()))
}
