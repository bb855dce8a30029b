//! The conformance suite: behavioural checks every farm adapter must pass.
//!
//! - [`checks`]: small generic checks, one contract clause of
//!   [`FarmPlugin`](farm_core::FarmPlugin) each, named as sentences: plain `async fn`s,
//!   listed once in [`for_each_check!`].
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
    CheckResult, Context, Harness, NotYet, SchedulerControl, SuiteSettings, TestFarm, Verdict,
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
            $crate::for_each_check!($crate::__suite_tests { $mode $factory, $gate; });
        }
    };
}

/// Implementation detail of [`suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    (plain $factory:path, $gate:expr;
        $($file:ident::$id:ident: $selected_by:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $id() {
                $crate::run_suite_test(stringify!($id), $gate, || $factory()).await;
            }
        )*
    };
    (ignored $factory:path, $gate:expr;
        $($file:ident::$id:ident: $selected_by:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs a real scheduler: run with --ignored and its gate variable set"]
            async fn $id() {
                $crate::run_suite_test(stringify!($id), $gate, || $factory()).await;
            }
        )*
    };
}
