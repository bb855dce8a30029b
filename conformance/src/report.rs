//! Running checks and reporting: text, JSON, JUnit XML, and the generated reference.

use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checks::{CHECKS, Check};
use crate::harness::{Harness, TestFarm, Verdict};

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "message", rename_all = "snake_case")]
pub enum Outcome {
    /// The contract clause holds.
    Passed,
    /// The contract clause is broken; the message says how.
    Failed(String),
    /// The check cannot run against this farm; the message says why.
    NotApplicable(String),
}

impl Outcome {
    /// `passed`, `FAILED` or `n/a`, for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "FAILED",
            Outcome::NotApplicable(_) => "n/a",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The check's id.
    pub id: String,
    /// The check's sentence.
    pub sentence: String,
    /// What selects it.
    pub selected_by: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Wall-clock time, in milliseconds.
    pub millis: u64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The adapter kind tested.
    pub adapter: String,
    /// The run id every job was tagged with.
    pub run_id: Uuid,
    /// One entry per selected check, in suite order.
    pub checks: Vec<CheckReport>,
}

impl Report {
    /// Number of checks with this outcome label.
    pub fn count(&self, label: &str) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome.label() == label)
            .count()
    }

    /// True when no check failed.
    pub fn is_success(&self) -> bool {
        self.count("FAILED") == 0
    }

    /// `N passed, N failed, N not applicable`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} not applicable",
            self.count("passed"),
            self.count("FAILED"),
            self.count("n/a")
        )
    }

    /// A plain-text table: one row per check, then failure details and the summary.
    pub fn to_table(&self) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
        let mut out = format!("{:<8} {:<width$} {:>8}\n", "RESULT", "CHECK", "TIME");
        for c in &self.checks {
            out.push_str(&format!(
                "{:<8} {:<width$} {:>7.1}s\n",
                c.outcome.label(),
                c.id,
                c.millis as f64 / 1000.0
            ));
        }
        for c in &self.checks {
            match &c.outcome {
                Outcome::Failed(msg) => {
                    out.push_str(&format!("\nFAILED {}: {}\n  {msg}\n", c.id, c.sentence))
                }
                Outcome::NotApplicable(msg) => out.push_str(&format!("\nn/a    {}: {msg}\n", c.id)),
                Outcome::Passed => {}
            }
        }
        out.push_str(&format!(
            "\n{} ({}): {}\n",
            self.adapter,
            self.run_id,
            self.summary()
        ));
        out
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// JUnit XML, one test case per check (not-applicable checks are skipped cases).
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new(format!("farm-conformance ({})", self.adapter));
        for c in &self.checks {
            let status = match &c.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed(msg) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(msg.clone());
                    s
                }
                Outcome::NotApplicable(msg) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(msg.clone());
                    s
                }
            };
            let mut case = TestCase::new(c.id.clone(), status);
            case.set_classname(format!("farm_conformance.{}", self.adapter))
                .set_time(Duration::from_millis(c.millis));
            suite.add_test_case(case);
        }
        let mut report = JReport::new("farm-conformance");
        report.add_test_suite(suite);
        report.to_string().expect("JUnit XML serialises")
    }
}

/// Which checks to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Run only these ids (all when empty).
    pub only: Vec<String>,
    /// Never run these ids.
    pub skip: Vec<String>,
}

impl Selection {
    /// The selected checks, in suite order, or an error naming an unknown id.
    pub fn resolve(&self) -> Result<Vec<&'static Check>, String> {
        for id in self.only.iter().chain(&self.skip) {
            if crate::checks::find(id).is_none() {
                return Err(format!(
                    "unknown check {id:?}; `farm conformance --list` shows the {} checks",
                    CHECKS.len()
                ));
            }
        }
        Ok(CHECKS
            .iter()
            .filter(|c| self.only.is_empty() || self.only.iter().any(|o| o == c.id))
            .filter(|c| !self.skip.iter().any(|s| s == c.id))
            .collect())
    }
}

/// Runs one check against a farm, cleaning up the jobs it created, within the check
/// timeout. A panicking check is a failure, not a crash.
pub async fn run_check(farm: &TestFarm, run_id: Uuid, check: &Check) -> CheckReport {
    let started = Instant::now();
    let outcome = match Harness::new(farm, run_id, check.id) {
        Err(e) => Outcome::Failed(format!(
            "cannot create the scratch directory under {}: {e}",
            farm.settings.shared_dir.display()
        )),
        Ok(harness) => {
            let run = std::panic::AssertUnwindSafe((check.run)(&harness)).catch_unwind();
            let result = tokio::time::timeout(farm.settings.check_timeout, run).await;
            harness.cleanup().await;
            match result {
                Err(_) => Outcome::Failed(format!(
                    "the check did not finish within {:?}",
                    farm.settings.check_timeout
                )),
                Ok(Err(panic)) => {
                    Outcome::Failed(format!("the check panicked: {}", panic_message(&panic)))
                }
                Ok(Ok(Ok(()))) => Outcome::Passed,
                Ok(Ok(Err(Verdict::Fail(msg)))) => Outcome::Failed(msg),
                Ok(Ok(Err(Verdict::NotApplicable(msg)))) => Outcome::NotApplicable(msg),
            }
        }
    };
    CheckReport {
        id: check.id.to_owned(),
        sentence: check.sentence().to_owned(),
        selected_by: check.selected_by.to_owned(),
        outcome,
        millis: started.elapsed().as_millis() as u64,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs the selected checks, `parallel` at a time, calling `on_done` as each finishes.
/// The report lists them in suite order.
pub async fn run_all(
    farm: &TestFarm,
    checks: &[&'static Check],
    parallel: usize,
    mut on_done: impl FnMut(&CheckReport),
) -> Report {
    use futures::StreamExt;
    let run_id = Uuid::new_v4();
    let mut results: Vec<(usize, CheckReport)> = futures::stream::iter(checks.iter().enumerate())
        .map(|(i, check)| async move { (i, run_check(farm, run_id, check).await) })
        .buffer_unordered(parallel.max(1))
        .inspect(|(_, r)| on_done(r))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    Report {
        adapter: farm.farm.adapter().to_owned(),
        run_id,
        checks: results.into_iter().map(|(_, r)| r).collect(),
    }
}

/// `docs/conformance.md`, generated from the checks' doc comments so it cannot drift.
pub fn markdown_reference() -> String {
    let mut out = String::from(
        "# Conformance checks\n\n\
         <!-- Generated by `farm conformance --list --markdown`; a test fails if this \
         file and the checks' doc comments disagree. Edit the doc comments in \
         conformance/src/checks/, then regenerate. -->\n\n\
         Every adapter runs these checks (`farm_conformance::suite!` in Rust, `farm conformance` \
         from the command line). *Selected by* names the capability a check exercises: when \
         that capability is off, the check asserts the operation returns `Unsupported` \
         (`job_times` is no operation: with it off, the time checks assert only the times a \
         farm does report). Checks \
         marked *fault injection* need a simulated scheduler and report *not applicable* \
         against a real one.\n\n",
    );
    out.push_str(&format!(
        "{} checks.\n\n| Check | Selected by | Asserts |\n|---|---|---|\n",
        CHECKS.len()
    ));
    for c in CHECKS {
        out.push_str(&format!(
            "| **{}**<br>`{}` | {} | {} |\n",
            c.sentence(),
            c.id,
            c.selected_by,
            c.details().replace('|', "\\|")
        ));
    }
    out
}
