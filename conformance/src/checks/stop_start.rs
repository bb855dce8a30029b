//! Stopping and starting jobs: `stop` cancels and kills, `start` runs a finished job again
//! as a new attempt.

use std::time::Duration;

use farm_core::JobState;

use super::support::{expect_unsupported, submit_dependent, touch, wait_for_go};
use crate::harness::{Context, Harness, Verdict, read_probe};
use crate::{CheckResult, ensure};

/// Stopping a running job cancels it and its processes stop.
///
/// A job appending a heartbeat every 0.1 s is stopped while Running: it ends Cancelled
/// and the heartbeat stops growing.
pub async fn stopping_a_running_job_cancels_it_and_kills_its_processes(h: &Harness) -> CheckResult {
    let beat = h.path("heartbeat");
    let req = h.request(
        "heartbeat",
        vec![Harness::sh(
            "n=0; while [ \"$n\" -lt 6000 ]; do echo beat >> \"$1\"; sleep 0.1; n=$((n+1)); done",
            &[&beat.display().to_string()],
        )],
    );
    let id = h.submit(&req).await?;
    if !h.caps().stop {
        let result = h.farm().stop(&id).await;
        return expect_unsupported("stop without the stop capability", result);
    }
    h.wait_file(&beat).await?;
    h.farm().stop(&id).await.context("stop")?;
    h.expect_end(&id, JobState::Cancelled).await?;
    let mut last = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
    let mut stable_since = tokio::time::Instant::now();
    h.wait_for("the heartbeat to stop after Cancelled", || {
        let now_len = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
        let moved = now_len != last;
        last = now_len;
        if moved {
            stable_since = tokio::time::Instant::now();
        }
        let quiet = stable_since.elapsed();
        async move {
            if quiet >= Duration::from_millis(1500) {
                Ok(Some(()))
            } else {
                Err(format!("still beating ({now_len} bytes)"))
            }
        }
    })
    .await
}

/// Stopping a waiting job cancels it before it runs.
///
/// A job held Waiting behind an unfinished dependency is stopped: it ends Cancelled and
/// its command never runs, even after the dependency finishes.
pub async fn stopping_a_waiting_job_cancels_it_before_it_runs(h: &Harness) -> CheckResult {
    let caps = h.caps();
    if !caps.dependencies {
        return Err(Verdict::NotApplicable(
            "needs dependencies to hold a job in Waiting".into(),
        ));
    }
    let (started, go) = (h.path("blocker-started"), h.path("go"));
    let blocker = h
        .submit(&h.request("blocker", vec![wait_for_go(&started, &go)]))
        .await?;
    let marker = h.path("dependent-ran");
    let dependent = submit_dependent(h, &blocker, &marker).await?;
    if !caps.stop {
        let result = h.farm().stop(&dependent).await;
        touch(&go);
        return expect_unsupported("stop without the stop capability", result);
    }
    let state = h.farm().job_state(&dependent).await.context("job_state")?;
    ensure!(
        state == JobState::Waiting,
        "the dependent job is {state} while its dependency runs"
    );
    h.farm()
        .stop(&dependent)
        .await
        .context("stop of a waiting job")?;
    h.expect_end(&dependent, JobState::Cancelled).await?;
    touch(&go);
    h.expect_end(&blocker, JobState::Completed).await?;
    ensure!(!marker.exists(), "the stopped job ran anyway");
    Ok(())
}

/// Stopping a finished job is a no-op.
///
/// `stop` on a Completed job and on a Failed job succeeds and both keep their state.
pub async fn stopping_a_finished_job_is_a_no_op(h: &Harness) -> CheckResult {
    let ok = h
        .submit(&h.request("done-ok", vec![Harness::sh("true", &[])]))
        .await?;
    let bad = h
        .submit(&h.request("done-bad", vec![Harness::sh("exit 5", &[])]))
        .await?;
    h.expect_end(&ok, JobState::Completed).await?;
    h.expect_end(&bad, JobState::Failed).await?;
    if !h.caps().stop {
        return expect_unsupported("stop without the stop capability", h.farm().stop(&ok).await);
    }
    for (id, state) in [(&ok, JobState::Completed), (&bad, JobState::Failed)] {
        h.farm().stop(id).await.context("stop of a finished job")?;
        let after = h.farm().job(id).await.context("job after stop")?;
        ensure!(
            after.state == state,
            "stop turned a {state} job into {}",
            after.state
        );
    }
    Ok(())
}

/// Starting a failed job runs it again as a new attempt.
///
/// A job that fails on its first run and succeeds on its second is started again: its
/// `attempt` grows and it ends Completed.
pub async fn starting_a_failed_job_runs_a_new_attempt(h: &Harness) -> CheckResult {
    let flag = h.path("second-time");
    let id = h
        .submit(&h.request(
            "retry",
            vec![Harness::sh(
                "if [ -e \"$1\" ]; then exit 0; fi; touch \"$1\"; exit 3",
                &[&flag.display().to_string()],
            )],
        ))
        .await?;
    let first = h.expect_end(&id, JobState::Failed).await?;
    if !h.caps().start {
        return expect_unsupported(
            "start without the start capability",
            h.farm().start(&id).await,
        );
    }
    let new_id = h.farm().start(&id).await.context("start of a failed job")?;
    let second = h
        .wait_for("the restarted job to complete", || async {
            match h.farm().job(&new_id).await {
                Ok(j) if j.state == JobState::Completed => Ok(Some(j)),
                Ok(j) => Err(format!("{} attempt {}", j.state, j.attempt)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    ensure!(
        second.attempt > first.attempt,
        "attempt went from {} to {}",
        first.attempt,
        second.attempt
    );
    Ok(())
}

/// Starting a cancelled job runs it again.
///
/// A job stopped while Running is started again: it runs a new attempt and completes.
pub async fn starting_a_cancelled_job_runs_it_again(h: &Harness) -> CheckResult {
    let caps = h.caps();
    if !caps.stop {
        return Err(Verdict::NotApplicable(
            "needs stop to make a cancelled job".into(),
        ));
    }
    let (started, go) = (h.path("started"), h.path("go"));
    let id = h
        .submit(&h.request("cancel-then-start", vec![wait_for_go(&started, &go)]))
        .await?;
    h.wait_file(&started).await?;
    h.farm().stop(&id).await.context("stop")?;
    let first = h.expect_end(&id, JobState::Cancelled).await?;
    if !caps.start {
        return expect_unsupported(
            "start without the start capability",
            h.farm().start(&id).await,
        );
    }
    touch(&go);
    let new_id = h
        .farm()
        .start(&id)
        .await
        .context("start of a cancelled job")?;
    let second = h.expect_end(&new_id, JobState::Completed).await?;
    ensure!(
        second.attempt > first.attempt,
        "attempt went from {} to {}",
        first.attempt,
        second.attempt
    );
    Ok(())
}

/// Starting a running job changes nothing.
///
/// `start` on a Running job keeps its id and attempt, and its command runs only once.
pub async fn starting_a_running_job_changes_nothing(h: &Harness) -> CheckResult {
    let (started, go) = (h.path("started"), h.path("go"));
    let id = h
        .submit(&h.request("start-running", vec![wait_for_go(&started, &go)]))
        .await?;
    h.wait_file(&started).await?;
    let before = h.wait_state(&id, JobState::Running).await?;
    if !h.caps().start {
        touch(&go);
        return expect_unsupported(
            "start without the start capability",
            h.farm().start(&id).await,
        );
    }
    let again = h
        .farm()
        .start(&id)
        .await
        .context("start of a running job")?;
    ensure!(
        again == id,
        "start of a running job returned a new id {again}"
    );
    let after = h.farm().job(&id).await.context("job")?;
    ensure!(
        after.attempt == before.attempt,
        "attempt changed from {} to {}",
        before.attempt,
        after.attempt
    );
    touch(&go);
    h.expect_end(&id, JobState::Completed).await?;
    let runs = read_probe(&started).lines().count();
    ensure!(runs == 1, "the command ran {runs} times");
    Ok(())
}
