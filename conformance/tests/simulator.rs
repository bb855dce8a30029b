//! The suite against its own simulator: every check passes on correct behaviour (with all
//! capabilities, and with none), and every deliberately broken variant is rejected by the
//! check aimed at it.

use std::sync::Arc;
use std::time::Duration;

use farm_conformance::simulator::{FLAW_TARGETS, Flaw, SimFarm, SimulatorConfig};
use farm_conformance::{Outcome, SuiteSettings, TestFarm, checks, run_check};
use farm_core::{Capabilities, InstallationMetadata};

fn test_farm(config: SimulatorConfig, job_timeout: Duration) -> TestFarm {
    let scratch = tempfile::tempdir().expect("tempdir");
    let farm = SimFarm::new(config).expect("simulator");
    let control = farm.control();
    let mut settings = SuiteSettings::new(scratch.path());
    settings.job_timeout = job_timeout;
    settings.check_timeout = job_timeout * 4;
    TestFarm::new(Arc::new(farm))
        .with_settings(settings)
        .with_control(control)
        .with_guard(scratch)
}

/// The reference: every capability, correct behaviour, Katana installed.
async fn correct_simulator() -> TestFarm {
    let config = SimulatorConfig {
        installation: Some(InstallationMetadata {
            katana_root: "/opt/Katana7.0v1".into(),
            render_plugin_dso_paths: Default::default(),
            renderboot_command: None,
        }),
        ..SimulatorConfig::default()
    };
    test_farm(config, Duration::from_secs(30))
}

farm_conformance::suite!(correct_simulator);

mod without_capabilities {
    use super::*;

    /// No capability at all: every gated operation must say Unsupported.
    async fn limited_simulator() -> TestFarm {
        let config = SimulatorConfig {
            capabilities: Capabilities::default(),
            ..SimulatorConfig::default()
        };
        test_farm(config, Duration::from_secs(30))
    }

    farm_conformance::suite!(limited_simulator);
}

mod without_job_times {
    use super::*;

    /// A farm that reports no start or end time and says so (`job_times: false`): the
    /// suite asks only for the times it declares.
    async fn untimed_simulator() -> TestFarm {
        let mut config = SimulatorConfig::with_flaw(Flaw::NoJobTimes);
        config.capabilities.job_times = false;
        test_farm(config, Duration::from_secs(30))
    }

    farm_conformance::suite!(untimed_simulator);
}

async fn assert_rejected(flaw: Flaw) {
    let (_, target) = FLAW_TARGETS
        .iter()
        .find(|(f, _)| *f == flaw)
        .expect("flaw has a target");
    let check = checks::find(target).expect("target exists");
    let farm = test_farm(SimulatorConfig::with_flaw(flaw), Duration::from_secs(4));
    let report = run_check(&farm, uuid::Uuid::new_v4(), check).await;
    match report.outcome {
        Outcome::Failed(why) => eprintln!("{flaw:?} rejected by {target}: {why}"),
        other => panic!("{flaw:?} was not rejected by {target}: {other:?}"),
    }
}

macro_rules! rejects {
    ($($test:ident: $flaw:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                assert_rejected(Flaw::$flaw).await;
            }
        )*

        #[test]
        fn every_flaw_has_a_rejection_test() {
            let tested = [$(Flaw::$flaw),*];
            for (flaw, _) in FLAW_TARGETS {
                assert!(tested.contains(flaw), "{flaw:?} has no rejection test");
            }
            assert_eq!(tested.len(), FLAW_TARGETS.len());
        }
    };
}

rejects! {
    rejects_invisible_after_submit: InvisibleAfterSubmit,
    rejects_job_state_stuck_waiting: JobStateStuckWaiting,
    rejects_success_reported_as_failed: SuccessReportedAsFailed,
    rejects_forgets_finished_jobs: ForgetsFinishedJobs,
    rejects_nonzero_exit_completes: NonzeroExitCompletes,
    rejects_reason_omits_exit_code: ReasonOmitsExitCode,
    rejects_commands_run_in_reverse: CommandsRunInReverse,
    rejects_runs_all_commands_despite_failure: RunsAllCommandsDespiteFailure,
    rejects_loses_environment_quoting: LosesEnvironmentQuoting,
    rejects_argv_joined_with_spaces: ArgvJoinedWithSpaces,
    rejects_ignores_working_directory: IgnoresWorkingDirectory,
    rejects_skips_last_chunk: SkipsLastChunk,
    rejects_last_chunk_decides_state: LastChunkDecidesState,
    rejects_stop_leaves_processes_running: StopLeavesProcessesRunning,
    rejects_stop_ignored_while_waiting: StopIgnoredWhileWaiting,
    rejects_stop_overwrites_finished_state: StopOverwritesFinishedState,
    rejects_start_ignores_finished_jobs: StartIgnoresFinishedJobs,
    rejects_start_keeps_attempt_number: StartKeepsAttemptNumber,
    rejects_start_restarts_running_jobs: StartRestartsRunningJobs,
    rejects_unknown_id_in_job_is_generic_error: UnknownIdInJobIsGenericError,
    rejects_unknown_id_in_stop_succeeds: UnknownIdInStopSucceeds,
    rejects_unknown_id_in_start_is_generic_error: UnknownIdInStartIsGenericError,
    rejects_unknown_id_in_log_filename_is_none: UnknownIdInLogFilenameIsNone,
    rejects_unknown_id_in_read_log_is_empty: UnknownIdInReadLogIsEmpty,
    rejects_list_omits_unfinished_jobs: ListOmitsUnfinishedJobs,
    rejects_list_ignores_state_filter: ListIgnoresStateFilter,
    rejects_list_matches_name_prefixes: ListMatchesNamePrefixes,
    rejects_list_ignores_tag_filter: ListIgnoresTagFilter,
    rejects_log_drops_stderr: LogDropsStderr,
    rejects_log_written_only_at_end: LogWrittenOnlyAtEnd,
    rejects_read_log_ignores_offset: ReadLogIgnoresOffset,
    rejects_read_log_complete_too_early: ReadLogCompleteTooEarly,
    rejects_temp_directory_per_call: TempDirectoryPerCall,
    rejects_copy_truncates_files: CopyTruncatesFiles,
    rejects_copy_skips_missing_files: CopySkipsMissingFiles,
    rejects_duplicates_on_resubmit: DuplicatesOnResubmit,
    rejects_forgotten_jobs_completed: ForgottenJobsCompleted,
    rejects_forgotten_jobs_stay_running: ForgottenJobsStayRunning,
    rejects_garbage_read_as_completed: GarbageReadAsCompleted,
    rejects_no_reply_timeout: NoReplyTimeout,
    rejects_ignores_dependencies: IgnoresDependencies,
    rejects_runs_dependents_of_failed_jobs: RunsDependentsOfFailedJobs,
    rejects_render_embeds_timestamp: RenderEmbedsTimestamp,
    rejects_render_skips_validation: RenderSkipsValidation,
    rejects_submit_skips_validation: SubmitSkipsValidation,
    rejects_submit_sends_different_payload: SubmitSendsDifferentPayload,
    rejects_no_job_times: NoJobTimes,
    rejects_installation_error_is_not_config: InstallationErrorIsNotConfig,
    rejects_acts_without_capabilities: ActsWithoutCapabilities,
    rejects_times_in_seconds: TimesInSeconds,
    rejects_unreadable_while_running: UnreadableWhileRunning,
    rejects_check_accepts_impossible_requests: CheckAcceptsImpossibleRequests,
    rejects_check_refuses_runnable_requests: CheckRefusesRunnableRequests,
    rejects_check_creates_jobs: CheckCreatesJobs,
    rejects_check_ignores_capability: CheckIgnoresCapability,
    rejects_retry_reruns_every_frame: RetryRerunsEveryFrame,
}

/// Every check is the target of at least one flaw, so every check is proven able to fail.
#[test]
fn every_check_is_aimed_at_by_some_flaw() {
    for check in farm_conformance::CHECKS {
        assert!(
            FLAW_TARGETS.iter().any(|(_, target)| *target == check.id),
            "no broken variant proves {} can fail",
            check.id
        );
    }
}

/// docs/conformance.md is generated from the checks' doc comments.
#[test]
fn the_checks_reference_matches_the_doc_comments() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
    let expected = farm_conformance::markdown_reference();
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        if std::env::var_os("FARM_BLESS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/conformance.md");
            return;
        }
        panic!(
            "docs/conformance.md is out of date: run `FARM_BLESS=1 cargo test -p farm-conformance` or `farm conformance --list --markdown > docs/conformance.md`"
        );
    }
}
