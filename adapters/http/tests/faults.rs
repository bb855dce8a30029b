//! Fault injection against the emulations: 5xx answers, silence, garbage, lost submit
//! answers, refused credentials, and what is (and is not) retried.

mod support;

use std::time::Duration;

use farm_core::{Command, ErrorKind, FarmError, FarmPlugin, JobFilter, JobRequest, JobState};
use farm_http::{HttpFarm, HttpSettings, RetryPolicy};
use support::{Dialect, Emulation};

const TOKEN: &str = "fault-token-0123456789";

fn settings(emulation: &Emulation, profile: &str) -> HttpSettings {
    HttpSettings::new(emulation.url())
        .with_token(TOKEN)
        .with_profile(profile)
        .with_timeout(Duration::from_millis(1500))
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 50,
        })
}

fn quick_request(name: &str) -> JobRequest {
    JobRequest::new(name, vec![Command::Argv(vec!["true".into()])])
}

fn exchanges(emulation: &Emulation, what: &str) -> usize {
    emulation
        .faults()
        .exchanges
        .iter()
        .filter(|e| e.as_str() == what)
        .count()
}

async fn wait_terminal(farm: &HttpFarm, id: &farm_core::JobId) -> farm_core::Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = farm.job(id).await.expect("job");
        if job.state.is_terminal() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never finished: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_reads_are_retried_until_they_pass() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let id = farm.submit(&quick_request("retry-reads")).await.unwrap();
    let path = format!("GET /v1/jobs/{id}");
    emu.faults().fail_exchanges = 2;
    let job = farm.job(&id).await.expect("the third attempt succeeds");
    assert_eq!(job.id, id);
    assert_eq!(exchanges(&emu, &path), 3, "two 503s and one success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_beyond_the_retry_budget_are_unavailable() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let id = farm.submit(&quick_request("retry-budget")).await.unwrap();
    emu.faults().fail_exchanges = 10;
    let err = farm.job(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("overloaded, try again"),
        "the server's words are kept: {err}"
    );
    assert_eq!(exchanges(&emu, &format!("GET /v1/jobs/{id}")), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_as_unavailable_after_every_attempt() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let id = farm.submit(&quick_request("silent")).await.unwrap();
    {
        let control = emu.control();
        control.stall_replies(1).await;
    }
    let started = std::time::Instant::now();
    let err = farm.job(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no answer in time"), "{err}");
    assert_eq!(
        exchanges(&emu, &format!("GET /v1/jobs/{id}")),
        3,
        "each attempt timed out"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    farm.job(&id).await.expect("the next call is answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_scheduler_error_and_is_not_retried() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let id = farm.submit(&quick_request("garbage")).await.unwrap();
    emu.control().garble_replies(1).await;
    let err = farm.job(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Scheduler, "{err}");
    assert!(
        err.to_string().contains("502 Bad Gateway"),
        "the garbage is quoted: {err}"
    );
    assert_eq!(exchanges(&emu, &format!("GET /v1/jobs/{id}")), 1);
}

/// The submit is carried out, but its answer never arrives: the retry (same
/// Idempotency-Key) returns the job the first attempt made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_answer_is_lost_is_retried_into_exactly_one_job() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    emu.faults().lose_submit_replies = 1;
    let request = quick_request("lost-answer");
    let id = farm.submit(&request).await.expect("the retry gets the job");
    assert_eq!(exchanges(&emu, "POST /v1/jobs"), 2);
    assert_eq!(emu.engine.count(), 1, "exactly one job exists");
    assert_eq!(emu.engine.all()[0].id, id.as_str());
    assert_eq!(wait_terminal(&farm, &id).await.state, JobState::Completed);
}

/// Deadline has no idempotency key: the adapter looks for the render context before the
/// retry and finds the job the lost attempt made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_deadline_submit_is_found_by_render_context_not_duplicated() {
    let emu = Emulation::start(Dialect::Deadline, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "deadline-web-service")).unwrap();
    emu.faults().lose_submit_replies = 1;
    let id = farm
        .submit(&quick_request("lost-deadline-answer"))
        .await
        .expect("found after the lost answer");
    assert_eq!(
        exchanges(&emu, "POST /api/jobs"),
        1,
        "the lookup made a second POST unnecessary"
    );
    assert_eq!(emu.engine.count(), 1);
    assert_eq!(emu.engine.all()[0].id, id.as_str());
}

/// A profile whose submit has no idempotency never retries it: a 503 could have come after
/// the job was created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_without_idempotency_is_never_retried() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let profile = farm_http::profile::BUILTIN_YAML
        .replace("    idempotency: key\n", "    idempotency: none\n")
        .replace("  idempotent_submit: true", "  idempotent_submit: false")
        .replace(
            "      Idempotency-Key: ${request.render_context}\n",
            "      X-Unused: none\n",
        );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), profile).unwrap();
    let mut no_key = settings(&emu, &file.path().display().to_string());
    no_key.verify_capabilities = false;
    let farm = HttpFarm::new(no_key).unwrap();
    assert!(!farm.capabilities().idempotent_submit);
    emu.faults().fail_exchanges = 1;
    let err = farm.submit(&quick_request("no-key")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(exchanges(&emu, "POST /v1/jobs"), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_permission_denied_and_never_printed() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let wrong = "wrong-token-abcdef-987";
    let farm = HttpFarm::new(settings(&emu, "builtin").with_token(wrong)).unwrap();
    let err = farm.submit(&quick_request("denied")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().contains("missing or wrong bearer token"),
        "{err}"
    );
    for text in [err.chain(), format!("{err:?}"), format!("{farm:?}")] {
        assert!(
            !text.contains(wrong) && !text.contains(TOKEN),
            "a token leaked: {text}"
        );
    }
    assert_eq!(
        exchanges(&emu, "POST /v1/jobs"),
        1,
        "refusals are not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let farm = HttpFarm::new(HttpSettings::new(url).with_retry(RetryPolicy {
        max_attempts: 2,
        base_delay_ms: 1,
        max_delay_ms: 1,
    }))
    .unwrap();
    let err = farm.job(&"1".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_render_context_for_another_request_is_refused_with_the_field() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let first = quick_request("original");
    farm.submit(&first).await.unwrap();
    let mut other = quick_request("different");
    other.render_context = first.render_context;
    match farm.submit(&other).await {
        Err(FarmError::InvalidRequest { field, problem }) => {
            assert_eq!(field, "render_context");
            assert!(problem.contains("different request"), "{problem}");
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert_eq!(emu.engine.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_follows_every_page() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            farm.submit(&quick_request(&format!("page-{i}")))
                .await
                .unwrap(),
        );
    }
    let jobs = farm.list_jobs(&JobFilter::default()).await.unwrap();
    let mut listed: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    assert!(
        exchanges(&emu, "GET /v1/jobs") >= 3,
        "10 jobs in pages of 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_check_endpoint_validates_without_storing() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    farm.check_request(&quick_request("checked")).await.unwrap();
    assert_eq!(emu.engine.count(), 0);
    assert_eq!(exchanges(&emu, "POST /v1/jobs:check"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_cross_checked_once() {
    let emu = Emulation::start(Dialect::FarmV1, Some(TOKEN)).await;
    let farm = HttpFarm::new(settings(&emu, "builtin")).unwrap();
    let id = farm.submit(&quick_request("caps")).await.unwrap();
    farm.job(&id).await.unwrap();
    farm.job(&id).await.unwrap();
    assert_eq!(exchanges(&emu, "GET /v1/capabilities"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_reach_the_server_and_its_404_is_job_not_found() {
    for (dialect, profile, id) in [
        (Dialect::FarmV1, "builtin", "987654321"),
        (Dialect::FarmV1, "builtin", "farm-conformance-no-such-job"),
        (
            Dialect::Deadline,
            "deadline-web-service",
            "0123456789abcdef01234567",
        ),
    ] {
        let emu = Emulation::start(dialect, Some(TOKEN)).await;
        let farm = HttpFarm::new(settings(&emu, profile)).unwrap();
        let id = farm_core::JobId::new(id);
        assert_eq!(
            farm.job(&id).await.unwrap_err().kind(),
            ErrorKind::JobNotFound,
            "{profile} job {id}"
        );
        assert_eq!(
            farm.stop(&id).await.unwrap_err().kind(),
            ErrorKind::JobNotFound,
            "{profile} stop {id}"
        );
        assert!(
            !emu.faults().exchanges.is_empty(),
            "{profile}: the server was asked"
        );
    }
}
