//! The adapter against the simulated command line, for what the conformance suite does not
//! reach: jobs leaving the queue, holds and their timeout, time limits, restarts, the user
//! log as the last record, chunk progress, and the simulator answering like the recorded
//! tools.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use farm_core::{
    Command, CommandRunner, ErrorKind, FarmPlugin, Job, JobFilter, JobId, JobRequest, JobState,
};
use support::SimFarm;

fn sh(script: &str, args: &[&str]) -> Command {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Command::Argv(argv)
}

fn request(name: &str, commands: Vec<Command>) -> JobRequest {
    let mut r = JobRequest::new(name, commands);
    r.tags.push("sim-test".into());
    r
}

/// A command that waits (up to a minute) for `go` to exist.
fn wait_for(go: &Path) -> Command {
    sh(
        "n=0; while [ ! -e \"$1\" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; [ -e \"$1\" ]",
        &[&go.display().to_string()],
    )
}

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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = farm.job(id).await.unwrap();
        if job.state == state {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never became {state}; last {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn raw(sim: &support::CondorSim, argv: &[&str]) -> farm_core::CommandOutput {
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    sim.run(&argv, None).await.unwrap()
}

/// A render killed in the middle of writing a character: following the log of the
/// finished job ends (`farm log --follow` stops), showing the dangling bytes lossily.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_finished_log_that_ends_inside_a_character_ends() {
    let f = SimFarm::new(|_, _| {});
    let id = f
        .farm
        .submit(&request(
            "cut short",
            vec![sh("printf 'frame 1 \\342\\202'; exit 3", &[])],
        ))
        .await
        .unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Failed).await;
    let (mut text, mut offset) = (String::new(), 0);
    for _ in 0..5 {
        let chunk = f.farm.read_log(&id, offset).await.unwrap();
        text.push_str(&chunk.data);
        offset = chunk.next_offset;
        if chunk.complete {
            assert_eq!((text.as_str(), offset), ("frame 1 \u{fffd}", 10));
            return;
        }
    }
    panic!("the log never completed; read {text:?} up to {offset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_leave_the_queue_and_stay_known_through_the_history() {
    let f = SimFarm::new(|_, _| {});
    let id = f
        .farm
        .submit(&request("leaves", vec![sh("echo done", &[])]))
        .await
        .unwrap();
    let cluster: u32 = id.as_str().parse().unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Completed).await;
    until("the job to leave the queue", async || {
        (!f.sim.in_queue(cluster)).then_some(())
    })
    .await;
    assert_eq!(f.sim.history_len(), 1);
    let job = f.farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.name, "leaves");
    assert_eq!(job.tags, ["sim-test"]);
    assert!(job.end_time >= job.start_time && job.start_time.is_some());
    let log = job.render_log_filename.unwrap();
    assert_eq!(std::fs::read_to_string(log).unwrap(), "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_purged_from_the_history_is_read_back_from_its_user_log() {
    let f = SimFarm::new(|_, _| {});
    let id = f
        .farm
        .submit(&request("purged", vec![sh("exit 7", &[])]))
        .await
        .unwrap();
    let cluster: u32 = id.as_str().parse().unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Failed).await;
    until("the job to leave the queue", async || {
        (!f.sim.in_queue(cluster)).then_some(())
    })
    .await;
    f.sim.purge_history(cluster);
    let job = f.farm.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.reason.as_deref(), Some("exit code 7"));
    assert!(
        job.native_state
            .as_deref()
            .unwrap()
            .contains("from the user log"),
        "{job:?}"
    );
    assert_eq!(job.name, "purged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_job_waits_with_its_reason_and_start_releases_it() {
    let f = SimFarm::new(|_, _| {});
    let go = f.dir.path().join("go");
    let id = f
        .farm
        .submit(&request("held", vec![wait_for(&go)]))
        .await
        .unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Running).await;
    let hold = raw(&f.sim, &["condor_hold", id.as_str()]).await;
    assert_eq!(
        hold.stdout,
        format!("All jobs in cluster {id} have been held\n")
    );
    let job = until_state(f.farm.as_ref(), &id, JobState::Waiting).await;
    assert_eq!(
        job.reason.as_deref(),
        Some("held: via condor_hold (by user farm) (HoldReasonCode 1, subcode 0)")
    );
    assert_eq!(f.farm.start(&id).await.unwrap(), id, "release keeps the id");
    std::fs::write(&go, "go").unwrap();
    let job = until_state(f.farm.as_ref(), &id, JobState::Completed).await;
    assert_eq!(job.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_past_the_hold_timeout_fails_and_start_runs_it_again() {
    let f = SimFarm::new(|s, _| s.hold_timeout = Some(Duration::from_secs(1)));
    let go = f.dir.path().join("go");
    let id = f
        .farm
        .submit(&request("held-too-long", vec![wait_for(&go)]))
        .await
        .unwrap();
    until_state(f.farm.as_ref(), &id, JobState::Running).await;
    raw(&f.sim, &["condor_hold", id.as_str()]).await;
    let failed = until_state(f.farm.as_ref(), &id, JobState::Failed).await;
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .contains("held for more than 1s"),
        "{failed:?}"
    );
    // Stopping a job that is Failed changes nothing.
    f.farm.stop(&id).await.unwrap();
    assert_eq!(f.farm.job(&id).await.unwrap().state, JobState::Failed);
    std::fs::write(&go, "go").unwrap();
    let again = f.farm.start(&id).await.unwrap();
    assert_ne!(again, id);
    let job = until_state(f.farm.as_ref(), &again, JobState::Completed).await;
    assert_eq!(job.attempt, 2);
    // The held procs of the first attempt were removed, not left in the queue forever.
    let old: u32 = id.as_str().parse().unwrap();
    until("the held attempt to leave the queue", async || {
        (!f.sim.in_queue(old)).then_some(())
    })
    .await;
    assert!(f.farm.job(&id).await.unwrap().state.is_terminal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_limit_fails_the_job() {
    let f = SimFarm::new(|_, _| {});
    let mut r = request("too-slow", vec![sh("sleep 30", &[])]);
    r.resources.time_limit = Some(farm_core::TimeLimit::from_secs(1));
    let id = f.farm.submit(&r).await.unwrap();
    let job = until_state(f.farm.as_ref(), &id, JobState::Failed).await;
    let reason = job.reason.unwrap();
    assert!(
        reason.starts_with("time limit exceeded: held: The job exceeded allowed execute duration"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_job_is_the_one_found_again_by_its_render_context() {
    let f = SimFarm::new(|_, _| {});
    let flag = f.dir.path().join("second");
    let r = request(
        "restart",
        vec![sh(
            "[ -e \"$1\" ] || { touch \"$1\"; exit 2; }",
            &[&flag.display().to_string()],
        )],
    );
    let first = f.farm.submit(&r).await.unwrap();
    until_state(f.farm.as_ref(), &first, JobState::Failed).await;
    let second = f.farm.start(&first).await.unwrap();
    let job = until_state(f.farm.as_ref(), &second, JobState::Completed).await;
    assert_eq!(job.attempt, 2);
    assert_eq!(
        f.farm.submit(&r).await.unwrap(),
        second,
        "submitting the context again finds the newest attempt"
    );
    let listed = f
        .farm
        .list_jobs(&JobFilter {
            tag: Some("sim-test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let attempts: Vec<(String, u32, JobState)> = listed
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_procs_and_progress_counts_their_frames() {
    let f = SimFarm::new(|_, _| {});
    let dir = f.dir.path().join("frames");
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = request(
        "chunks",
        vec![sh(
            "touch \"$1/$2\"",
            &[&dir.display().to_string(), "{frame}"],
        )],
    );
    r.frames = Some("1-7".parse().unwrap());
    r.chunk_size = 2;
    let id = f.farm.submit(&r).await.unwrap();
    let job = until_state(f.farm.as_ref(), &id, JobState::Completed).await;
    assert_eq!(
        job.progress,
        Some(farm_core::Progress {
            frames_done: 7,
            frames_total: 7
        })
    );
    assert_eq!(job.native_state.as_deref(), Some("4 Completed"));
    for frame in 1..=7 {
        assert!(dir.join(frame.to_string()).exists(), "frame {frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_reruns_a_failing_proc_inside_one_attempt() {
    let f = SimFarm::new(|s, _| s.max_retries = Some(2));
    let count = f.dir.path().join("count");
    let r = request(
        "retried",
        vec![sh(
            "echo x >> \"$1\"; [ $(wc -l < \"$1\") -ge 3 ]",
            &[&count.display().to_string()],
        )],
    );
    let id = f.farm.submit(&r).await.unwrap();
    let job = until_state(f.farm.as_ref(), &id, JobState::Completed).await;
    assert_eq!(job.attempt, 1);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_unsupported_on_submit_but_rendered_as_a_dag() {
    let f = SimFarm::new(|_, _| {});
    let mut r = request("dependent", vec![sh("true", &[])]);
    r.depends_on = vec![JobId::new("4711")];
    let err = f.farm.submit(&r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(f.sim.submissions(), 0);
    let files = f.farm.render(&r).await.unwrap();
    assert!(files.files.iter().any(|file| file.name == "farm.dag"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_in_the_recorded_formats() {
    let f = SimFarm::new(|_, _| {});
    let fixture = |p: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/htcondor/cli_outputs")
                .join(p),
        )
        .unwrap()
    };
    let q = raw(
        &f.sim,
        &["condor_q", "-json", "-constraint", "ClusterId == 1"],
    )
    .await;
    assert_eq!(
        (q.status, q.stdout.as_str()),
        (Some(0), ""),
        "condor_q prints nothing when no job matches"
    );
    let h = raw(
        &f.sim,
        &["condor_history", "-json", "-constraint", "ClusterId == 1"],
    )
    .await;
    assert_eq!(h.stdout, "[\n]\n");
    let rm = raw(&f.sim, &["condor_rm", "4243"]).await;
    assert_eq!(
        (rm.status, rm.stderr.clone()),
        (
            Some(0),
            fixture("condor_rm_cluster_emptyqueue_exit0.stderr")
        )
    );
    let go = f.dir.path().join("go");
    let id = f
        .farm
        .submit(&request("formats", vec![wait_for(&go)]))
        .await
        .unwrap();
    let missing = raw(&f.sim, &["condor_release", id.as_str()]).await;
    assert_eq!(
        missing.stderr,
        fixture("condor_release_cluster_notfound.stderr").replace("9999", id.as_str())
    );
    let q = raw(
        &f.sim,
        &[
            "condor_q",
            "-json",
            "-attributes",
            "ClusterId,ProcId,JobStatus",
        ],
    )
    .await;
    assert!(
        q.stdout.starts_with("[\n{\n  \"ClusterId\": ") && q.stdout.ends_with("}\n]\n"),
        "{}",
        q.stdout
    );
    let rm = raw(&f.sim, &["condor_rm", id.as_str()]).await;
    assert_eq!(
        rm.stdout,
        fixture("condor_rm_cluster_ok.stdout").replace("4243", id.as_str())
    );
    let again = raw(&f.sim, &["condor_rm", id.as_str()]).await;
    assert_eq!(
        again.stderr,
        fixture("condor_rm_cluster_notfound.stderr").replace("9999", id.as_str())
    );
    let job = until_state(f.farm.as_ref(), &id, JobState::Cancelled).await;
    assert_eq!(job.reason.as_deref(), Some("via condor_rm (by user farm)"));
    let bad = f
        .sim
        .run(
            &["condor_submit".into(), "-terse".into(), "-".into()],
            Some(b"executable = /bin/true\narguments = \"unterminated 'a b\"\nqueue\n"),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, Some(1));
    assert!(
        bad.stderr.contains("Unbalanced quote starting here"),
        "{}",
        bad.stderr
    );
    let err = farm_htcondor::parse::command_error("condor_submit", &bad);
    assert_eq!(err.kind(), ErrorKind::Scheduler);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_builds_the_farm_from_a_farms_file() {
    let mut registry = farm_core::AdapterRegistry::new();
    farm_htcondor::register(&mut registry);
    assert!(registry.has("htcondor"));
    let state = tempfile::tempdir().unwrap();
    let config = farm_core::FarmsConfig::from_yaml_str(
        &format!(
            "farms:\n  pool:\n    adapter: htcondor\n    settings: {{log_directory: /mnt/logs, command_timeout: 5s, bin_dir: /opt/condor/bin, state_directory: '{}'}}\n",
            state.path().display()
        ),
        "farms.yaml",
    )
    .unwrap();
    let farm = registry.build_named(&config, "pool").unwrap();
    assert_eq!(farm.adapter(), "htcondor");
    assert!(!farm.capabilities().dependencies && farm.capabilities().idempotent_submit);
    let r = JobRequest::from_yaml_str(
        "name: x\nrender_context: 00000000-0000-4000-8000-000000000001\ncommands: [[/bin/true]]\n",
    )
    .unwrap();
    let rendered = farm.render(&r).await.unwrap();
    assert!(
        rendered
            .main()
            .contents
            .contains("log = /mnt/logs/00000000-0000-4000-8000-000000000001/condor.log\n")
    );
    // Tools missing where bin_dir points are a configuration error naming the setting, not
    // a passing fault to retry.
    let err = farm.job(&JobId::new("12")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("/opt/condor/bin/condor_q") && err.to_string().contains("bin_dir"),
        "{err}"
    );
    let bad = farm_core::FarmsConfig::from_yaml_str(
        "farms:\n  pool:\n    adapter: htcondor\n    settings: {colour: red}\n",
        "f",
    )
    .unwrap();
    let err = registry.build_named(&bad, "pool").unwrap_err().to_string();
    assert!(
        err.contains("farm pool: settings") && err.contains("colour"),
        "{err}"
    );
}

/// Over ssh: the adapter's commands, constraints with quotes and `&&` included, survive the
/// remote shell. A stand-in `ssh` runs the script locally; stand-in `condor_q` and
/// `condor_history` record their argv and print recorded output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_survive_the_ssh_transport() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let write_exe = |path: &Path, text: &str| {
        std::fs::write(path, text).unwrap();
        let mut perm = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(path, perm).unwrap();
    };
    let fake_ssh = dir.path().join("fake-ssh");
    write_exe(
        &fake_ssh,
        "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift 2; exec \"$@\"\n",
    );
    let history = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/htcondor/condor_history/condor_history_json.json");
    let argv_log = dir.path().join("argv");
    write_exe(
        &bin.join("condor_q"),
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> '{}'\n",
            argv_log.display()
        ),
    );
    write_exe(
        &bin.join("condor_history"),
        &format!("#!/bin/sh\ncat '{}'\n", history.display()),
    );
    let settings = farm_htcondor::CondorSettings {
        bin_dir: Some(bin.clone()),
        command_timeout: Duration::from_secs(10),
        state_directory: Some(dir.path().join("state")),
        ..Default::default()
    };
    let runner = Arc::new(
        farm_core::SshRunner::new("render@submit01", vec![], Duration::from_secs(10))
            .with_ssh_program(fake_ssh.display().to_string()),
    );
    let farm =
        farm_htcondor::CondorFarm::with_runner("remote", settings, Default::default(), runner)
            .unwrap();
    let job = farm.job(&JobId::new("4244")).await.unwrap();
    assert_eq!(
        (job.state, job.reason.as_deref()),
        (JobState::Failed, Some("proc 4244.0: exit code 3"))
    );
    let listed = farm
        .list_jobs(&JobFilter {
            tag: Some("show:x".into()),
            name: Some("a \"q\" $x".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        listed.is_empty(),
        "the recorded ads carry no farm attributes"
    );
    let seen = std::fs::read_to_string(&argv_log).unwrap();
    assert!(seen.contains("\nClusterId == 4244\n"), "{seen}");
    assert!(
        seen.contains("\nFarmRenderContext =!= undefined && stringListMember(\"show:x\", FarmTags) && FarmName =?= \"a %22q%22 %24x\"\n"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_are_polled_with_one_condor_q_call() {
    let f = SimFarm::new(|_, _| {});
    let go = f.dir.path().join("go");
    let running = f
        .farm
        .submit(&request("poll-running", vec![wait_for(&go)]))
        .await
        .unwrap();
    let done = f
        .farm
        .submit(&request("poll-done", vec![sh("exit 4", &[])]))
        .await
        .unwrap();
    until_state(f.farm.as_ref(), &done, JobState::Failed).await;
    let cluster: u32 = done.as_str().parse().unwrap();
    until("the failed job to leave the queue", async || {
        (!f.sim.in_queue(cluster)).then_some(())
    })
    .await;
    let (q, h) = (f.sim.calls("condor_q"), f.sim.calls("condor_history"));
    let ids = [
        running.clone(),
        done.clone(),
        JobId::new("987654321"),
        JobId::new("not-an-id"),
    ];
    let polled = f.farm.poll(&ids).await.unwrap();
    assert_eq!(
        (
            f.sim.calls("condor_q") - q,
            f.sim.calls("condor_history") - h
        ),
        (1, 1)
    );
    assert_eq!(polled[0].as_ref().unwrap().state, JobState::Running);
    assert_eq!(
        polled[1].as_ref().unwrap().reason.as_deref(),
        Some("exit code 4")
    );
    for unknown in &polled[2..] {
        assert_eq!(unknown.as_ref().unwrap_err().kind(), ErrorKind::JobNotFound);
    }
    for (id, job) in ids[..2].iter().zip(&polled) {
        assert_eq!(
            job.as_ref().unwrap(),
            &f.farm.job(id).await.unwrap(),
            "poll and job agree"
        );
    }
    std::fs::write(&go, "go").unwrap();
    until_state(f.farm.as_ref(), &running, JobState::Completed).await;
}

/// `check` renders (the adapter's own refusals), then `condor_submit -terse -dry-run - -`
/// of exactly the description submit sends; nothing is queued or written, a wrapper-mode
/// job's not-yet-written wrapper is not transferred in the dry run only, and condor_submit's
/// refusal is `InvalidRequest` in its words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_a_dry_run_of_what_submit_sends() {
    let f = SimFarm::new(|_, _| {});
    assert!(f.farm.capabilities().check && !f.farm.capabilities().check_resources);
    let mut direct = request("checked", vec![sh("true", &[])]);
    direct.frames = Some("1-4".parse().unwrap());
    let report = f.farm.check(&direct).await.unwrap();
    assert_eq!(
        report.message,
        "condor_submit -dry-run accepted the submit description: 4 proc(s) would be queued"
    );
    assert_eq!(f.sim.submissions(), 0);
    assert_eq!(f.sim.queued(), 0);
    assert!(
        !f.dir.path().join("logs").exists(),
        "check wrote the job's directory"
    );
    let rendered = f.farm.render(&direct).await.unwrap();
    assert_eq!(f.sim.dry_runs(), vec![rendered.main().contents.clone()]);

    // Two commands: wrapper mode, whose task.sh only submit writes.
    let wrapped = request("wrapped", vec![sh("true", &[]), sh("true", &[])]);
    assert_eq!(
        farm_htcondor::render::mode(&wrapped, f.farm.settings()),
        farm_htcondor::render::Mode::Wrapper
    );
    f.farm.check(&wrapped).await.unwrap();
    let args = f.sim.last_args("condor_submit");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "-append" && w[1] == "transfer_executable = false"),
        "{args:?}"
    );
    assert_eq!(f.sim.submissions(), 0);

    // What condor_submit refuses comes back in its words.
    let mut refused = request("refused", vec![sh("true", &[])]);
    refused
        .native
        .insert("htcondor".into(), serde_json::json!({"universe": "grid"}));
    let err = f.farm.check(&refused).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    assert!(err.to_string().contains("universe"), "{err}");
    // What the adapter refuses never reaches condor_submit.
    let before = f.sim.dry_runs().len();
    let mut bad = request("bad", vec![sh("true", &[])]);
    bad.native.insert(
        "htcondor".into(),
        serde_json::json!({"executable": "/bin/x"}),
    );
    assert_eq!(
        f.farm.check(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    assert_eq!(f.sim.dry_runs().len(), before);
}
