//! Rendering and submitting: idempotent, deterministic, validated, and what is rendered is
//! what is sent.

use farm_core::{Command, FarmError, Job, JobFilter, JobState};

use crate::harness::{Context, Harness, Verdict, read_probe};
use crate::{CheckResult, ensure, fail};

/// Submitting the same render context twice gives one job.
///
/// The second `submit` of an identical request returns the first job's id, and only
/// one job with that name exists.
pub async fn submitting_a_render_context_twice_gives_one_job(h: &Harness) -> CheckResult {
    if !h.caps().idempotent_submit {
        return Err(Verdict::NotApplicable(
            "the adapter does not claim idempotent_submit".into(),
        ));
    }
    let counter = h.path("runs");
    let req = h.request(
        "idempotent",
        vec![Harness::sh(
            "echo run >> \"$1\"",
            &[&counter.display().to_string()],
        )],
    );
    let first = h.submit(&req).await?;
    let second = h.submit(&req).await?;
    ensure!(
        first == second,
        "the same render context gave jobs {first} and {second}"
    );
    h.expect_end(&first, JobState::Completed).await?;
    let runs = read_probe(&counter).lines().count();
    ensure!(runs == 1, "the command ran {runs} times");
    if h.caps().list_jobs {
        let jobs = jobs_named(h, &req.name).await?;
        ensure!(jobs.len() == 1, "{} jobs carry the name", jobs.len());
    }
    Ok(())
}

/// Rendering is deterministic.
///
/// Rendering one request (with frames, environment and resources) twice, and a clone of
/// it, gives identical files.
pub async fn rendering_is_deterministic(h: &Harness) -> CheckResult {
    let mut req = h.request("render", vec![Harness::sh("echo \"$1\"", &["{frame}"])]);
    req.frames = Some("1-10x3".parse().expect("valid"));
    req.chunk_size = 2;
    req.environment
        .insert("SCENE".into(), "shot 010 'hero'".into());
    req.resources.cpus = Some(2);
    let a = h.farm().render(&req).await.context("render")?;
    let b = h.farm().render(&req).await.context("render again")?;
    let c = h
        .farm()
        .render(&req.clone())
        .await
        .context("render a clone")?;
    ensure!(a == b && b == c, "render output differs between calls");
    ensure!(
        !a.files.is_empty() && !a.main().contents.is_empty(),
        "render returned no content"
    );
    Ok(())
}

/// Rendering an invalid request names the field.
///
/// `render` of a request with an empty argv fails with `InvalidRequest` for
/// `commands[0]`.
pub async fn rendering_an_invalid_request_names_the_field(h: &Harness) -> CheckResult {
    let req = h.request("invalid-render", vec![Command::Argv(vec![])]);
    match h.farm().render(&req).await {
        Err(FarmError::InvalidRequest { field, .. }) => {
            ensure!(
                field == "commands[0]",
                "the error names {field:?}, not commands[0]"
            );
            Ok(())
        }
        Err(e) => fail!("expected InvalidRequest, got {} error: {e}", e.kind()),
        Ok(_) => fail!("an empty argv rendered without error"),
    }
}

/// Invalid requests never reach the scheduler.
///
/// `submit` with an invalid environment name fails with `InvalidRequest` naming
/// `environment.1BAD`, and no job with that name appears.
pub async fn invalid_requests_never_reach_the_scheduler(h: &Harness) -> CheckResult {
    let mut req = h.request("invalid-submit", vec![Harness::sh("true", &[])]);
    req.environment.insert("1BAD".into(), "x".into());
    let before = match h.control() {
        Ok(c) => c.last_submission().await,
        Err(_) => None,
    };
    match h.farm().submit(&req).await {
        Err(FarmError::InvalidRequest { field, .. }) => {
            ensure!(field == "environment.1BAD", "the error names {field:?}");
        }
        Err(e) => fail!("expected InvalidRequest, got {} error: {e}", e.kind()),
        Ok(id) => fail!("an invalid request was submitted as job {id}"),
    }
    if let Ok(c) = h.control() {
        ensure!(
            c.last_submission().await == before,
            "the scheduler received the invalid request"
        );
    }
    if h.caps().list_jobs {
        let jobs = jobs_named(h, &req.name).await?;
        ensure!(
            jobs.is_empty(),
            "a job named after the invalid request exists"
        );
    }
    Ok(())
}

/// What submit sends is what render returns.
///
/// The scheduler receives exactly the main file `render` produced for the request.
pub async fn submit_sends_what_render_returns(h: &Harness) -> CheckResult {
    let control = h.control()?;
    let mut req = h.request("render-submit", vec![Harness::sh("true", &[])]);
    req.environment.insert("SCENE".into(), "a 'b' \"c\"".into());
    let rendered = h.farm().render(&req).await.context("render")?;
    let id = h.submit(&req).await?;
    let sent = control.last_submission().await;
    ensure!(
        sent.as_deref() == Some(rendered.main().contents.as_str()),
        "the scheduler received {sent:?}, render gave {:?}",
        rendered.main().contents
    );
    h.wait_terminal(&id).await?;
    Ok(())
}

/// The jobs `list_jobs` gives for a name filter.
async fn jobs_named(h: &Harness, name: &str) -> Result<Vec<Job>, Verdict> {
    let filter = JobFilter {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    h.farm().list_jobs(&filter).await.context("list_jobs")
}
