//! The parsers on recorded HTCondor output (`fixtures/htcondor/`): condor_q and
//! condor_history JSON in every state, a real 8.8.10 ad, the user log, condor_submit -terse,
//! and the condor_rm/hold/release texts.

use std::path::Path;
use std::time::Duration;

use farm_core::{CommandOutput, ErrorKind, JobState};
use farm_htcondor::parse::{self, Action, ActionOutcome, Judge};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/htcondor")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn out(status: i32, stdout: &str, stderr: &str) -> CommandOutput {
    CommandOutput {
        status: Some(status),
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

/// The recorded ads were made at QDate 1700000000 and entered their state at 1700000600.
const JUDGE: Judge = Judge {
    now: 1_700_000_700,
    hold_timeout: Some(Duration::from_secs(3600)),
};

#[test]
fn condor_q_states_map_proc_by_proc() {
    let ads = parse::parse_ads("condor_q", &fixture("condor_q/condor_q_json_states.json")).unwrap();
    let got: Vec<(u32, JobState, Option<String>)> = ads
        .iter()
        .map(|ad| {
            let s = parse::proc_state(ad, JUDGE.now, JUDGE.hold_timeout);
            (ad.proc_id, s.state, s.reason)
        })
        .collect();
    let held_memory = "held: Error from slot1_2@ep02.example.org: Job has gone over cgroup memory limit of 256 megabytes. (HoldReasonCode 34, subcode 102)";
    let want: Vec<(u32, JobState, Option<&str>)> = vec![
        (0, JobState::Waiting, None),
        (1, JobState::Running, None),
        (
            2,
            JobState::Waiting,
            Some("held: via condor_hold (by user alice) (HoldReasonCode 1, subcode 0)"),
        ),
        (3, JobState::Waiting, Some(held_memory)),
        (4, JobState::Waiting, Some("suspended on its execute node")),
        (
            5,
            JobState::Cancelled,
            Some("via condor_rm (by user alice)"),
        ),
        (6, JobState::Completed, None),
        (7, JobState::Running, None),
        (8, JobState::Waiting, None),
        (9, JobState::Waiting, None),
    ];
    let got: Vec<(u32, JobState, Option<&str>)> =
        got.iter().map(|(p, s, r)| (*p, *s, r.as_deref())).collect();
    assert_eq!(got, want);
    // The cluster as one job: unfinished procs keep it Running, and the job's fields come
    // from the ads.
    let job = parse::cluster_job(4243, &ads, &[], JUDGE);
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.id.as_str(), "4243");
    assert_eq!(job.submit_time, Some(1_700_000_000_000));
    assert_eq!(job.start_time, Some(1_700_000_060_000));
    assert_eq!(job.end_time, None);
    assert_eq!(job.name, "echo", "a foreign job is named after its command");
    assert_eq!(
        job.native_state.as_deref(),
        Some(
            "3 Idle, 1 Running, 1 Removed, 1 Completed, 2 Held, 1 TransferringOutput, 1 Suspended"
        )
    );
    // An hour later the holds have timed out: those procs are Failed, the job still runs.
    let later = Judge {
        now: 1_700_000_600 + 3601,
        ..JUDGE
    };
    assert_eq!(
        parse::proc_state(&ads[2], later.now, later.hold_timeout).state,
        JobState::Failed
    );
}

#[test]
fn a_projection_and_no_match_parse() {
    let ads = parse::parse_ads(
        "condor_q",
        &fixture("condor_q/condor_q_json_projection.json"),
    )
    .unwrap();
    assert_eq!(ads.len(), 10);
    assert_eq!(ads[3].hold_code, Some(34));
    assert!(
        parse::parse_ads("condor_q", &fixture("condor_q/condor_q_json_nomatch.json"))
            .unwrap()
            .is_empty()
    );
    assert!(
        parse::parse_ads(
            "condor_history",
            &fixture("condor_history/condor_history_json_nomatch.json")
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn condor_history_gives_final_states_in_json_and_jsonl() {
    for file in [
        "condor_history/condor_history_json.json",
        "condor_history/condor_history_jsonl.jsonl",
    ] {
        let ads = parse::parse_ads("condor_history", &fixture(file)).unwrap();
        let got: Vec<(String, JobState, Option<String>)> = ads
            .iter()
            .map(|ad| {
                let s = parse::proc_state(ad, JUDGE.now, JUDGE.hold_timeout);
                (format!("{}.{}", ad.cluster, ad.proc_id), s.state, s.reason)
            })
            .collect();
        assert_eq!(
            got[0],
            ("4242.0".into(), JobState::Completed, None),
            "{file}"
        );
        assert_eq!(
            got[1],
            (
                "4244.0".into(),
                JobState::Failed,
                Some("exit code 3".into())
            ),
            "{file}"
        );
        assert_eq!(
            got[2],
            (
                "4244.1".into(),
                JobState::Failed,
                Some("killed by signal 9".into())
            ),
            "{file}"
        );
        assert_eq!(got[3].1, JobState::Cancelled, "{file}");
        assert!(
            got[4].2.as_deref().unwrap().contains("PeriodicRemove"),
            "{file}"
        );
        let cluster: Vec<_> = ads.iter().filter(|a| a.cluster == 4244).cloned().collect();
        let job = parse::cluster_job(4244, &cluster, &[], JUDGE);
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.reason.as_deref(), Some("proc 4244.0: exit code 3"));
        assert_eq!(job.end_time, Some(1_700_000_900_000));
    }
}

#[test]
fn a_real_ad_with_expressions_and_old_syntax_args_parses() {
    let ads = parse::parse_ads(
        "condor_q",
        &fixture("real_excerpts/clas12_condor_q_nobatch_json_8.8.10.excerpt.json"),
    )
    .unwrap();
    assert_eq!(ads.len(), 1);
    assert_eq!(
        (ads[0].cluster, ads[0].proc_id, ads[0].status),
        (3_472_942, 81, 2)
    );
    assert_eq!(
        parse::proc_state(&ads[0], JUDGE.now, None).state,
        JobState::Running
    );
}

#[test]
fn garbage_is_a_scheduler_error_quoting_the_output() {
    for garbage in [
        "<html>502</html>",
        "[\n{\n  \"ClusterId\": 1,\n",
        "[{\"ClusterId\": 1, \"ProcId\": 0}]",
        "{\"x\": 1}\n",
        "[{\"ClusterId\": -4, \"ProcId\": 0, \"JobStatus\": 1}]",
    ] {
        let err = parse::parse_ads("condor_q", garbage).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Scheduler, "{garbage}");
        assert!(
            err.to_string()
                .contains("condor_q printed output that is not a list of job ads"),
            "{err}"
        );
    }
}

#[test]
fn the_user_log_replays_every_event() {
    let procs = parse::parse_user_log(&fixture("eventlog/job.4243.log"));
    let p0 = &procs[&(4243, 0)];
    assert_eq!(
        (p0.status, p0.exit_code, p0.exit_signal),
        (4, Some(3), None)
    );
    assert!(p0.submitted.is_some() && p0.started.is_some() && p0.ended.is_some());
    assert!(p0.submitted <= p0.started && p0.started <= p0.ended);
    let state = parse::proc_state(&p0.to_ad(4243, 0), JUDGE.now, None);
    assert_eq!(
        (state.state, state.reason.as_deref()),
        (JobState::Failed, Some("exit code 3"))
    );
    let p1 = &procs[&(4243, 1)];
    assert_eq!(p1.status, 3);
    assert_eq!(p1.reason.as_deref(), Some("via condor_rm (by user alice)"));
    assert!(p1.is_final());
    let state = parse::proc_state(&p1.to_ad(4243, 1), JUDGE.now, None);
    assert_eq!(state.state, JobState::Cancelled);
    // Truncated after the hold: held, with the code.
    let text = fixture("eventlog/job.4243.log");
    let cut = &text[..text.find("013 (4243.001.000)").unwrap()];
    let held = &parse::parse_user_log(cut)[&(4243, 1)];
    assert_eq!(
        (held.status, held.hold_code, held.hold_subcode),
        (5, Some(1), Some(0))
    );
    assert!(!held.is_final());
}

#[test]
fn condor_submit_terse_gives_the_cluster() {
    let terse = fixture("cli_outputs/condor_submit_terse.stdout");
    assert_eq!(parse::parse_terse(&out(0, &terse, "")).unwrap(), (4243, 10));
    // Plain output (no -terse) is not mistaken for an id.
    let plain = fixture("cli_outputs/condor_submit_plain.stdout");
    assert!(
        parse::parse_terse(&out(
            0,
            &plain,
            &fixture("cli_outputs/condor_submit_plain.v25.13+.stderr")
        ))
        .is_err()
    );
    let error = fixture("cli_outputs/condor_submit_error_args.stderr_approx");
    let err = parse::command_error("condor_submit", &out(1, "", &error));
    assert_eq!(err.kind(), ErrorKind::Scheduler);
    assert!(
        err.to_string()
            .contains("Unbalanced quote starting here: 'a b"),
        "{err}"
    );
}

#[test]
fn rm_hold_and_release_replies_are_understood() {
    type Case<'a> = (Action, u32, i32, &'a str, &'a str, Option<ActionOutcome>);
    let cases: &[Case] = &[
        (
            Action::Remove,
            4243,
            0,
            "cli_outputs/condor_rm_cluster_ok.stdout",
            "",
            Some(ActionOutcome::Done),
        ),
        (
            Action::Hold,
            4243,
            0,
            "cli_outputs/condor_hold_cluster_ok.stdout",
            "",
            Some(ActionOutcome::Done),
        ),
        (
            Action::Release,
            4243,
            0,
            "cli_outputs/condor_release_cluster_ok.stdout",
            "",
            Some(ActionOutcome::Done),
        ),
        (
            Action::Remove,
            9999,
            1,
            "",
            "cli_outputs/condor_rm_cluster_notfound.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Hold,
            9999,
            1,
            "",
            "cli_outputs/condor_hold_cluster_notfound.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Release,
            9999,
            1,
            "",
            "cli_outputs/condor_release_cluster_notfound.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Remove,
            4243,
            0,
            "",
            "cli_outputs/condor_rm_cluster_emptyqueue_exit0.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Remove,
            4243,
            1,
            "",
            "cli_outputs/condor_rm_jobid_notfound.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Hold,
            4243,
            1,
            "",
            "cli_outputs/condor_hold_jobid_already.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
        (
            Action::Release,
            4243,
            1,
            "",
            "cli_outputs/condor_release_jobid_notheld.stderr",
            Some(ActionOutcome::NothingToDo),
        ),
    ];
    for (action, cluster, status, stdout, stderr, want) in cases {
        let read = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                fixture(p)
            }
        };
        let got = parse::parse_action(
            *action,
            *cluster,
            &out(*status, &read(stdout), &read(stderr)),
        )
        .ok();
        assert_eq!(got, *want, "{action:?} {stdout}{stderr}");
    }
    let denied = parse::parse_action(
        Action::Remove,
        4243,
        &out(1, "", "\nPermission denied to remove job 4243.0\n"),
    )
    .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
    let down = parse::parse_action(
        Action::Remove,
        4243,
        &out(1, "", "Failed to connect to schedd <1.2.3.4:9618>\n"),
    )
    .unwrap_err();
    assert_eq!(down.kind(), ErrorKind::Unavailable);
    assert!(
        down.to_string().contains("Failed to connect to schedd"),
        "{down}"
    );
}
