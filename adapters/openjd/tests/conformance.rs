//! The conformance suite on the `local` transport: real `openjd run`s. Gated because
//! openjd is not installed for plain `cargo test`: `tools/ci/openjd.sh` runs
//! `FARM_OPENJD_BIN=/path/to/openjd cargo test -p farm-openjd --test conformance -- --ignored`.

async fn local_openjd() -> farm_conformance::TestFarm {
    use std::sync::Arc;
    let bin = std::env::var("FARM_OPENJD_BIN").unwrap_or_else(|_| "openjd".into());
    let dir = tempfile::Builder::new()
        .prefix("farm-openjd-suite-")
        .tempdir()
        .unwrap();
    let settings = farm_openjd::OpenJdSettings {
        openjd_bin: bin,
        data_root: Some(dir.path().join("data")),
        ..Default::default()
    };
    let common = farm_core::CommonSettings {
        staging: Some(farm_core::SharedStaging::new(dir.path().join("staging"))),
        ..Default::default()
    };
    std::fs::create_dir_all(dir.path().join("staging")).unwrap();
    let farm = farm_openjd::OpenJdFarm::from_settings("suite", settings, common).unwrap();
    let mut suite = farm_conformance::SuiteSettings::new(dir.path().join("scratch"));
    suite.poll_interval = std::time::Duration::from_millis(100);
    farm_conformance::TestFarm::new(Arc::new(farm))
        .with_settings(suite)
        .with_guard(dir)
}

farm_conformance::suite!(local_openjd, gate = "FARM_OPENJD_BIN");
