//! Retrying only the failed tasks of a job (`retry_failed`).

use farm_core::JobState;

use super::support::expect_unsupported;
use crate::harness::{Context, Harness, Verdict, read_probe};
use crate::{CheckResult, ensure};

/// Retrying failed tasks runs only the failed frames again.
///
/// Frames `1-4`, where frame 3 exits 3 until a marker exists: the job ends Failed with
/// `exit code 3` in its reason. `retry_failed` keeps the job's id, and the job then
/// completes; frames 1, 2 and 4 ran once, frame 3 twice. Without the `retry_failed`
/// capability, `retry_failed` returns `Unsupported`.
pub async fn retrying_failed_tasks_runs_only_the_failed_frames_again(h: &Harness) -> CheckResult {
    let dir = h.path("runs");
    std::fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let script = "echo run >> \"$2/frame-$1\"; [ \"$1\" != 3 ] || [ -e \"$2/fixed\" ] || exit 3";
    let mut req = h.request(
        "retry-failed",
        vec![Harness::sh(
            script,
            &["{frame}", &dir.display().to_string()],
        )],
    );
    req.frames = Some("1-4".parse().expect("valid"));
    let id = h.submit(&req).await?;
    let failed = h.expect_end(&id, JobState::Failed).await?;
    let reason = failed.reason.clone().unwrap_or_default();
    ensure!(
        reason.contains("exit code 3"),
        "reason {reason:?} does not contain \"exit code 3\""
    );
    if !h.caps().retry_failed {
        return expect_unsupported(
            "retry_failed without the retry_failed capability",
            h.farm().retry_failed(&id).await,
        );
    }
    std::fs::write(dir.join("fixed"), b"").map_err(|e| Verdict::Fail(format!("scratch: {e}")))?;
    let again = h
        .farm()
        .retry_failed(&id)
        .await
        .context("retry_failed of a job with a failed frame")?;
    ensure!(
        again == id,
        "retry_failed returned {again}, not the job's id {id}"
    );
    h.expect_end(&id, JobState::Completed).await?;
    for (frame, runs) in [(1, 1), (2, 1), (3, 2), (4, 1)] {
        let got = read_probe(&dir.join(format!("frame-{frame}")))
            .lines()
            .count();
        ensure!(
            got == runs,
            "frame {frame} ran {got} time(s), expected {runs}"
        );
    }
    Ok(())
}
