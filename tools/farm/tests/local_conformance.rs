//! The conformance suite against the real queue: a `farm queue serve` process with two
//! real agent processes, reached through the `local` adapter over HTTP.

#![cfg(feature = "local")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{SuiteSettings, TestFarm};
use farm_core::{CommonSettings, InstallationMetadata};
use farm_local::{LocalQueue, LocalSettings};

async fn local_queue() -> TestFarm {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("queue");
    let server = common::ServerProcess::start(&root, common::FAST);
    let mut settings = LocalSettings::connect(server.url.clone(), server.api_token());
    settings.data_root = Some(root);
    settings.timeout = Duration::from_secs(10);
    let common = CommonSettings {
        installation: Some(InstallationMetadata {
            katana_root: "/opt/Katana7.0v1".into(),
            render_plugin_dso_paths: Default::default(),
            renderboot_command: None,
        }),
        ..CommonSettings::default()
    };
    let farm = LocalQueue::new(settings, common).expect("local queue");
    let mut suite = SuiteSettings::new(dir.path().join("scratch"));
    suite.job_timeout = Duration::from_secs(60);
    TestFarm::new(Arc::new(farm))
        .with_settings(suite)
        .with_guard((server, dir))
}

farm_conformance::suite!(local_queue);
