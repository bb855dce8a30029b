use super::*;
use farm_core::Command;

fn store(dir: &Path) -> Store {
    Store::open(
        &dir.join("q.db"),
        &dir.join("logs"),
        StoreOptions {
            max_tries: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn request(name: &str) -> JobRequest {
    JobRequest::new(name, vec![Command::Argv(vec!["true".into()])])
}

fn agent(s: &Store) -> i64 {
    s.register_agent(&AgentHello {
        name: "a".into(),
        hostname: "h".into(),
        pid: 1,
        local: false,
        version: String::new(),
        slots: 8,
        cpus: 8,
        memory_mib: 16 * 1024,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn ids_are_positive_decimal_integers() {
    assert_eq!(parse_job_id("17"), Some(17));
    for bad in [
        "",
        "0",
        "017",
        "+1",
        "-1",
        "1.0",
        "farm-conformance-no-such-job",
        "9999999999999999999",
    ] {
        assert_eq!(parse_job_id(bad), None, "{bad}");
    }
}

#[test]
fn a_task_runs_through_lease_start_and_finish() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (job, created) = s.submit(&request("one"), None, "{}").unwrap();
    assert!(created);
    assert_eq!(
        (job.job.state, job.job.native_state.as_deref()),
        (JobState::Waiting, Some("QUEUED"))
    );
    let a = agent(&s);
    let lease = s.lease(a).unwrap().expect("work");
    assert_eq!(
        s.job("1").unwrap().job.native_state.as_deref(),
        Some("DISPATCHED")
    );
    s.start_assignment(a, lease.assignment_id, "a").unwrap();
    assert_eq!(s.job("1").unwrap().job.state, JobState::Running);
    assert_eq!(
        s.append_log(a, lease.assignment_id, 0, b"hello\n").unwrap(),
        6
    );
    assert_eq!(
        s.append_log(a, lease.assignment_id, 0, b"hello\nworld\n")
            .unwrap(),
        12,
        "resent bytes are skipped"
    );
    assert!(matches!(
        s.append_log(a, lease.assignment_id, 20, b"x"),
        Err(StoreError::LogGap(12))
    ));
    s.finish_assignment(a, lease.assignment_id, &TaskReport::Succeeded)
        .unwrap();
    s.finish_assignment(a, lease.assignment_id, &TaskReport::Succeeded)
        .unwrap();
    let done = s.job("1").unwrap().job;
    assert_eq!(done.state, JobState::Completed);
    assert!(done.start_time.unwrap() <= done.end_time.unwrap());
    let log = s.read_log("1", 0, 1 << 20).unwrap();
    let text = String::from_utf8(log.data).unwrap();
    assert!(
        text.starts_with("farm: job started on agent a") && text.ends_with("hello\nworld\n"),
        "{text}"
    );
    assert!(log.complete);
    assert_eq!(s.terminal_transition_counts().unwrap(), [(1, 1)]);
}

#[test]
fn idempotency_keys_return_the_first_job_or_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (a, _) = s.submit(&request("x"), Some("k"), "body").unwrap();
    let (b, created) = s.submit(&request("x"), Some("k"), "body").unwrap();
    assert_eq!((a.job.id, created), (b.job.id, false));
    assert!(matches!(
        s.submit(&request("y"), Some("k"), "other"),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn priority_then_submit_order_decides_what_runs_next() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("low"), None, "").unwrap();
    let mut high = request("high");
    high.priority = 10;
    s.submit(&high, None, "").unwrap();
    s.submit(&request("low2"), None, "").unwrap();
    let a = agent(&s);
    let order: Vec<String> = (0..3)
        .map(|_| s.lease(a).unwrap().unwrap().job_id)
        .collect();
    assert_eq!(order, ["2", "1", "3"]);
    assert!(s.lease(a).unwrap().is_none());
}

#[test]
fn dependents_wait_and_are_cancelled_when_a_dependency_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("dep"), None, "").unwrap();
    let mut child = request("child");
    child.depends_on = vec![JobId::new("1")];
    let mut grandchild = request("grandchild");
    grandchild.depends_on = vec![JobId::new("2")];
    s.submit(&child, None, "").unwrap();
    s.submit(&grandchild, None, "").unwrap();
    assert_eq!(
        s.job("2").unwrap().job.native_state.as_deref(),
        Some("BLOCKED")
    );
    let a = agent(&s);
    let l = s.lease(a).unwrap().unwrap();
    assert!(
        s.lease(a).unwrap().is_none(),
        "blocked tasks are not handed out"
    );
    s.start_assignment(a, l.assignment_id, "a").unwrap();
    s.finish_assignment(
        a,
        l.assignment_id,
        &TaskReport::Failed {
            reason: "exit code 3".into(),
            exit_code: Some(3),
        },
    )
    .unwrap();
    let c = s.job("2").unwrap().job;
    assert_eq!(
        (c.state, c.reason.as_deref()),
        (JobState::Cancelled, Some("dependency 1 ended Failed"))
    );
    assert_eq!(
        s.job("3").unwrap().job.state,
        JobState::Cancelled,
        "cancellation cascades"
    );
    let mut late = request("late");
    late.depends_on = vec![JobId::new("1")];
    assert_eq!(
        s.submit(&late, None, "").unwrap().0.job.state,
        JobState::Cancelled
    );
    let mut unknown = request("unknown");
    unknown.depends_on = vec![JobId::new("99")];
    assert!(
        matches!(s.submit(&unknown, None, ""), Err(StoreError::Invalid { field, .. }) if field == "depends_on[0]")
    );
}

#[test]
fn a_lost_agent_requeues_its_task_until_tries_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("x"), None, "").unwrap();
    for try_ in 1..=2 {
        let a = agent(&s);
        let l = s.lease(a).unwrap().unwrap();
        assert_eq!(l.r#try, try_);
        s.start_assignment(a, l.assignment_id, "a").unwrap();
        s.expire_agents(Duration::from_secs(3600), &[a], "process exited")
            .unwrap();
        assert!(matches!(
            s.finish_assignment(a, l.assignment_id, &TaskReport::Succeeded),
            Err(StoreError::Gone(_))
        ));
    }
    let job = s.job("1").unwrap().job;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.reason.as_deref().unwrap().contains("lost"),
        "{:?}",
        job.reason
    );
}

#[test]
fn stop_and_start_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("x"), None, "").unwrap();
    let a = agent(&s);
    let l = s.lease(a).unwrap().unwrap();
    s.start_assignment(a, l.assignment_id, "a").unwrap();
    assert_eq!(
        s.stop("1").unwrap().job.native_state.as_deref(),
        Some("STOPPING")
    );
    assert!(matches!(s.start("1"), Err(StoreError::Conflict(_))));
    assert_eq!(
        s.heartbeat(a, &[l.assignment_id], true).unwrap(),
        [l.assignment_id]
    );
    s.finish_assignment(a, l.assignment_id, &TaskReport::Cancelled)
        .unwrap();
    assert_eq!(s.job("1").unwrap().job.state, JobState::Cancelled);
    assert_eq!(
        s.stop("1").unwrap().job.state,
        JobState::Cancelled,
        "stopping a finished job changes nothing"
    );
    let again = s.start("1").unwrap().job;
    assert_eq!((again.state, again.attempt), (JobState::Waiting, 2));
    assert_eq!(
        s.start("1").unwrap().job.attempt,
        2,
        "starting a waiting job changes nothing"
    );
    assert!(matches!(s.stop("42"), Err(StoreError::JobNotFound(_))));
}

#[test]
fn a_restart_requeues_unconfirmed_tasks_and_refuses_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let (a, lease) = {
        let s = store(dir.path());
        s.submit(&request("x"), None, "").unwrap();
        let a = agent(&s);
        (a, s.lease(a).unwrap().unwrap())
    };
    let s = store(dir.path());
    assert_eq!(s.recover().unwrap(), 1);
    assert_eq!(
        s.job("1").unwrap().job.native_state.as_deref(),
        Some("QUEUED")
    );
    assert!(matches!(
        s.start_assignment(a, lease.assignment_id, "a"),
        Err(StoreError::Gone(_))
    ));
    let again = s.lease(a).unwrap().unwrap();
    assert_eq!(
        again.r#try, 1,
        "a handout that never started does not use up a try"
    );
}

#[test]
fn listing_pages_by_update_order_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for i in 0..5 {
        let mut r = request(&format!("job{}", i % 2));
        r.tags = vec![format!("t{i}")];
        s.submit(&r, None, "").unwrap();
    }
    let mut q = ListQuery {
        limit: 2,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let (page, next) = s.list(&q).unwrap();
        seen.extend(page.into_iter().map(|j| j.job.id.to_string()));
        match next {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    assert_eq!(seen, ["1", "2", "3", "4", "5"]);
    let by_name = s
        .list(&ListQuery {
            name: Some("job1".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .0;
    assert_eq!(
        by_name
            .iter()
            .map(|j| j.job.id.as_str())
            .collect::<Vec<_>>(),
        ["2", "4"]
    );
    let by_tag = s
        .list(&ListQuery {
            tag: Some("t3".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .0;
    assert_eq!(by_tag.len(), 1);
    let none = s
        .list(&ListQuery {
            states: vec![JobState::Failed],
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .0;
    assert!(none.is_empty());
}

#[test]
fn log_reads_never_split_a_character() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("x"), None, "").unwrap();
    let a = agent(&s);
    let l = s.lease(a).unwrap().unwrap();
    s.start_assignment(a, l.assignment_id, "a").unwrap();
    let before = s.read_log("1", 0, 1 << 20).unwrap().next_offset;
    s.append_log(a, l.assignment_id, 0, "é漢".as_bytes())
        .unwrap();
    let r = s.read_log("1", before, 2).unwrap();
    assert_eq!((r.data.as_slice(), r.complete), ("é".as_bytes(), false));
    let next = s.read_log("1", r.next_offset, 2).unwrap();
    assert!(
        next.next_offset > r.next_offset,
        "a limit smaller than a character still makes progress"
    );
}

fn frames_request(name: &str, frames: &str, script: &str) -> JobRequest {
    let mut r = JobRequest::new(name, vec![Command::Shell(script.into())]);
    r.frames = Some(frames.parse().unwrap());
    r
}

fn fail(s: &Store, a: i64, lease: &Assignment, code: i32) {
    s.start_assignment(a, lease.assignment_id, "a").unwrap();
    s.finish_assignment(
        a,
        lease.assignment_id,
        &TaskReport::Failed {
            reason: format!(
                "command 1 (frame {}): exit code {code}",
                lease.task_index + 1
            ),
            exit_code: Some(code),
        },
    )
    .unwrap();
}

fn succeed(s: &Store, a: i64, lease: &Assignment) {
    s.start_assignment(a, lease.assignment_id, "a").unwrap();
    s.finish_assignment(a, lease.assignment_id, &TaskReport::Succeeded)
        .unwrap();
}

#[test]
fn retrying_failed_tasks_reruns_only_them_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames_request("ten", "1-10", "true"), None, "")
        .unwrap();
    let a = agent(&s);
    for _ in 0..10 {
        let lease = s.lease(a).unwrap().unwrap();
        if matches!(lease.task_index, 3 | 6) {
            fail(&s, a, &lease, 3);
        } else {
            succeed(&s, a, &lease);
        }
    }
    let job = s.job("1").unwrap().job;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.reason.as_deref(),
        Some("frames 4, 7 failed: exit code 3")
    );
    assert_eq!(job.progress.unwrap().frames_done, 8);
    let failed = s
        .tasks(
            "1",
            &TaskQuery {
                states: vec![TaskState::Failed],
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap()
        .0;
    assert_eq!(
        failed
            .iter()
            .map(|t| (t.index, t.exit_code, t.agent.as_deref()))
            .collect::<Vec<_>>(),
        [(3, Some(3), Some("a")), (6, Some(3), Some("a"))]
    );

    let again = s.retry_failed("1").unwrap();
    assert_eq!(again.job.id.as_str(), "1");
    assert_eq!(again.job.attempt, 1, "the job's attempt stays");
    assert_eq!(
        again.job.state,
        JobState::Running,
        "done frames count as progress"
    );
    let second: Vec<Assignment> = (0..2).map(|_| s.lease(a).unwrap().unwrap()).collect();
    assert_eq!(
        second
            .iter()
            .map(|l| (l.task_index, l.attempt, l.frames.as_deref()))
            .collect::<Vec<_>>(),
        [(3, 2, Some("4")), (6, 2, Some("7"))]
    );
    assert!(s.lease(a).unwrap().is_none(), "done frames never run again");
    for lease in &second {
        succeed(&s, a, lease);
    }
    let job = s.job("1").unwrap().job;
    assert_eq!(
        (job.state, job.progress.unwrap().frames_done),
        (JobState::Completed, 10)
    );
    let page = s
        .tasks(
            "1",
            &TaskQuery {
                limit: 4,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((page.0.len(), page.1), (4, Some(3)));
    assert_eq!(page.0[0].attempt, 1);
    let rest = s
        .tasks(
            "1",
            &TaskQuery {
                limit: 100,
                after: page.1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((rest.0[0].index, rest.0[0].attempt, rest.1), (4, 1, None));
    assert!(matches!(
        s.tasks(
            "99",
            &TaskQuery {
                limit: 1,
                ..Default::default()
            }
        ),
        Err(StoreError::JobNotFound(_))
    ));
    // Nothing failed: nothing changes.
    let same = s.retry_failed("1").unwrap();
    assert_eq!(same.job.state, JobState::Completed);
}

#[test]
fn equal_priorities_take_turns_task_by_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames_request("a", "1-3", "true"), None, "")
        .unwrap();
    s.submit(&frames_request("b", "1-3", "true"), None, "")
        .unwrap();
    let a = agent(&s);
    let order: Vec<String> = (0..6)
        .map(|_| s.lease(a).unwrap().unwrap().job_id)
        .collect();
    assert_eq!(order, ["1", "2", "1", "2", "1", "2"]);
}

#[test]
fn tasks_go_only_where_they_fit_and_say_why_when_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let small = agent(&s);
    let mut big = request("big");
    big.resources.memory = Some(farm_core::MemorySize::from_mib(64 * 1024));
    s.submit(&big, None, "").unwrap();
    let mut pooled = request("pooled");
    pooled
        .native
        .insert("local".into(), serde_json::json!({"pool": "lighting"}));
    s.submit(&pooled, None, "").unwrap();
    let mut four = request("four cpus");
    four.resources.cpus = Some(4);
    s.submit(&four, None, "").unwrap();
    s.submit(&four, None, "").unwrap();
    s.submit(&four, None, "").unwrap();
    assert_eq!(
        s.job("1").unwrap().job.reason.as_deref(),
        Some("no agent has 64 GiB of memory (largest: 16 GiB)")
    );
    assert_eq!(
        s.job("2").unwrap().job.reason.as_deref(),
        Some("no agent has the tag lighting")
    );
    let got: Vec<String> =
        std::iter::from_fn(|| s.lease(small).unwrap().map(|l| l.job_id)).collect();
    assert_eq!(got, ["3", "4"], "8 cpus hold two 4-cpu tasks");
    let lighting = s
        .register_agent(&AgentHello {
            name: "l".into(),
            slots: 1,
            tags: vec!["lighting".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        s.job("2").unwrap().job.reason,
        None,
        "a lighting agent came"
    );
    assert_eq!(s.lease(lighting).unwrap().unwrap().job_id, "2");
    let err = s.placement(&big).unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, problem } if field == "resources.memory" && problem.contains("64 GiB")),
        "{err:?}"
    );
    assert!(s.placement(&four).unwrap().placement.unwrap().contains('a'));
}

#[test]
fn priority_changes_the_order_and_finished_jobs_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("first"), None, "").unwrap();
    s.submit(&request("second"), None, "").unwrap();
    let before = s.job("2").unwrap().updated_at;
    let changed = s.set_priority("2", 50).unwrap();
    assert_eq!(changed.priority, 50);
    assert!(changed.updated_at >= before);
    assert!(matches!(
        s.set_priority("2", 1001),
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        s.set_priority("9", 1),
        Err(StoreError::JobNotFound(_))
    ));
    let a = agent(&s);
    assert_eq!(s.lease(a).unwrap().unwrap().job_id, "2");
    // Waiting or running: refused; finished: deleted, with its log.
    assert!(matches!(s.delete_job("1"), Err(StoreError::Conflict(_))));
    s.stop("1").unwrap();
    let log = s.job("1").unwrap().job.render_log_filename.unwrap();
    std::fs::write(&log, "x").unwrap();
    s.delete_job("1").unwrap();
    assert!(matches!(s.job("1"), Err(StoreError::JobNotFound(_))));
    assert!(!Path::new(&log).exists());
    assert!(matches!(s.delete_job("1"), Err(StoreError::JobNotFound(_))));
}

#[test]
fn a_disabled_agent_gets_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&request("job"), None, "").unwrap();
    let a = agent(&s);
    let status = s.set_agent_disabled(a, true).unwrap();
    assert!(status.disabled && status.alive && status.last_seen.is_some());
    assert!(s.lease(a).unwrap().is_none());
    s.note_load(a, Some(0.5));
    let status = s.set_agent_disabled(a, false).unwrap();
    assert_eq!(
        (status.disabled, status.load, status.slots),
        (false, Some(0.5), 8)
    );
    let leased = s.lease(a).unwrap().unwrap();
    let listed = s.agent_statuses(0).unwrap();
    assert_eq!(listed[0].task, Some(i64::from(leased.task_index)));
    assert!(matches!(
        s.set_agent_disabled(99, true),
        Err(StoreError::Gone(_))
    ));
}

/// Rewinds a fresh database to an earlier schema: drops the given columns (and the indexes
/// on them) and sets `user_version`.
fn rewind(dir: &Path, version: i64, columns: &[(&str, &str)]) {
    let conn = rusqlite::Connection::open(dir.join("q.db")).unwrap();
    conn.execute_batch("DROP INDEX jobs_runnable").unwrap();
    for (table, column) in columns {
        conn.execute_batch(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
            .unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
}

#[test]
fn version_1_and_2_databases_upgrade_to_disabled_agents_and_placement() {
    let version_2 = [("agents", "disabled")];
    let mut version_1: Vec<(&str, &str)> = schema::UPGRADE_FROM_1
        .iter()
        .filter_map(|s| s.strip_prefix("ALTER TABLE "))
        .map(|s| {
            let mut words = s.split_whitespace();
            let table = words.next().unwrap();
            (table, words.nth(2).unwrap())
        })
        .collect();
    version_1.push(("agents", "disabled"));
    for (version, columns) in [(2, &version_2[..]), (1, &version_1[..])] {
        let dir = tempfile::tempdir().unwrap();
        drop(store(dir.path()));
        rewind(dir.path(), version, columns);
        let s = store(dir.path());
        s.submit(&request("job"), None, "").unwrap();
        let a = agent(&s);
        assert!(s.set_agent_disabled(a, true).unwrap().disabled);
        assert!(s.lease(a).unwrap().is_none(), "version {version}");
        s.set_agent_disabled(a, false).unwrap();
        assert_eq!(s.lease(a).unwrap().unwrap().job_id, "1");
        drop(s);
        let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
        let now: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(now, schema::VERSION);
    }
}
