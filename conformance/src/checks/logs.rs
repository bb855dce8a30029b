//! The render log: it holds stdout and stderr, and can be tailed while the job runs.

use farm_core::JobState;
use uuid::Uuid;

use super::support::{expect_unsupported, touch};
use crate::harness::{Context, Harness};
use crate::{CheckResult, ensure};

/// The render log holds the job's output.
///
/// After a job printing a token to stdout and another to stderr completes, the render
/// log (the named file, and `read_log` from offset 0) contains both.
pub async fn the_render_log_holds_the_output(h: &Harness) -> CheckResult {
    let (out_token, err_token) = (
        format!("stdout-{}", Uuid::new_v4().simple()),
        format!("stderr-{}", Uuid::new_v4().simple()),
    );
    let id = h
        .submit(&h.request(
            "log",
            vec![Harness::sh(
                "echo \"$1\"; echo \"$2\" >&2",
                &[&out_token, &err_token],
            )],
        ))
        .await?;
    h.expect_end(&id, JobState::Completed).await?;
    let caps = h.caps();
    if caps.render_log {
        h.wait_for("the render log file to hold the output", || async {
            match h.farm().render_log_filename(&id).await {
                Ok(Some(path)) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                    if text.contains(&out_token) && text.contains(&err_token) {
                        Ok(Some(text))
                    } else {
                        Err(format!("{path} holds {text:?}"))
                    }
                }
                Ok(None) => Err("render_log_filename returned None after the job ran".into()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    } else {
        expect_unsupported(
            "render_log_filename without the capability",
            h.farm().render_log_filename(&id).await,
        )?;
    }
    if caps.read_log {
        h.wait_for("read_log(0) to hold the output", || async {
            match h.farm().read_log(&id, 0).await {
                Ok(chunk) if chunk.data.contains(&out_token) && chunk.data.contains(&err_token) => {
                    Ok(Some(()))
                }
                Ok(chunk) => Err(format!("read_log returned {:?}", chunk.data)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    } else {
        expect_unsupported(
            "read_log without the capability",
            h.farm().read_log(&id, 0).await,
        )?;
    }
    Ok(())
}

/// The render log grows while the job runs and can be tailed.
///
/// A job prints one token, waits, then prints another: the first is readable while the
/// job is Running (with `complete` false), and reading from `next_offset` afterwards
/// returns the second but not the first, ending with `complete` true.
pub async fn the_render_log_grows_while_running(h: &Harness) -> CheckResult {
    let (t1, t2) = (
        format!("first-{}", Uuid::new_v4().simple()),
        format!("second-{}", Uuid::new_v4().simple()),
    );
    let go = h.path("go");
    let script = "echo \"$1\"; n=0; while [ ! -e \"$3\" ] && [ \"$n\" -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; echo \"$2\"";
    let probe = Harness::sh(script, &[&t1, &t2, &go.display().to_string()]);
    let id = h.submit(&h.request("tail", vec![probe])).await?;
    if !h.caps().read_log {
        touch(&go);
        return expect_unsupported(
            "read_log without the capability",
            h.farm().read_log(&id, 0).await,
        );
    }
    let first = h
        .wait_for("the first token in the log while running", || async {
            match h.farm().read_log(&id, 0).await {
                Ok(chunk) if chunk.data.contains(&t1) => Ok(Some(chunk)),
                Ok(chunk) => Err(format!("log so far {:?}", chunk.data)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    let state = h.farm().job_state(&id).await.context("job_state")?;
    ensure!(
        state == JobState::Running,
        "the job is {state} before it was released"
    );
    ensure!(!first.complete, "read_log said complete while the job runs");
    ensure!(!first.data.contains(&t2), "the second token appeared early");
    touch(&go);
    h.expect_end(&id, JobState::Completed).await?;
    // Tail from where the first read stopped until the adapter says the log is complete.
    let deadline = tokio::time::Instant::now() + h.settings().job_timeout;
    let mut offset = first.next_offset;
    let mut rest = String::new();
    loop {
        let chunk = h
            .farm()
            .read_log(&id, offset)
            .await
            .context("read_log from next_offset")?;
        ensure!(
            chunk.next_offset >= offset,
            "next_offset went back from {offset} to {}",
            chunk.next_offset
        );
        rest.push_str(&chunk.data);
        offset = chunk.next_offset;
        if chunk.complete {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "read_log never reported complete; read {rest:?}"
        );
        tokio::time::sleep(h.settings().poll_interval).await;
    }
    ensure!(
        rest.contains(&t2),
        "reading from next_offset {} missed the second token: {rest:?}",
        first.next_offset
    );
    ensure!(
        !rest.contains(&t1),
        "reading from next_offset returned the first token again: {rest:?}"
    );
    Ok(())
}
