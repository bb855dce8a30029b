//! Behaviour beyond the conformance suite, on the simulated Slurm: what happens after
//! slurmctld forgets a job, arrays, time limits, restarts after a purge, re-attaching from
//! another client, and credentials.

mod support;

use std::time::Duration;

use farm_core::{
    Command, ErrorKind, FarmPlugin, FarmPluginExt, Job, JobFilter, JobId, JobRequest, JobState,
    WaitOptions,
};
use farm_slurm::SlurmFarm;
use support::{EngineConfig, cli_farm, rest_farm};

fn sh(script: &str) -> Command {
    Command::Argv(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

fn wait() -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(30),
        interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
    }
}

async fn finish(farm: &SlurmFarm, id: &JobId) -> Job {
    farm.wait_until_finished(id, &wait(), &mut |_| {})
        .await
        .unwrap()
}

/// Polls until `engine` no longer holds job `id` (its MinJobAge passed).
async fn until_forgotten(engine: &support::Engine, id: &JobId) {
    let n: u64 = id.as_str().parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.exists(n) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} was never purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_job_is_found_in_the_jobcomp_file_by_a_client_that_never_saw_it() {
    let jobcomp = tempfile::NamedTempFile::new().unwrap();
    let config = EngineConfig {
        min_job_age: Duration::from_secs(1),
        jobcomp: Some(jobcomp.path().to_path_buf()),
        ..EngineConfig::default()
    };
    let (farm, engine, dir) = cli_farm(config, |_| {});
    let mut req = JobRequest::new("fails with 3", vec![sh("exit 3")]);
    req.tags = vec!["t:1".into()];
    let id = farm.submit(&req).await.unwrap();
    until_forgotten(&engine, &id).await;

    // Another client: its own journal, the jobcomp file configured.
    let other_dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(farm_slurm::Transport::Cli, other_dir.path());
    settings.jobcomp_file = Some(jobcomp.path().display().to_string());
    let runner = std::sync::Arc::new(support::cli::SimRunner::new(engine.clone()));
    let other = SlurmFarm::with_runner(
        "other",
        settings.clone(),
        support::common(other_dir.path()),
        runner.clone(),
    )
    .unwrap();
    let job = other.job(&id).await.unwrap();
    assert_eq!(
        (job.state, job.reason.as_deref()),
        (JobState::Failed, Some("exit code 3"))
    );
    assert_eq!(job.name, "fails with 3");

    // Without the jobcomp file, a job it never submitted is unknown...
    settings.jobcomp_file = None;
    let blind =
        SlurmFarm::with_runner("blind", settings, support::common(other_dir.path()), runner)
            .unwrap();
    assert_eq!(
        blind.job(&id).await.unwrap_err().kind(),
        ErrorKind::JobNotFound
    );
    // ...and the submitting client, which never saw it finish, calls it lost.
    let job = farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.reason.as_deref().unwrap().starts_with("lost"),
        "{job:?}"
    );
    assert_eq!(job.tags, req.tags, "the journal keeps the tags");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_seen_finishing_keeps_its_state_after_slurm_forgets_it_and_stays_listed() {
    let config = EngineConfig {
        min_job_age: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let (farm, engine, _dir) = cli_farm(config, |_| {});
    let mut req = JobRequest::new("completes", vec![sh("true")]);
    req.tags = vec!["keep".into()];
    let id = farm.submit(&req).await.unwrap();
    assert_eq!(finish(&farm, &id).await.state, JobState::Completed);
    until_forgotten(&engine, &id).await;
    let job = farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let listed = farm
        .list_jobs(&JobFilter {
            tag: Some("keep".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![id.clone()]
    );
    // Restarting it after the purge submits it again under a new id, as attempt 2.
    let again = farm.start(&id).await.unwrap();
    assert_ne!(again, id);
    let second = finish(&farm, &again).await;
    assert_eq!((second.state, second.attempt), (JobState::Completed, 2));
    assert_eq!(second.render_context, Some(req.render_context));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_fails_when_one_chunk_fails_and_reports_progress() {
    let (farm, _engine, _dir) = cli_farm(EngineConfig::default(), |s| s.array_limit = Some(2));
    let mut req = JobRequest::new(
        "array",
        vec![Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            "[ \"$1\" != 4 ]".into(),
            "sh".into(),
            "{frame}".into(),
        ])],
    );
    req.frames = Some("1-7".parse().unwrap());
    req.chunk_size = 2;
    let id = farm.submit(&req).await.unwrap();
    let job = finish(&farm, &id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.reason.as_deref(),
        Some("chunk 1: exit code 1"),
        "{job:?}"
    );
    assert_eq!(
        job.progress.map(|p| (p.frames_done, p.frames_total)),
        Some((5, 7))
    );
    assert_eq!(job.native_state.as_deref(), Some("3 COMPLETED, 1 FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_limit_fails_the_job_with_the_reason() {
    let (farm, _engine, _dir) = cli_farm(EngineConfig::default(), |_| {});
    let mut req = JobRequest::new("slow", vec![sh("sleep 30")]);
    req.resources.time_limit = Some(farm_core::TimeLimit::from_secs(1));
    let id = farm.submit(&req).await.unwrap();
    let job = finish(&farm, &id).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.reason.as_deref().unwrap().contains("time limit"),
        "{job:?}"
    );
    assert_eq!(job.native_state.as_deref(), Some("TIMEOUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_reattaches_to_a_render_context_from_the_comment() {
    let (farm, engine, _dir) = cli_farm(EngineConfig::default(), |_| {});
    let req = JobRequest::new("shared", vec![sh("sleep 2")]);
    let id = farm.submit(&req).await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let runner = std::sync::Arc::new(support::cli::SimRunner::new(engine.clone()));
    let settings = support::test_settings(farm_slurm::Transport::Cli, other_dir.path());
    let other =
        SlurmFarm::with_runner("other", settings, support::common(other_dir.path()), runner)
            .unwrap();
    assert_eq!(other.submit(&req).await.unwrap(), id);
    let job = other.job(&id).await.unwrap();
    assert_eq!(job.render_context, Some(req.render_context));
    other.stop(&id).await.unwrap();
    assert_eq!(finish(&farm, &id).await.state, JobState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_on_unknown_jobs_are_refused_before_submission() {
    let (farm, engine, _dir) = cli_farm(EngineConfig::default(), |_| {});
    let mut req = JobRequest::new("orphan", vec![sh("true")]);
    req.depends_on = vec![JobId::new("4711")];
    match farm.submit(&req).await {
        Err(farm_core::FarmError::InvalidRequest { field, problem }) => {
            assert_eq!(field, "depends_on[0]");
            assert!(problem.contains("4711"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.last_submission(), None, "nothing reached sbatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurms_refusals_keep_its_words() {
    let (farm, _engine, _dir) = cli_farm(EngineConfig::default(), |s| {
        s.partition = Some("nope".into())
    });
    let err = farm
        .submit(&JobRequest::new("x", vec![sh("true")]))
        .await
        .unwrap_err();
    // A job Slurm will never take is a request to change, in Slurm's words.
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.to_string().contains("Invalid partition name specified"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_asks_sbatch_test_only_and_creates_nothing() {
    let (farm, engine, _dir) = cli_farm(EngineConfig::default(), |_| {});
    let mut req = JobRequest::new("too-big", vec![sh("true")]);
    req.resources.cpus = Some(1000);
    match farm.check(&req).await {
        Err(farm_core::FarmError::InvalidRequest { field, problem }) => {
            assert_eq!(field, "resources");
            assert!(
                problem.contains("Requested node configuration is not available"),
                "{problem}"
            );
        }
        other => panic!("{other:?}"),
    }
    req.resources.cpus = Some(2);
    let report = farm.check(&req).await.unwrap();
    assert!(report.message.contains("to start at"), "{report:?}");
    assert_eq!(report.placement.as_deref(), Some("sim (partition debug)"));
    let start = report.estimated_start.expect("a start");
    assert!((start - farm_core::now_millis()).abs() < 5_000, "{start}");
    assert_eq!(engine.last_submission(), None, "check submitted nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_transport_checks_only_with_the_cli_configured() {
    let (farm, _engine, _server, _dir) = rest_farm(EngineConfig::default()).await;
    assert!(!farm.capabilities().check);
    let err = farm
        .check(&JobRequest::new("x", vec![sh("true")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("check_with_cli"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_permission_denied_and_never_shown() {
    let (_farm, engine, server, dir) = rest_farm(EngineConfig::default()).await;
    let mut settings = support::test_settings(farm_slurm::Transport::Rest, dir.path());
    settings.url = server.uri();
    settings.user_name = Some(support::rest::USER.into());
    let secret = "eyJ0eXAiOiJKV1QifQ.wrong-token-body.sig";
    settings.token = Some(secret.to_owned().into());
    let farm = SlurmFarm::from_settings("emulated", settings, Default::default()).unwrap();
    let err = farm
        .submit(&JobRequest::new("x", vec![sh("true")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    for text in [err.chain(), format!("{err:?}"), format!("{farm:?}")] {
        assert!(
            !text.contains("wrong-token-body"),
            "the token leaked: {text}"
        );
    }
    drop(engine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_transport_restarts_by_submitting_again() {
    let (farm, _engine, _server, _dir) = rest_farm(EngineConfig::default()).await;
    let req = JobRequest::new("rest restart", vec![sh("exit 2")]);
    let id = farm.submit(&req).await.unwrap();
    let first = finish(&farm, &id).await;
    assert_eq!((first.state, first.attempt), (JobState::Failed, 1));
    let again = farm.start(&id).await.unwrap();
    assert_ne!(again, id);
    let second = finish(&farm, &again).await;
    assert_eq!(second.attempt, 2);
    // Idempotent submit now finds the newest attempt.
    assert_eq!(farm.submit(&req).await.unwrap(), again);
}

/// slurmctld restarting under a running job: every call says so as `Unavailable` (never a
/// lost or unknown job), and a wait polls through it to the job's real end.
async fn a_wait_survives_a_slurmctld_restart(farm: &SlurmFarm, engine: &support::Engine) {
    let req = JobRequest::new("outlives slurmctld", vec![sh("sleep 1; echo done")]);
    let id = farm.submit(&req).await.unwrap();
    engine.controller_down(8);
    let err = farm.job(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "{err}");
    let other = JobRequest::new("submitted while down", vec![sh("true")]);
    for err in [
        farm.submit(&other).await.unwrap_err(),
        farm.stop(&id).await.unwrap_err(),
        farm.list_jobs(&JobFilter::default()).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }
    let job = finish(farm, &id).await;
    assert_eq!(
        engine.controller_down_left(),
        0,
        "the wait never met the outage"
    );
    assert_eq!(job.state, JobState::Completed, "{job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_a_slurmctld_restart_through_the_cli() {
    let (farm, engine, _dir) = cli_farm(EngineConfig::default(), |_| {});
    a_wait_survives_a_slurmctld_restart(&farm, &engine).await;
    // The recorded message is kept.
    engine.controller_down(1);
    let err = farm.job(&JobId::new("1")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Failed while looking for jobs: in slurm_load_jobs (error -1)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_a_slurmctld_restart_through_slurmrestd() {
    let (farm, engine, _server, _dir) = rest_farm(EngineConfig::default()).await;
    a_wait_survives_a_slurmctld_restart(&farm, &engine).await;
    // slurmrestd's reply for one job even says "Unable to find JobId": still not unknown.
    engine.controller_down(1);
    let err = farm.job(&JobId::new("1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("Unable to find JobId=1"), "{err}");
}

/// No Slurm where `bin_dir` points: a configuration error naming the setting, not a passing
/// fault a wait would retry until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_slurm_command_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(farm_slurm::Transport::Cli, dir.path());
    settings.bin_dir = Some(dir.path().join("no-slurm-here").display().to_string());
    let farm = SlurmFarm::from_settings("hpc", settings, Default::default()).unwrap();
    let err = farm.job(&JobId::new("42")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("squeue") && err.to_string().contains("bin_dir"),
        "{err}"
    );
}

/// `retry_failed` through the CLI: `scontrol requeue` of the failed array elements only,
/// under the same job id; a job with nothing failed is left alone; unknown ids are
/// JobNotFound; slurmrestd has no requeue call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_requeues_only_the_failed_elements() {
    let (farm, _engine, dir) = cli_farm(EngineConfig::default(), |_| {});
    assert!(farm.capabilities().retry_failed);
    let runs = dir.path().join("runs");
    let script = format!(
        "echo \"$1\" >> '{runs}'; if [ \"$1\" = 2 ] && [ ! -e '{runs}.again' ]; then : > '{runs}.again'; exit 3; fi",
        runs = runs.display()
    );
    let mut req = JobRequest::new(
        "retry",
        vec![Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
            "sh".into(),
            "{frame}".into(),
        ])],
    );
    req.frames = Some("1-4".parse().unwrap());
    let id = farm.submit(&req).await.unwrap();
    let first = finish(&farm, &id).await;
    assert_eq!(first.state, JobState::Failed, "{first:?}");
    assert_eq!(farm.retry_failed(&id).await.unwrap(), id);
    let second = finish(&farm, &id).await;
    assert_eq!(second.state, JobState::Completed, "{second:?}");
    let mut ran: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(ran, ["1", "2", "2", "3", "4"], "only frame 2 ran again");
    // Nothing failed now: nothing changes.
    assert_eq!(farm.retry_failed(&id).await.unwrap(), id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(farm.job(&id).await.unwrap().state, JobState::Completed);
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 5);
    assert_eq!(
        farm.retry_failed(&JobId::new("999999"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::JobNotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_transport_cannot_retry_failed_tasks() {
    let (farm, _engine, _server, _dir) = rest_farm(EngineConfig::default()).await;
    assert!(!farm.capabilities().retry_failed);
    let id = farm
        .submit(&JobRequest::new("rest retry", vec![sh("exit 2")]))
        .await
        .unwrap();
    finish(&farm, &id).await;
    assert_eq!(
        farm.retry_failed(&id).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}
