//! Listing jobs: a new job is listed at once, and the state, name and tag filters are exact.

use farm_core::{Job, JobFilter, JobId, JobState};
use uuid::Uuid;

use super::support::{expect_unsupported, touch, wait_for_go};
use crate::harness::{Context, Harness, Verdict, run_tag};
use crate::{CheckResult, ensure, fail};

/// A listed job includes one just submitted.
///
/// Listing by the run's tag returns the job while it is unfinished, with its name and
/// tags.
pub async fn listing_includes_a_job_just_submitted(h: &Harness) -> CheckResult {
    let (started, go) = (h.path("started"), h.path("go"));
    let req = h.request("listed", vec![wait_for_go(&started, &go)]);
    let id = h.submit(&req).await?;
    let filter = JobFilter {
        tag: Some(run_tag(h.run_id())),
        ..Default::default()
    };
    if !h.caps().list_jobs {
        touch(&go);
        return expect_unsupported(
            "list_jobs without the capability",
            h.farm().list_jobs(&filter).await,
        );
    }
    let jobs = h.farm().list_jobs(&filter).await.context("list_jobs")?;
    touch(&go);
    let Some(job) = jobs.iter().find(|j| j.id == id) else {
        fail!(
            "job {id} is missing from list_jobs(tag) ({} jobs listed)",
            jobs.len()
        );
    };
    ensure!(
        job.name == req.name,
        "listed name {:?}, submitted {:?}",
        job.name,
        req.name
    );
    ensure!(
        job.tags.contains(&run_tag(h.run_id())),
        "listed tags {:?} lack the run tag",
        job.tags
    );
    h.wait_terminal(&id).await?;
    Ok(())
}

/// Listing filters by state.
///
/// With one Completed and one Failed job of the run, a Failed filter returns the failed
/// one and not the other, and every returned job is Failed.
pub async fn listing_filters_by_state(h: &Harness) -> CheckResult {
    let ok = h
        .submit(&h.request("state-ok", vec![Harness::sh("true", &[])]))
        .await?;
    let bad = h
        .submit(&h.request("state-bad", vec![Harness::sh("exit 1", &[])]))
        .await?;
    h.expect_end(&ok, JobState::Completed).await?;
    h.expect_end(&bad, JobState::Failed).await?;
    let filter = JobFilter {
        states: vec![JobState::Failed],
        tag: Some(run_tag(h.run_id())),
        ..Default::default()
    };
    if !h.caps().list_jobs {
        return expect_unsupported(
            "list_jobs without the capability",
            h.farm().list_jobs(&filter).await,
        );
    }
    let jobs = h
        .farm()
        .list_jobs(&filter)
        .await
        .context("list_jobs(state=Failed)")?;
    ensure!(
        jobs.iter().any(|j| j.id == bad),
        "the failed job is missing"
    );
    ensure!(
        !jobs.iter().any(|j| j.id == ok),
        "the completed job was returned for state=Failed"
    );
    ensure!(
        jobs.iter().all(|j| j.state == JobState::Failed),
        "a non-Failed job was returned"
    );
    Ok(())
}

/// Listing filters by exact name.
///
/// Of two jobs named `...-alpha` and `...-alphabet` (one a prefix of the other), a name
/// filter for the first returns only it.
pub async fn listing_filters_by_name(h: &Harness) -> CheckResult {
    let a = h.request("alpha", vec![Harness::sh("true", &[])]);
    let b = h.request("alphabet", vec![Harness::sh("true", &[])]);
    let ida = h.submit(&a).await?;
    let idb = h.submit(&b).await?;
    let filter = JobFilter {
        name: Some(a.name.clone()),
        ..Default::default()
    };
    let Some(jobs) = list_when_finished(h, &filter, [&ida, &idb], "list_jobs(name)").await? else {
        return Ok(());
    };
    ensure!(jobs.iter().any(|j| j.id == ida), "the named job is missing");
    ensure!(
        jobs.iter().all(|j| j.name == a.name),
        "other names returned: {:?}",
        jobs.iter().map(|j| &j.name).collect::<Vec<_>>()
    );
    Ok(())
}

/// Listing filters by tag.
///
/// Of two jobs of the run, only one carries an extra tag; filtering by it returns that
/// one only.
pub async fn listing_filters_by_tag(h: &Harness) -> CheckResult {
    let special = format!("conformance-pick:{}", Uuid::new_v4().simple());
    let mut tagged = h.request("tagged", vec![Harness::sh("true", &[])]);
    tagged.tags.push(special.clone());
    let plain = h.request("untagged", vec![Harness::sh("true", &[])]);
    let idt = h.submit(&tagged).await?;
    let idp = h.submit(&plain).await?;
    let filter = JobFilter {
        tag: Some(special.clone()),
        ..Default::default()
    };
    let Some(jobs) = list_when_finished(h, &filter, [&idt, &idp], "list_jobs(tag)").await? else {
        return Ok(());
    };
    let ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
    ensure!(
        ids == vec![idt.clone()],
        "tag filter returned {ids:?}, expected [{idt}]"
    );
    Ok(())
}

/// Lists with `filter` once `jobs` have finished; without the capability, checks that
/// `list_jobs` is `Unsupported` and gives `None`.
async fn list_when_finished(
    h: &Harness,
    filter: &JobFilter,
    jobs: [&JobId; 2],
    what: &str,
) -> Result<Option<Vec<Job>>, Verdict> {
    if !h.caps().list_jobs {
        expect_unsupported(
            "list_jobs without the capability",
            h.farm().list_jobs(filter).await,
        )?;
        return Ok(None);
    }
    for id in jobs {
        h.wait_terminal(id).await?;
    }
    h.farm().list_jobs(filter).await.context(what).map(Some)
}
