//! Katana farm plug-ins behind the plug-in host (`adapter: katana-plugin`): the example
//! plug-in passes the suite, and each broken variant is rejected by the check aimed at it.
//! FarmBridge.py needs a local queue and a `farm` binary: tools/ci/katana-plugins.sh runs
//! the suite on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{Outcome, SuiteSettings, TestFarm, checks, run_check};
use farm_external::{ExternalFarm, KatanaPluginSettings};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The example's state folder; on drop, kills the runners its jobs left (a broken stop
/// leaves one beating for up to ten minutes).
struct StateDir(tempfile::TempDir);

impl Drop for StateDir {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0.path().join("jobs.json")) else {
            return;
        };
        let Ok(table) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let jobs = table["jobs"].as_object().cloned().unwrap_or_default();
        for pid in jobs.values().filter_map(|job| job["pid"].as_u64()) {
            // Only a runner of the example: its pid may have been reused since.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("SubprocessFarm.py"));
            if ours {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

fn katana_farm(example: &str) -> TestFarm {
    let state = StateDir(tempfile::tempdir().expect("tempdir"));
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut settings =
        KatanaPluginSettings::new(repo(&format!("tools/katana/examples/{example}/Plugins")));
    settings.env.insert(
        "SUBPROCESS_FARM_DIR".into(),
        state.0.path().display().to_string(),
    );
    settings.timeout = Duration::from_secs(20);
    // The checkout's host, not the embedded copy: the test exercises what is in the tree
    // (the two are compared by the crate's unit tests).
    let external = settings
        .external(example, &repo("tools/katana/host"))
        .expect("settings");
    let farm =
        ExternalFarm::from_settings(example, external, Default::default()).expect("start the host");
    let mut suite = SuiteSettings::new(scratch.path());
    suite.job_timeout = Duration::from_secs(30);
    TestFarm::new(Arc::new(farm))
        .with_settings(suite)
        .with_guard((state, scratch))
}

async fn subprocess_farm() -> TestFarm {
    katana_farm("subprocess-farm")
}

farm_conformance::suite!(subprocess_farm);

async fn assert_rejected(example: &str, check: &str) {
    let farm = katana_farm(example);
    let check = checks::find(check).expect("a check of the suite");
    let report = run_check(&farm, uuid::Uuid::new_v4(), check).await;
    match report.outcome {
        Outcome::Failed(why) => eprintln!("{example} rejected by {}: {why}", check.id),
        other => panic!("{example} was not rejected by {}: {other:?}", check.id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_outside_k_all_states_are_rejected() {
    assert_rejected("broken-states", "a_submitted_job_is_readable_until_it_ends").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swallowed_job_not_found_is_rejected() {
    assert_rejected(
        "broken-notfound",
        "an_unknown_id_gives_job_not_found_from_job",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_in_seconds_are_rejected() {
    assert_rejected(
        "broken-seconds",
        "job_times_are_milliseconds_since_the_epoch",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_copy_is_rejected() {
    assert_rejected("broken-copy", "copied_render_files_are_readable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_does_not_stop_is_rejected() {
    assert_rejected(
        "broken-stop",
        "stopping_a_running_job_cancels_it_and_kills_its_processes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installation_metadata_of_the_wrong_type_is_rejected() {
    assert_rejected(
        "broken-metadata",
        "installation_metadata_is_resolved_or_clearly_missing",
    )
    .await;
}

/// Every broken variant in the tree has a test here.
#[test]
fn every_broken_variant_is_tested() {
    let source = include_str!("katana.rs");
    for entry in std::fs::read_dir(repo("tools/katana/examples")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("broken-") {
            assert!(
                source.contains(&format!("\"{name}\"")),
                "{name} has no rejection test"
            );
        }
    }
}
