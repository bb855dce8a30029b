//! The deliberate flaws: each breaks one contract clause, and the check aimed at it must
//! fail (the suite's own tests assert so for every flaw).

/// One way to break the contract. Used only to prove the suite catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flaw {
    /// `job` says not found for the first two seconds after submit.
    InvisibleAfterSubmit,
    /// `job_state` always says Waiting, whatever `job` says.
    JobStateStuckWaiting,
    /// Jobs whose commands all succeed are reported Failed.
    SuccessReportedAsFailed,
    /// A non-zero exit is reported Completed.
    NonzeroExitCompletes,
    /// The failure reason omits the exit code.
    ReasonOmitsExitCode,
    /// Finished jobs are forgotten: `job` says not found once they end.
    ForgetsFinishedJobs,
    /// Commands run last to first.
    CommandsRunInReverse,
    /// Commands after a failing one still run.
    RunsAllCommandsDespiteFailure,
    /// Environment values pass through a naive quoting step (quotes stripped, blanks squeezed).
    LosesEnvironmentQuoting,
    /// argv is joined with spaces and handed to a shell.
    ArgvJoinedWithSpaces,
    /// The working directory is ignored.
    IgnoresWorkingDirectory,
    /// The last chunk of a job never runs.
    SkipsLastChunk,
    /// The job's state is the state of its last chunk.
    LastChunkDecidesState,
    /// Stop marks the job Cancelled but leaves its processes running.
    StopLeavesProcessesRunning,
    /// Stop does nothing to a job that has not started.
    StopIgnoredWhileWaiting,
    /// Stop turns a finished job into Cancelled.
    StopOverwritesFinishedState,
    /// Start does nothing to a finished job.
    StartIgnoresFinishedJobs,
    /// Start reruns a finished job without a new attempt number.
    StartKeepsAttemptNumber,
    /// Start kills and reruns a running job.
    StartRestartsRunningJobs,
    /// `job` on an unknown id is a generic scheduler error.
    UnknownIdInJobIsGenericError,
    /// `stop` on an unknown id succeeds silently.
    UnknownIdInStopSucceeds,
    /// `start` on an unknown id is a generic scheduler error.
    UnknownIdInStartIsGenericError,
    /// `render_log_filename` on an unknown id returns `None`.
    UnknownIdInLogFilenameIsNone,
    /// `read_log` on an unknown id returns an empty log.
    UnknownIdInReadLogIsEmpty,
    /// `list_jobs` leaves out jobs that have not finished.
    ListOmitsUnfinishedJobs,
    /// `list_jobs` ignores the state filter.
    ListIgnoresStateFilter,
    /// `list_jobs` matches name prefixes instead of exact names.
    ListMatchesNamePrefixes,
    /// `list_jobs` ignores the tag filter.
    ListIgnoresTagFilter,
    /// stderr never reaches the render log.
    LogDropsStderr,
    /// The render log is written only when the job ends.
    LogWrittenOnlyAtEnd,
    /// `read_log` ignores the offset and always returns everything.
    ReadLogIgnoresOffset,
    /// `read_log` says complete while the job is still running.
    ReadLogCompleteTooEarly,
    /// Every `create_temp_directory` call makes a new directory.
    TempDirectoryPerCall,
    /// Copies are cut short after 1000 bytes.
    CopyTruncatesFiles,
    /// Missing files are skipped instead of reported.
    CopySkipsMissingFiles,
    /// Submitting the same render context again makes a second job.
    DuplicatesOnResubmit,
    /// A job the scheduler forgot is reported Completed.
    ForgottenJobsCompleted,
    /// A job the scheduler forgot is reported Running forever.
    ForgottenJobsStayRunning,
    /// An unparseable reply is read as a Completed job.
    GarbageReadAsCompleted,
    /// The adapter waits forever for a reply.
    NoReplyTimeout,
    /// Dependencies are ignored.
    IgnoresDependencies,
    /// Dependents of failed jobs run anyway.
    RunsDependentsOfFailedJobs,
    /// `render` embeds the current time.
    RenderEmbedsTimestamp,
    /// `render` does not validate the request.
    RenderSkipsValidation,
    /// `submit` sends invalid requests to the scheduler.
    SubmitSkipsValidation,
    /// `submit` sends compact JSON while `render` returns pretty JSON.
    SubmitSendsDifferentPayload,
    /// Jobs never carry start or end times (a flaw only where `job_times` is declared).
    NoJobTimes,
    /// A missing installation is a scheduler error instead of a configuration error.
    InstallationErrorIsNotConfig,
    /// Claims no capabilities but performs every operation anyway.
    ActsWithoutCapabilities,
    /// Job times are reported in seconds since the epoch instead of milliseconds.
    TimesInSeconds,
    /// `job` fails with a scheduler error while the job runs (a native state it cannot map).
    UnreadableWhileRunning,
    /// `check` passes a request no node could run.
    CheckAcceptsImpossibleRequests,
    /// `check` refuses every request.
    CheckRefusesRunnableRequests,
    /// `check` submits the request it was asked about.
    CheckCreatesJobs,
    /// `check` answers although the `check` capability is off.
    CheckIgnoresCapability,
    /// Retrying failed tasks runs every frame of the job again.
    RetryRerunsEveryFrame,
}

/// Which check each flaw is aimed at: the suite's own tests require that check to fail.
pub const FLAW_TARGETS: &[(Flaw, &str)] = &[
    (
        Flaw::InvisibleAfterSubmit,
        "a_submitted_job_is_visible_at_once",
    ),
    (
        Flaw::JobStateStuckWaiting,
        "a_submitted_job_is_visible_at_once",
    ),
    (Flaw::SuccessReportedAsFailed, "a_successful_job_completes"),
    (Flaw::ForgetsFinishedJobs, "a_successful_job_completes"),
    (
        Flaw::NonzeroExitCompletes,
        "a_nonzero_exit_fails_with_the_exit_code_in_the_reason",
    ),
    (
        Flaw::ReasonOmitsExitCode,
        "a_nonzero_exit_fails_with_the_exit_code_in_the_reason",
    ),
    (Flaw::CommandsRunInReverse, "commands_run_in_order"),
    (
        Flaw::RunsAllCommandsDespiteFailure,
        "commands_stop_at_the_first_failure",
    ),
    (
        Flaw::LosesEnvironmentQuoting,
        "environment_values_arrive_exactly",
    ),
    (Flaw::ArgvJoinedWithSpaces, "argv_elements_arrive_exactly"),
    (
        Flaw::IgnoresWorkingDirectory,
        "the_working_directory_is_honoured",
    ),
    (Flaw::SkipsLastChunk, "every_frame_runs_with_its_chunk"),
    (Flaw::LastChunkDecidesState, "a_failed_frame_fails_the_job"),
    (
        Flaw::StopLeavesProcessesRunning,
        "stopping_a_running_job_cancels_it_and_kills_its_processes",
    ),
    (
        Flaw::StopIgnoredWhileWaiting,
        "stopping_a_waiting_job_cancels_it_before_it_runs",
    ),
    (
        Flaw::StopOverwritesFinishedState,
        "stopping_a_finished_job_is_a_no_op",
    ),
    (
        Flaw::StartIgnoresFinishedJobs,
        "starting_a_failed_job_runs_a_new_attempt",
    ),
    (
        Flaw::StartKeepsAttemptNumber,
        "starting_a_cancelled_job_runs_it_again",
    ),
    (
        Flaw::StartRestartsRunningJobs,
        "starting_a_running_job_changes_nothing",
    ),
    (
        Flaw::UnknownIdInJobIsGenericError,
        "an_unknown_id_gives_job_not_found_from_job",
    ),
    (
        Flaw::UnknownIdInStopSucceeds,
        "an_unknown_id_gives_job_not_found_from_stop",
    ),
    (
        Flaw::UnknownIdInStartIsGenericError,
        "an_unknown_id_gives_job_not_found_from_start",
    ),
    (
        Flaw::UnknownIdInLogFilenameIsNone,
        "an_unknown_id_gives_job_not_found_from_render_log_filename",
    ),
    (
        Flaw::UnknownIdInReadLogIsEmpty,
        "an_unknown_id_gives_job_not_found_from_read_log",
    ),
    (
        Flaw::ListOmitsUnfinishedJobs,
        "listing_includes_a_job_just_submitted",
    ),
    (Flaw::ListIgnoresStateFilter, "listing_filters_by_state"),
    (Flaw::ListMatchesNamePrefixes, "listing_filters_by_name"),
    (Flaw::ListIgnoresTagFilter, "listing_filters_by_tag"),
    (Flaw::LogDropsStderr, "the_render_log_holds_the_output"),
    (
        Flaw::LogWrittenOnlyAtEnd,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::ReadLogIgnoresOffset,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::ReadLogCompleteTooEarly,
        "the_render_log_grows_while_running",
    ),
    (
        Flaw::TempDirectoryPerCall,
        "the_temp_directory_is_stable_per_render_context",
    ),
    (Flaw::CopyTruncatesFiles, "copied_render_files_are_readable"),
    (
        Flaw::CopySkipsMissingFiles,
        "copying_a_missing_file_is_a_clear_error",
    ),
    (
        Flaw::DuplicatesOnResubmit,
        "submitting_a_render_context_twice_gives_one_job",
    ),
    (
        Flaw::ForgottenJobsCompleted,
        "a_job_the_scheduler_forgets_ends_failed_as_lost",
    ),
    (
        Flaw::ForgottenJobsStayRunning,
        "a_job_the_scheduler_forgets_ends_failed_as_lost",
    ),
    (
        Flaw::GarbageReadAsCompleted,
        "garbage_from_the_scheduler_is_an_error_not_a_state",
    ),
    (Flaw::NoReplyTimeout, "a_silent_scheduler_gives_unavailable"),
    (
        Flaw::IgnoresDependencies,
        "a_dependent_job_waits_for_its_dependency",
    ),
    (
        Flaw::RunsDependentsOfFailedJobs,
        "a_job_depending_on_a_failed_job_never_runs",
    ),
    (Flaw::RenderEmbedsTimestamp, "rendering_is_deterministic"),
    (
        Flaw::RenderSkipsValidation,
        "rendering_an_invalid_request_names_the_field",
    ),
    (
        Flaw::SubmitSkipsValidation,
        "invalid_requests_never_reach_the_scheduler",
    ),
    (
        Flaw::SubmitSendsDifferentPayload,
        "submit_sends_what_render_returns",
    ),
    (Flaw::NoJobTimes, "finished_jobs_carry_ordered_times"),
    (
        Flaw::InstallationErrorIsNotConfig,
        "installation_metadata_is_resolved_or_clearly_missing",
    ),
    (
        Flaw::ActsWithoutCapabilities,
        "an_unknown_id_gives_job_not_found_from_stop",
    ),
    (
        Flaw::TimesInSeconds,
        "job_times_are_milliseconds_since_the_epoch",
    ),
    (
        Flaw::UnreadableWhileRunning,
        "a_submitted_job_is_readable_until_it_ends",
    ),
    (
        Flaw::CheckAcceptsImpossibleRequests,
        "a_request_the_farm_can_never_run_is_refused_by_check",
    ),
    (
        Flaw::CheckRefusesRunnableRequests,
        "a_request_the_farm_can_run_passes_check",
    ),
    (Flaw::CheckCreatesJobs, "checking_a_request_creates_no_job"),
    (
        Flaw::CheckIgnoresCapability,
        "a_request_the_farm_can_run_passes_check",
    ),
    (
        Flaw::RetryRerunsEveryFrame,
        "retrying_failed_tasks_runs_only_the_failed_frames_again",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flaw_targets_a_real_check() {
        for (flaw, id) in FLAW_TARGETS {
            assert!(
                crate::checks::find(id).is_some(),
                "{flaw:?} targets unknown check {id}"
            );
        }
    }
}
