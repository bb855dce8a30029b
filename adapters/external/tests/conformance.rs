//! The example Python adapter (fixtures/external/local_farm.py) passes the suite through the
//! JSON-lines bridge; the deliberately broken one does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{Outcome, SuiteSettings, TestFarm, checks, run_check};
use farm_external::{ExternalFarm, ExternalSettings};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/external")
        .join(name)
}

fn python_farm_with(script_name: &str) -> TestFarm {
    let state = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let settings = ExternalSettings {
        command: vec![
            "python3".into(),
            script(script_name).display().to_string(),
            "--state-dir".into(),
            state.path().display().to_string(),
        ],
        env: Default::default(),
        working_directory: None,
        timeout: Duration::from_secs(20),
        options: serde_json::json!({ "installation": { "katana_root": "/opt/Katana7.0v1" } }),
    };
    let farm = ExternalFarm::from_settings("python-example", settings, Default::default())
        .expect("start the example adapter");
    let mut suite = SuiteSettings::new(scratch.path());
    suite.job_timeout = Duration::from_secs(30);
    TestFarm::new(Arc::new(farm))
        .with_settings(suite)
        .with_guard((state, scratch))
}

async fn python_farm() -> TestFarm {
    python_farm_with("local_farm.py")
}

farm_conformance::suite!(python_farm);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_example_is_rejected() {
    let farm = python_farm_with("broken_farm.py");
    let check = checks::find("a_nonzero_exit_fails_with_the_exit_code_in_the_reason").unwrap();
    let report = run_check(&farm, uuid::Uuid::new_v4(), check).await;
    assert!(
        matches!(report.outcome, Outcome::Failed(_)),
        "{:?}",
        report.outcome
    );
}
