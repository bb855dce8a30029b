//! Every `farm` command is a new process. These tests submit with one adapter and ask a
//! second one, built on the same simulator and state directory and sharing nothing in
//! memory with the first, as the next command would. A third adapter with an empty state
//! directory shows what the answer would be without the journal.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use farm_core::{
    Command, CommonSettings, ErrorKind, FarmPlugin, Job, JobFilter, JobId, JobRequest, JobState,
};
use farm_htcondor::CondorFarm;
use support::SimFarm;

fn sh(script: &str, args: &[&str]) -> Command {
    let mut argv = vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Command::Argv(argv)
}

fn request(name: &str, commands: Vec<Command>) -> JobRequest {
    let mut r = JobRequest::new(name, commands);
    r.tags.push("journal-test".into());
    r
}

/// Polls `probe` until it gives a value, for up to 30 seconds.
async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_state(farm: &dyn FarmPlugin, id: &JobId, state: JobState) -> Job {
    until(&format!("job {id} to be {state}"), async || {
        let job = farm.job(id).await.unwrap();
        (job.state == state).then_some(job)
    })
    .await
}

/// Waits until the job has left the queue (it has finished), then drops it from the
/// history as a rotation would, leaving only its user log.
async fn gone_from_queue_and_history(f: &SimFarm, id: &JobId) {
    let cluster: u32 = id.as_str().parse().unwrap();
    until("the job to leave the queue", async || {
        (!f.sim.in_queue(cluster)).then_some(())
    })
    .await;
    f.sim.purge_history(cluster);
}

/// An adapter on the same simulator with a journal of its own (empty).
fn without_the_journal(f: &SimFarm, dir: &Path) -> CondorFarm {
    let mut settings = f.farm.settings().clone();
    settings.state_directory = Some(dir.to_path_buf());
    CondorFarm::with_runner(
        "sim",
        settings,
        CommonSettings::default(),
        Arc::new(f.sim.clone()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_reports_a_job_the_scheduler_forgot_as_failed_and_lost() {
    let f = SimFarm::new(|_, _| {});
    let go = f.dir.path().join("go");
    let r = request(
        "forgotten",
        vec![sh(
            "while [ ! -e \"$1\" ]; do sleep 0.1; done",
            &[&go.display().to_string()],
        )],
    );
    let id = f.farm.submit(&r).await.unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Running).await;
    f.sim.control().forget(&id).await;
    std::fs::write(&go, "").unwrap();

    let later = f.another_process();
    let job = later.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert!(job.reason.as_deref().unwrap().contains("lost"), "{job:?}");
    assert_eq!(
        (job.name.as_str(), job.render_context, job.attempt),
        ("forgotten", Some(r.render_context), 1)
    );
    assert_eq!(job.tags, ["journal-test"]);
    let listed = later
        .list_jobs(&JobFilter {
            tag: Some("journal-test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed,
        std::slice::from_ref(&job),
        "list_jobs agrees with job"
    );
    assert!(
        later
            .list_jobs(&JobFilter {
                tag: Some("another-tag".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    // Stopping it changes nothing; ids nobody submitted are still unknown.
    later.stop(&id).await.unwrap();
    for unknown in ["987654321", "farm-conformance-no-such-job"] {
        let err = later.job(&JobId::new(unknown)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::JobNotFound, "{unknown}");
    }

    let state = tempfile::tempdir().unwrap();
    let err = without_the_journal(&f, state.path())
        .job(&id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JobNotFound, "without the journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_reads_a_finished_job_back_from_its_user_log() {
    let f = SimFarm::new(|_, _| {});
    let r = request("purged", vec![sh("echo rendering; exit 7", &[])]);
    let id = f.farm.submit(&r).await.unwrap();
    // The first process never sees the job finish: all the second one can use is the user
    // log the journal points to.
    gone_from_queue_and_history(&f, &id).await;

    let later = f.another_process();
    let job = later.job(&id).await.unwrap();
    assert_eq!(
        (job.state, job.reason.as_deref()),
        (JobState::Failed, Some("exit code 7"))
    );
    assert!(
        job.native_state
            .as_deref()
            .unwrap()
            .contains("from the user log"),
        "{job:?}"
    );
    assert_eq!((job.name.as_str(), job.attempt), ("purged", 1));
    assert!(job.end_time.is_some(), "{job:?}");
    let log = later.read_log(&id, 0).await.unwrap();
    assert_eq!((log.data.as_str(), log.complete), ("rendering\n", true));
    let polled = later.poll(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(polled[0].as_ref().unwrap(), &job, "poll and job agree");

    let state = tempfile::tempdir().unwrap();
    let err = without_the_journal(&f, state.path())
        .job(&id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JobNotFound, "without the journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_keeps_the_terminal_state_last_seen_when_no_record_is_left() {
    let f = SimFarm::new(|_, _| {});
    let r = request("seen-finishing", vec![sh("true", &[])]);
    let id = f.farm.submit(&r).await.unwrap();
    let done = until_state(f.farm.as_ref(), &id, JobState::Completed).await;
    // Queue, history and user log all gone.
    f.sim.control().forget(&id).await;
    let render_log = done.render_log_filename.clone().unwrap();
    let user_log = Path::new(&render_log).with_file_name("condor.log");
    std::fs::remove_file(&user_log).unwrap();

    let later = f.another_process();
    let job = later.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job, done, "the state last seen, as it was seen");
    let listed = later
        .list_jobs(&JobFilter {
            states: vec![JobState::Completed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed, [done]);

    // Without that memory, the same job is lost.
    let copy = tempfile::tempdir().unwrap();
    let entry = f.dir.path().join("state/jobs").join(format!("{id}.json"));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
    json["finished"] = serde_json::Value::Null;
    std::fs::create_dir_all(copy.path().join("jobs")).unwrap();
    std::fs::write(
        copy.path().join("jobs").join(format!("{id}.json")),
        json.to_string(),
    )
    .unwrap();
    let job = without_the_journal(&f, copy.path()).job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.reason.unwrap().contains("lost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_keeps_submit_idempotent_after_the_history_dropped_the_job() {
    let f = SimFarm::new(|_, _| {});
    let r = request("once", vec![sh("true", &[])]);
    let id = f.farm.submit(&r).await.unwrap();
    gone_from_queue_and_history(&f, &id).await;

    let later = f.another_process();
    assert_eq!(later.submit(&r).await.unwrap(), id);
    assert_eq!(f.sim.submissions(), 1, "nothing was submitted again");

    let state = tempfile::tempdir().unwrap();
    let blind = without_the_journal(&f, state.path());
    assert_ne!(blind.submit(&r).await.unwrap(), id, "without the journal");
    assert_eq!(f.sim.submissions(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_restarts_a_job_whose_records_are_gone_and_both_see_the_new_attempt() {
    let f = SimFarm::new(|_, _| {});
    let flag = f.dir.path().join("second-run");
    let r = request(
        "restart-later",
        vec![sh(
            "[ -e \"$1\" ] || { touch \"$1\"; exit 2; }",
            &[&flag.display().to_string()],
        )],
    );
    let first = f.farm.submit(&r).await.unwrap();
    gone_from_queue_and_history(&f, &first).await;

    let later = f.another_process();
    let second = later.start(&first).await.unwrap();
    assert_ne!(second, first);
    let job = until_state(&later, &second, JobState::Completed).await;
    assert_eq!(
        (job.attempt, job.render_context),
        (2, Some(r.render_context))
    );
    // The first process picks up what the second one did.
    assert_eq!(f.farm.submit(&r).await.unwrap(), second);
    let attempts: Vec<(String, u32, JobState)> = f
        .farm
        .list_jobs(&JobFilter {
            tag: Some("journal-test".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| (j.id.to_string(), j.attempt, j.state))
        .collect();
    assert_eq!(
        attempts,
        [
            (first.to_string(), 1, JobState::Failed),
            (second.to_string(), 2, JobState::Completed)
        ]
    );
    assert_eq!(f.sim.submissions(), 2);
}
