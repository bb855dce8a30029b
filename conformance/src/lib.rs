//! The conformance suite: behavioural checks every farm adapter must pass.
//!
//! - [`checks`]: small generic checks, one contract clause of
//!   [`FarmPlugin`](farm_core::FarmPlugin) each, named as sentences.
//! - [`suite!`]: one line in an adapter's tests expands to one `#[tokio::test]` per check.
//! - [`report::run_all`]: runs a selection against any farm and returns a [`Report`]
//!   (what `farm conformance` prints as a table, JSON or JUnit XML).
//! - [`simulator`]: an in-memory scheduler that passes every check, and deliberately
//!   flawed variants that prove each check can fail.
//!
//! ```ignore
//! // adapters/mine/tests/conformance.rs
//! async fn farm() -> farm_conformance::TestFarm { /* build the adapter */ }
//! farm_conformance::suite!(farm);
//! ```

pub mod checks;
pub mod harness;
pub mod report;
pub mod simulator;

pub use checks::{CHECKS, Check};
pub use harness::{
    CheckResult, Context, Harness, SchedulerControl, SuiteSettings, TestFarm, Verdict,
};
pub use report::{CheckReport, Outcome, Report, Selection, markdown_reference, run_all, run_check};

use std::future::Future;

/// Runs check `id` as a test: panics on failure, prints why when not applicable.
///
/// A gated suite (`gate = "VAR"`) needs a real scheduler: its tests are `#[ignore]`d so a
/// plain `cargo test` reports them as not run rather than passed, and CI runs them with
/// `--ignored` and the variable set. Run without the variable, they fail, saying what to set.
pub async fn run_suite_test<F, Fut>(id: &str, gate: Option<&str>, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = TestFarm>,
{
    if let Some(var) = gate
        && std::env::var_os(var).is_none()
    {
        panic!("{id} needs a real scheduler: set {var}=1 (and start it) to run this test");
    }
    let check = checks::find(id).unwrap_or_else(|| panic!("no check named {id}"));
    let farm = factory().await;
    let report = run_check(&farm, uuid::Uuid::new_v4(), check).await;
    match report.outcome {
        Outcome::Passed => {}
        Outcome::NotApplicable(why) => eprintln!("{id}: not applicable: {why}"),
        Outcome::Failed(why) => panic!("{}\n{why}", check.sentence()),
    }
}

/// Panics unless `listed` names every check exactly once (keeps [`suite!`] complete).
pub fn assert_lists_every_check(listed: &[&str]) {
    let all: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
    assert_eq!(
        listed,
        all.as_slice(),
        "suite! must list every check, in order"
    );
}

/// Expands to one `#[tokio::test]` per check against the farm an async factory builds.
///
/// `suite!(factory)` runs always; `suite!(factory, gate = "VAR")` is for real schedulers:
/// its tests are `#[ignore]`d and CI runs them with `VAR=1 cargo test -- --ignored`. The factory is
/// `async fn() -> TestFarm` and is called once per test. The calling crate needs `tokio`
/// (with `macros` and `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! suite {
    ($factory:path) => {
        $crate::suite!(@expand plain $factory, ::core::option::Option::None);
    };
    ($factory:path, gate = $gate:literal) => {
        $crate::suite!(@expand ignored $factory, ::core::option::Option::Some($gate));
    };
    (@expand $mode:ident $factory:path, $gate:expr) => {
        #[allow(non_snake_case)]
        mod farm_conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::__suite_tests!($mode $factory, $gate;
                a_submitted_job_is_visible_at_once,
                a_successful_job_completes,
                a_nonzero_exit_fails_with_the_exit_code_in_the_reason,
                commands_run_in_order,
                commands_stop_at_the_first_failure,
                environment_values_arrive_exactly,
                argv_elements_arrive_exactly,
                the_working_directory_is_honoured,
                every_frame_runs_with_its_chunk,
                a_failed_frame_fails_the_job,
                stopping_a_running_job_cancels_it_and_kills_its_processes,
                stopping_a_waiting_job_cancels_it_before_it_runs,
                stopping_a_finished_job_is_a_no_op,
                starting_a_failed_job_runs_a_new_attempt,
                starting_a_cancelled_job_runs_it_again,
                starting_a_running_job_changes_nothing,
                an_unknown_id_gives_job_not_found_from_job,
                an_unknown_id_gives_job_not_found_from_stop,
                an_unknown_id_gives_job_not_found_from_start,
                an_unknown_id_gives_job_not_found_from_render_log_filename,
                an_unknown_id_gives_job_not_found_from_read_log,
                listing_includes_a_job_just_submitted,
                listing_filters_by_state,
                listing_filters_by_name,
                listing_filters_by_tag,
                the_render_log_holds_the_output,
                the_render_log_grows_while_running,
                the_temp_directory_is_stable_per_render_context,
                copied_render_files_are_readable,
                copying_a_missing_file_is_a_clear_error,
                submitting_a_render_context_twice_gives_one_job,
                a_job_the_scheduler_forgets_ends_failed_as_lost,
                garbage_from_the_scheduler_is_an_error_not_a_state,
                a_silent_scheduler_gives_unavailable,
                a_dependent_job_waits_for_its_dependency,
                a_job_depending_on_a_failed_job_never_runs,
                rendering_is_deterministic,
                rendering_an_invalid_request_names_the_field,
                invalid_requests_never_reach_the_scheduler,
                submit_sends_what_render_returns,
                finished_jobs_carry_ordered_times,
                installation_metadata_is_resolved_or_clearly_missing,
            );
        }
    };
}

/// Implementation detail of [`suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    (plain $factory:path, $gate:expr; $($id:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $id() {
                $crate::run_suite_test(stringify!($id), $gate, || $factory()).await;
            }
        )*
        $crate::__suite_tests!(@list $($id),*);
    };
    (ignored $factory:path, $gate:expr; $($id:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs a real scheduler: run with --ignored and its gate variable set"]
            async fn $id() {
                $crate::run_suite_test(stringify!($id), $gate, || $factory()).await;
            }
        )*
        $crate::__suite_tests!(@list $($id),*);
    };
    (@list $($id:ident),*) => {
        #[test]
        fn suite_lists_every_check() {
            $crate::assert_lists_every_check(&[$(stringify!($id)),*]);
        }
    };
}
