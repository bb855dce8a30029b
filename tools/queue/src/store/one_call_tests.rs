//! One call per task: a lease that carries the previous report and starts what it hands
//! out, heartbeats that take back hand-outs an agent never received, and the statements a
//! task runs compiled once.

use super::*;
use farm_core::{Command, FrameSet};

fn store(dir: &Path) -> Store {
    Store::open(
        &dir.join("q.db"),
        &dir.join("logs"),
        StoreOptions::default(),
    )
    .unwrap()
}

fn agent(s: &Store, slots: u32) -> i64 {
    s.register_agent(&AgentHello {
        name: "a".into(),
        hostname: "h".into(),
        pid: 1,
        slots,
        cpus: 8,
        memory_mib: 16 * 1024,
        ..Default::default()
    })
    .unwrap()
}

fn frames(name: &str, set: &str) -> JobRequest {
    let mut r = JobRequest::new(name, vec![Command::Argv(vec!["true".into()])]);
    r.frames = Some(set.parse::<FrameSet>().unwrap());
    r
}

fn done(assignment: &Assignment) -> Finished {
    Finished {
        assignment_id: assignment.assignment_id,
        report: TaskReport::Succeeded,
    }
}

#[test]
fn a_lease_reports_the_previous_task_and_starts_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames("three", "1-3"), None, "").unwrap();
    let a = agent(&s, 1);
    let first = s.lease_with(a, None, Some("render07")).unwrap().unwrap();
    assert!(first.started);
    let job = s.job("1").unwrap().job;
    assert_eq!(job.state, JobState::Running, "started on hand-out");
    assert!(job.start_time.is_some());
    // The one slot is busy until the report comes.
    assert!(s.lease_with(a, None, Some("render07")).unwrap().is_none());
    let second = s
        .lease_with(a, Some(&done(&first)), Some("render07"))
        .unwrap()
        .expect("the report freed the slot");
    assert_eq!(second.task_index, 1);
    assert_eq!(s.job("1").unwrap().job.progress.unwrap().frames_done, 1);
    let third = s
        .lease_with(a, Some(&done(&second)), Some("render07"))
        .unwrap()
        .unwrap();
    assert!(
        s.lease_with(a, Some(&done(&third)), Some("render07"))
            .unwrap()
            .is_none()
    );
    let job = s.job("1").unwrap().job;
    assert_eq!(
        (job.state, job.progress.unwrap().frames_done),
        (JobState::Completed, 3)
    );
    let log = s.read_log("1", 0, 1 << 20).unwrap();
    let text = String::from_utf8(log.data).unwrap();
    assert_eq!(
        text.matches("started on agent render07, attempt 1").count(),
        3,
        "{text}"
    );
    // Sending the same report again (a lost reply) changes nothing.
    assert!(
        s.lease_with(a, Some(&done(&third)), None)
            .unwrap()
            .is_none()
    );
    assert_eq!(s.job("1").unwrap().job.state, JobState::Completed);
}

#[test]
fn a_report_the_server_no_longer_wants_does_not_fail_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames("stopped", "1"), None, "").unwrap();
    let a = agent(&s, 1);
    let taken = s.lease_with(a, None, Some("a")).unwrap().unwrap();
    s.stop("1").unwrap();
    s.finish_assignment(a, taken.assignment_id, &TaskReport::Cancelled)
        .unwrap();
    s.submit(&frames("next", "1"), None, "").unwrap();
    // A late "succeeded" for the cancelled run is dropped; the next task still comes.
    let next = s
        .lease_with(a, Some(&done(&taken)), Some("a"))
        .unwrap()
        .expect("the lease is served");
    assert_eq!(next.job_id, "2");
    assert_eq!(s.job("1").unwrap().job.state, JobState::Cancelled);
}

#[test]
fn a_failed_report_with_the_lease_fails_the_job_with_its_frame() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames("f", "4"), None, "").unwrap();
    let a = agent(&s, 1);
    let l = s.lease_with(a, None, Some("a")).unwrap().unwrap();
    let failed = Finished {
        assignment_id: l.assignment_id,
        report: TaskReport::Failed {
            reason: "command 0 (frame 4): exit code 3".into(),
            exit_code: Some(3),
        },
    };
    assert!(s.lease_with(a, Some(&failed), Some("a")).unwrap().is_none());
    let job = s.job("1").unwrap().job;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.reason.unwrap().contains("exit code 3"));
}

/// Makes every hand-out look `age` old.
fn age_hand_outs(s: &Store, age: Duration) {
    s.writer.raw(|conn| {
        conn.execute(
            "UPDATE assignments SET dispatched_at = dispatched_at - ?1",
            [age.as_millis() as i64],
        )
        .unwrap()
    });
}

#[test]
fn a_hand_out_the_agent_never_received_goes_back_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.submit(&frames("lost reply", "1-2"), None, "").unwrap();
    let a = agent(&s, 2);
    let known = s.lease_with(a, None, Some("a")).unwrap().unwrap();
    let never_arrived = s.lease_with(a, None, Some("a")).unwrap().unwrap();
    // Fresh hand-outs are left alone even when the beat does not name them yet.
    assert!(
        s.heartbeat(a, &[known.assignment_id], true)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.job("1").unwrap().job.native_state.as_deref(),
        Some("RUNNING")
    );
    age_hand_outs(&s, super::agents::HAND_OUT_GRACE + Duration::from_secs(1));
    // A later pass of the same long poll does not judge.
    s.heartbeat(a, &[known.assignment_id], false).unwrap();
    assert!(s.lease(a).unwrap().is_none(), "both slots still held");
    s.heartbeat(a, &[known.assignment_id], true).unwrap();
    let again = s.lease_with(a, None, Some("a")).unwrap().expect("requeued");
    assert_eq!(again.task_index, never_arrived.task_index);
    assert_eq!(again.r#try, 2);
    // The run the agent does know was not touched.
    s.finish_assignment(a, known.assignment_id, &TaskReport::Succeeded)
        .unwrap();
    let log = String::from_utf8(s.read_log("1", 0, 1 << 20).unwrap().data).unwrap();
    assert!(log.contains("its agent never received it"), "{log}");
}

/// Every statement here compares a bound parameter with a column of a table that has partial
/// indexes. Written `col = ?1`, SQLite (built with STAT4, as rusqlite bundles it) marks such
/// a statement to be compiled again whenever ?1 changes, which cost every lease a fresh
/// compile of several statements; `+?1` keeps both the index and the compiled statement.
#[test]
fn hot_statements_are_compiled_once_and_use_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (a, b) = (agent(&s, 4), agent(&s, 4));
    for i in 0..4 {
        s.submit(&frames(&format!("j{i}"), "1-3"), None, "")
            .unwrap();
    }
    s.lease_with(a, None, Some("a")).unwrap();
    s.lease_with(b, None, Some("b")).unwrap();
    let statements = [
        (super::placing::AGENT_HOLDS, "assignments_active"),
        (super::agents::TO_STOP, "assignments_active"),
        (super::counts::FAILED_TASKS, "tasks_failed"),
        (super::jobs::REQUEUE_REASON, "tasks_requeued"),
        (super::jobs::CANCEL_REASON, "tasks_cancelled"),
        (super::tasks::NEXT_READY, "tasks_ready"),
    ];
    s.writer.raw(|conn| {
        for (sql, index) in statements {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([1], |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let searches = |step: &String| {
                step.starts_with("SEARCH") && step.contains(index) && step.contains("=?)")
            };
            assert!(
                plan.iter().any(searches),
                "{sql} must search {index} by its key: {plan:?}"
            );
            let mut statement = conn.prepare(sql).unwrap();
            for id in [1i64, 2, 3, 1, 2, 3] {
                let mut rows = statement.query([id]).unwrap();
                while rows.next().unwrap().is_some() {}
            }
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "compiled again on a new binding: {sql}"
            );
        }
    });
}
