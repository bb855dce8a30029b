//! Running a job: it is visible at once, runs its commands in order, and its end state,
//! reason and times say how it went.

use std::sync::atomic::{AtomicU8, Ordering};

use farm_core::JobState;

use super::support::touch_command;
use crate::harness::{Context, Harness, Verdict, read_probe};
use crate::{CheckResult, ensure, fail};

/// A submitted job is visible at once in one of the five states.
///
/// Right after `submit` returns, `job(id)` succeeds and `job_state(id)` is that state or
/// a later one; once the job is finished, `job_state(id)` equals `job(id).state`.
pub async fn a_submitted_job_is_visible_at_once(h: &Harness) -> CheckResult {
    let id = h
        .submit(&h.request("visible", vec![Harness::sh("true", &[])]))
        .await?;
    let job = h.farm().job(&id).await.context("job right after submit")?;
    ensure!(job.id == id, "job() returned id {} for {id}", job.id);
    let state = h
        .farm()
        .job_state(&id)
        .await
        .context("job_state right after submit")?;
    ensure!(
        lifecycle_rank(state) >= lifecycle_rank(job.state),
        "job_state says {state} just after job() said {}",
        job.state
    );
    let finished = h.wait_terminal(&id).await?;
    let state = h
        .farm()
        .job_state(&id)
        .await
        .context("job_state of a finished job")?;
    ensure!(
        state == finished.state,
        "job_state says {state} but job() says {}",
        finished.state
    );
    Ok(())
}

/// A job whose commands exit 0 ends Completed.
///
/// A one-command job that writes a marker goes through Waiting/Running and ends
/// Completed; the marker proves the command really ran.
pub async fn a_successful_job_completes(h: &Harness) -> CheckResult {
    let marker = h.path("ran");
    let id = h
        .submit(&h.request(
            "ok",
            vec![Harness::sh(
                "echo ok > \"$1\"",
                &[&marker.display().to_string()],
            )],
        ))
        .await?;
    h.expect_end(&id, JobState::Completed).await?;
    ensure!(
        read_probe(&marker) == "ok\n",
        "the command did not run (marker {:?})",
        read_probe(&marker)
    );
    Ok(())
}

/// A non-zero exit fails the job with the exit code in the reason.
///
/// A command exiting 3 ends the job Failed, and `reason` contains `exit code 3`.
pub async fn a_nonzero_exit_fails_with_the_exit_code_in_the_reason(h: &Harness) -> CheckResult {
    let id = h
        .submit(&h.request("exit3", vec![Harness::sh("exit 3", &[])]))
        .await?;
    let job = h.expect_end(&id, JobState::Failed).await?;
    let reason = job.reason.unwrap_or_default();
    ensure!(
        reason.contains("exit code 3"),
        "reason {reason:?} does not contain \"exit code 3\""
    );
    Ok(())
}

/// Commands run in the order given.
///
/// Three commands append 0, 1 and 2 to one file; it reads `0 1 2`.
pub async fn commands_run_in_order(h: &Harness) -> CheckResult {
    let out = h.path("order");
    let o = out.display().to_string();
    let cmds = (0..3)
        .map(|i| Harness::sh("echo \"$1\" >> \"$2\"", &[&i.to_string(), &o]))
        .collect();
    let id = h.submit(&h.request("order", cmds)).await?;
    h.expect_end(&id, JobState::Completed).await?;
    ensure!(
        read_probe(&out) == "0\n1\n2\n",
        "commands ran as {:?}",
        read_probe(&out)
    );
    Ok(())
}

/// The first failing command stops the job.
///
/// Of three commands, the second exits 4: the job fails with `exit code 4` and the third
/// never runs.
pub async fn commands_stop_at_the_first_failure(h: &Harness) -> CheckResult {
    let first = h.path("first");
    let third = h.path("third");
    let cmds = vec![
        touch_command(&first),
        Harness::sh("exit 4", &[]),
        touch_command(&third),
    ];
    let id = h.submit(&h.request("stop-at-failure", cmds)).await?;
    let job = h.expect_end(&id, JobState::Failed).await?;
    ensure!(first.exists(), "the first command did not run");
    ensure!(!third.exists(), "the command after the failing one ran");
    let reason = job.reason.unwrap_or_default();
    ensure!(
        reason.contains("exit code 4"),
        "reason {reason:?} does not contain \"exit code 4\""
    );
    Ok(())
}

/// Finished jobs carry ordered times.
///
/// A Completed job has `start_time` and `end_time`, with start <= end and, when present,
/// submit <= start (within one second: schedulers record whole seconds). A farm that
/// declares `job_times: false` may leave times out (`None`): those it reports must still
/// be ordered, and with neither reported the check is not applicable.
pub async fn finished_jobs_carry_ordered_times(h: &Harness) -> CheckResult {
    let id = h
        .submit(&h.request("times", vec![Harness::sh("sleep 0.2", &[])]))
        .await?;
    let job = h.expect_end(&id, JobState::Completed).await?;
    let declared = h.caps().job_times;
    if declared && (job.start_time.is_none() || job.end_time.is_none()) {
        fail!(
            "start_time {:?} / end_time {:?} missing on a completed job (the farm declares job_times)",
            job.start_time,
            job.end_time
        );
    }
    if let (Some(start), Some(end)) = (job.start_time, job.end_time) {
        ensure!(start <= end, "start_time {start} is after end_time {end}");
    }
    // Schedulers record times in whole seconds: allow a second of rounding.
    if let Some(submit) = job.submit_time {
        for (what, t) in [("start_time", job.start_time), ("end_time", job.end_time)] {
            if let Some(t) = t {
                ensure!(
                    submit <= t + 1000,
                    "submit_time {submit} is after {what} {t}"
                );
            }
        }
    }
    if job.start_time.is_none() && job.end_time.is_none() {
        return Err(Verdict::NotApplicable(
            "the farm declares job_times: false and reports no start or end time".into(),
        ));
    }
    Ok(())
}

/// Job times are milliseconds since the epoch.
///
/// A Completed job's `submit_time`, `start_time` and `end_time` (those present) lie within
/// the check's own wall-clock window, widened by a minute for clock skew: a time in seconds
/// or microseconds is far outside it. A farm that declares `job_times` reports at least
/// `start_time`; one that declares `job_times: false` and reports no time at all makes the
/// check not applicable.
pub async fn job_times_are_milliseconds_since_the_epoch(h: &Harness) -> CheckResult {
    const SKEW: i64 = 60_000;
    let before = farm_core::now_millis() - SKEW;
    let id = h
        .submit(&h.request("millis", vec![Harness::sh("sleep 0.2", &[])]))
        .await?;
    let job = h.expect_end(&id, JobState::Completed).await?;
    let after = farm_core::now_millis() + SKEW;
    let times = [
        ("submit_time", job.submit_time),
        ("start_time", job.start_time),
        ("end_time", job.end_time),
    ];
    for (what, t) in times {
        let Some(t) = t else { continue };
        ensure!(
            (before..=after).contains(&t),
            "{what} {t} is not a time of this run in milliseconds since the epoch \
             (expected {before}..={after}; in seconds it would be about {}, in microseconds \
             about {})",
            before / 1000,
            before.saturating_mul(1000)
        );
    }
    if h.caps().job_times {
        ensure!(
            job.start_time.is_some(),
            "a Completed job has no start_time (the farm declares job_times)"
        );
    } else if times.iter().all(|(_, t)| t.is_none()) {
        return Err(Verdict::NotApplicable(
            "the farm declares job_times: false and reports no time".into(),
        ));
    }
    Ok(())
}

/// A submitted job is readable at every step until it ends.
///
/// From `submit` until the job is finished, `job(id)` and `job_state(id)` never fail with
/// a non-retryable error (an adapter that cannot map a native state must not make the job
/// unreadable), and the states `job(id)` reports never go back.
pub async fn a_submitted_job_is_readable_until_it_ends(h: &Harness) -> CheckResult {
    let id = h
        .submit(&h.request("readable", vec![Harness::sh("sleep 1", &[])]))
        .await?;
    // Atomic rather than a Cell: the check's future must be Send.
    let rank = AtomicU8::new(0);
    let verdict = h
        .wait_for("the job to end", || async {
            let job = match h.farm().job(&id).await {
                Ok(job) => job,
                Err(e) if e.is_retryable() => return Err(e.to_string()),
                Err(e) => {
                    return Ok(Some(Err(format!(
                        "job({id}) failed while the job was under way: {e}"
                    ))));
                }
            };
            match h.farm().job_state(&id).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e.to_string()),
                Err(e) => {
                    return Ok(Some(Err(format!(
                        "job_state({id}) failed while the job was under way: {e}"
                    ))));
                }
            }
            let now = lifecycle_rank(job.state);
            if now < rank.load(Ordering::Relaxed) {
                return Ok(Some(Err(format!(
                    "the job went back to {} ({:?})",
                    job.state, job.native_state
                ))));
            }
            rank.store(now, Ordering::Relaxed);
            if job.state.is_terminal() {
                Ok(Some(Ok(())))
            } else {
                Err(format!("{} ({:?})", job.state, job.native_state))
            }
        })
        .await?;
    verdict.map_err(Verdict::Fail)
}

/// Where a state lies on a job's way: a later observation never goes back.
fn lifecycle_rank(state: JobState) -> u8 {
    match state {
        JobState::Waiting => 0,
        JobState::Running => 1,
        JobState::Completed | JobState::Cancelled | JobState::Failed => 2,
    }
}
