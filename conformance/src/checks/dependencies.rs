//! Dependencies: a dependent job waits for its dependency and never runs after it fails.

use farm_core::JobState;

use super::support::{expect_unsupported, submit_dependent, touch, touch_command, wait_for_go};
use crate::harness::{Context, Harness, Verdict};
use crate::{CheckResult, ensure};

/// A dependent job waits for its dependency to complete.
///
/// A job depending on a running one stays Waiting until that completes, then runs and
/// sees the dependency's output. Without the capability, submitting a dependency is
/// `Unsupported`.
pub async fn a_dependent_job_waits_for_its_dependency(h: &Harness) -> CheckResult {
    let (started, go, out) = (h.path("started"), h.path("go"), h.path("blocker-done"));
    let blocker_cmds = vec![wait_for_go(&started, &go), touch_command(&out)];
    let blocker = h.submit(&h.request("blocker", blocker_cmds)).await?;
    let mut dep = h.request(
        "dependent",
        vec![Harness::sh("[ -e \"$1\" ]", &[&out.display().to_string()])],
    );
    dep.depends_on = vec![blocker.clone()];
    if !h.caps().dependencies {
        touch(&go);
        let result = h.farm().submit(&dep).await;
        return expect_unsupported("submit with depends_on without the capability", result);
    }
    let dependent = h.submit(&dep).await?;
    h.wait_file(&started).await?;
    let state = h
        .farm()
        .job_state(&dependent)
        .await
        .context("job_state of the dependent")?;
    ensure!(
        state == JobState::Waiting,
        "the dependent is {state} while its dependency runs"
    );
    touch(&go);
    h.expect_end(&blocker, JobState::Completed).await?;
    h.expect_end(&dependent, JobState::Completed).await?;
    Ok(())
}

/// A job depending on a failed job never runs.
///
/// The dependent ends Cancelled or Failed without running its command.
pub async fn a_job_depending_on_a_failed_job_never_runs(h: &Harness) -> CheckResult {
    if !h.caps().dependencies {
        return Err(Verdict::NotApplicable(
            "covered by the Unsupported case of a_dependent_job_waits_for_its_dependency".into(),
        ));
    }
    let blocker = h
        .submit(&h.request("failing-dependency", vec![Harness::sh("exit 3", &[])]))
        .await?;
    let marker = h.path("dependent-ran");
    let dependent = submit_dependent(h, &blocker, &marker).await?;
    h.expect_end(&blocker, JobState::Failed).await?;
    let job = h.wait_terminal(&dependent).await?;
    ensure!(
        matches!(job.state, JobState::Cancelled | JobState::Failed),
        "the dependent ended {}",
        job.state
    );
    ensure!(
        !marker.exists(),
        "the dependent ran although its dependency failed"
    );
    Ok(())
}
