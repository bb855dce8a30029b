//! A misbehaving scheduler: forgotten jobs, garbage replies and silence (needs fault injection).

use farm_core::{ErrorKind, JobState};

use super::support::{expect_kind, touch, wait_for_go};
use crate::harness::{Context, Harness};
use crate::{CheckResult, ensure, fail};

/// A job the scheduler forgets still ends, as Failed and lost.
///
/// When the scheduler loses every record of a running job, the adapter reports it
/// Failed with a reason mentioning `lost`, never Completed and never Running forever.
pub async fn a_job_the_scheduler_forgets_ends_failed_as_lost(h: &Harness) -> CheckResult {
    let control = h.control()?;
    let (started, go) = (h.path("started"), h.path("go"));
    let id = h
        .submit(&h.request("forgotten", vec![wait_for_go(&started, &go)]))
        .await?;
    h.wait_file(&started).await?;
    h.wait_state(&id, JobState::Running).await?;
    control.forget(&id).await;
    touch(&go);
    let job = h.wait_terminal(&id).await?;
    ensure!(
        job.state == JobState::Failed,
        "a forgotten job ended {}",
        job.state
    );
    let reason = job.reason.unwrap_or_default();
    ensure!(
        reason.contains("lost"),
        "reason {reason:?} does not say the job was lost"
    );
    Ok(())
}

/// Garbage from the scheduler is an error, never a state.
///
/// When the scheduler's next reply is unparseable, `job` returns a `Scheduler` or
/// `Unavailable` error; the following call works again.
pub async fn garbage_from_the_scheduler_is_an_error_not_a_state(h: &Harness) -> CheckResult {
    let control = h.control()?;
    let id = h
        .submit(&h.request("garbage", vec![Harness::sh("true", &[])]))
        .await?;
    h.wait_terminal(&id).await?;
    control.garble_replies(1).await;
    match h.farm().job(&id).await {
        Err(e) if matches!(e.kind(), ErrorKind::Scheduler | ErrorKind::Unavailable) => {}
        Err(e) => fail!("garbage gave a {} error: {e}", e.kind()),
        Ok(job) => fail!("garbage was read as a job in state {}", job.state),
    }
    h.farm().job(&id).await.context("job after the garbage")?;
    Ok(())
}

/// A scheduler that does not answer gives Unavailable.
///
/// When the scheduler's next reply never comes, `job` returns `Unavailable` (a
/// retryable error) within the check's deadline.
pub async fn a_silent_scheduler_gives_unavailable(h: &Harness) -> CheckResult {
    let control = h.control()?;
    let id = h
        .submit(&h.request("silent", vec![Harness::sh("true", &[])]))
        .await?;
    h.wait_terminal(&id).await?;
    control.stall_replies(1).await;
    let result = tokio::time::timeout(h.settings().job_timeout, h.farm().job(&id)).await;
    match result {
        Err(_) => fail!(
            "job() hung for {:?} on a silent scheduler",
            h.settings().job_timeout
        ),
        Ok(r) => expect_kind("job() on a silent scheduler", r, ErrorKind::Unavailable),
    }
}
