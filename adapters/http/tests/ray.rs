//! The `ray-jobs` profile.
//!
//! Offline: the submit body's entrypoint, run by /bin/sh exactly as Ray runs it with the
//! body's `runtime_env.env_vars`, prints what the reference executor prints for every
//! example request (the adversarial one included).
//!
//! Live (gated, `#[ignore]`): the conformance suite against a real Ray head node, and a
//! submit whose answer is lost then retried, which must leave exactly one Ray job. Run by
//! `tools/ci/ray.sh`, which sets `FARM_RAY_URL` (e.g. `http://127.0.0.1:8265`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{SuiteSettings, TestFarm};
use farm_core::exec::{ExecOptions, run_task};
use farm_core::{FarmPlugin, JobFilter, JobRequest};
use farm_http::{HttpFarm, HttpSettings};
use tokio_util::sync::CancellationToken;

fn requests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/requests")
}

fn offline() -> HttpFarm {
    HttpFarm::new(HttpSettings::new("http://127.0.0.1:9").with_profile("ray-jobs")).unwrap()
}

/// Makes a request runnable here: `/bin/echo`-style commands only, in a scratch directory.
fn runnable(path: &Path, dir: &Path) -> Option<JobRequest> {
    let mut request = JobRequest::from_path(path).unwrap();
    let harmless = request.commands.iter().all(|c| match c {
        farm_core::Command::Argv(argv) => matches!(argv[0].as_str(), "/bin/echo" | "echo"),
        farm_core::Command::Shell(_) => false,
    });
    if !harmless {
        return None;
    }
    request.working_directory = Some(dir.display().to_string());
    request.resources.time_limit = None;
    Some(request)
}

/// What Ray does to `runtime_env.env_vars` values (seen live): `$NAME` and `${NAME}` are
/// expanded. The program must not depend on those copies.
fn ray_expands(value: &str) -> String {
    value
        .replace("${HOME}", "/expanded")
        .replace("$HOME", "/expanded")
}

#[tokio::test]
async fn the_entrypoint_runs_every_task_exactly_as_the_reference_executor() {
    let farm = offline();
    let mut compared = 0;
    for entry in std::fs::read_dir(requests_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "json")
        ) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let Some(request) = runnable(&path, dir.path()) else {
            continue;
        };
        let body: serde_json::Value =
            serde_json::from_str(&farm.render(&request).await.unwrap().main().contents).unwrap();
        let entrypoint = body["entrypoint"].as_str().unwrap();
        let env = body["runtime_env"]["env_vars"].as_object().unwrap();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", entrypoint])
            .envs(
                env.iter()
                    .map(|(k, v)| (k, ray_expands(v.as_str().unwrap()))),
            )
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", path.display());
        let log = dir.path().join("reference.log");
        for task in request.tasks() {
            run_task(
                &request,
                &task,
                &log,
                CancellationToken::new(),
                &ExecOptions::default(),
            )
            .await
            .unwrap();
        }
        let reference = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            reference,
            "{}",
            path.display()
        );
        compared += 1;
    }
    assert!(
        compared >= 2,
        "only {compared} example requests were compared"
    );
}

#[tokio::test]
async fn a_failing_task_stops_the_entrypoint_with_its_status() {
    let request = JobRequest::from_yaml_str(
        "name: x\nframes: 1-4\nchunk_size: 2\nenvironment: {V: \"$HOME ${HOME} 'q' $(id)\"}\n\
         commands: [[sh, -c, 'echo $0 \"$V\"; [ $0 != 2 ] || exit 7', '{frame}']]\n",
    )
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&offline().render(&request).await.unwrap().main().contents).unwrap();
    let env = body["runtime_env"]["env_vars"].as_object().unwrap();
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", body["entrypoint"].as_str().unwrap()])
        .envs(
            env.iter()
                .map(|(k, v)| (k, ray_expands(v.as_str().unwrap()))),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 $HOME ${HOME} 'q' $(id)\n2 $HOME ${HOME} 'q' $(id)\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exited with status 7"));
}

fn ray_url() -> String {
    std::env::var("FARM_RAY_URL").expect("FARM_RAY_URL")
}

fn live_farm() -> HttpFarm {
    HttpFarm::new(
        HttpSettings::new(ray_url())
            .with_profile("ray-jobs")
            .with_timeout(Duration::from_secs(10)),
    )
    .expect("farm")
}

mod live {
    use super::*;

    async fn ray_jobs() -> TestFarm {
        let scratch = tempfile::tempdir().expect("tempdir");
        let mut suite = SuiteSettings::new(scratch.path().join("shared"));
        suite.job_timeout = Duration::from_secs(60);
        TestFarm::new(Arc::new(live_farm()))
            .with_settings(suite)
            .with_guard(scratch)
    }

    farm_conformance::suite!(ray_jobs, gate = "FARM_RAY_URL");
}

/// The first POST reaches Ray but its answer is lost; the retry (a second `submit` of the
/// same request) meets Ray's HTTP 500 "already exists" or finds the job first: either way
/// the result is the one existing job.
#[tokio::test]
#[ignore = "needs a live Ray: run tools/ci/ray.sh (FARM_RAY_URL)"]
async fn a_submit_whose_answer_is_lost_is_retried_into_exactly_one_ray_job() {
    let farm = live_farm();
    let mut request =
        JobRequest::from_yaml_str("name: lost-answer\ncommands: [['true']]\n").unwrap();
    request.tags = vec![format!("ray-lost-{}", uuid::Uuid::new_v4().simple())];
    let body = farm.render(&request).await.unwrap().main().contents.clone();
    // The lost attempt: sent, accepted by Ray, answer dropped.
    let http = reqwest::Client::new();
    let first = http
        .post(format!("{}/api/jobs/", ray_url()))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(first.status().is_success(), "{first:?}");
    // Ray itself refuses a replay with 500 "already exists"…
    let replay = http
        .post(format!("{}/api/jobs/", ray_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 500);
    assert!(replay.text().await.unwrap().contains("already exists"));
    // …and the adapter's retry turns it into the existing job.
    let id = farm.submit(&request).await.expect("the retried submit");
    assert_eq!(id.as_str(), request.render_context.to_string());
    let again = farm.submit(&request).await.expect("a second retry");
    assert_eq!(again, id);
    let filter = JobFilter {
        tag: Some(request.tags[0].clone()),
        ..Default::default()
    };
    let jobs = farm.list_jobs(&filter).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    use farm_core::FarmPluginExt;
    let done = farm
        .wait_until_finished(&id, &Default::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(done.state, farm_core::JobState::Completed, "{done:?}");
}
