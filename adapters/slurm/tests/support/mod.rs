//! Test doubles for Slurm and the factories the test files share.
#![allow(dead_code)]

pub mod cli;
pub mod engine;
pub mod rest;
pub mod sbatch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use farm_conformance::{SchedulerControl, SuiteSettings, TestFarm};
use farm_core::{CommonSettings, InstallationMetadata, JobId};
use farm_slurm::{SlurmFarm, SlurmSettings, Transport};

pub use engine::{Engine, EngineConfig};

/// `fixtures/slurm/<path>` or `fixtures/<path>`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Fault injection for the conformance suite.
pub struct Control(pub Engine);

#[async_trait]
impl SchedulerControl for Control {
    async fn forget(&self, id: &JobId) {
        if let Ok(n) = id.as_str().parse() {
            self.0.forget(n);
        }
    }
    async fn garble_replies(&self, count: usize) {
        self.0.garble(count);
    }
    async fn stall_replies(&self, count: usize) {
        self.0.stall(count);
    }
    async fn last_submission(&self) -> Option<String> {
        self.0.last_submission()
    }
}

/// Settings for a test farm: journal and logs in `dir`, a short command timeout.
pub fn test_settings(transport: Transport, dir: &Path) -> SlurmSettings {
    let mut s = SlurmSettings {
        transport,
        ..SlurmSettings::default()
    };
    s.state_directory = Some(dir.join("journal"));
    s.log_directory = Some(dir.join("logs").display().to_string());
    s.command_timeout = Duration::from_secs(3);
    s
}

pub fn common(dir: &Path) -> CommonSettings {
    // The staging root is the shared file system's mount point: it exists before the farm.
    std::fs::create_dir_all(dir.join("staging")).expect("staging root");
    CommonSettings {
        staging: Some(farm_core::SharedStaging::new(dir.join("staging"))),
        installation: Some(InstallationMetadata {
            katana_root: "/opt/Katana7.0v1".into(),
            render_plugin_dso_paths: Default::default(),
            renderboot_command: None,
        }),
        render_environment: Default::default(),
    }
}

fn suite_settings(dir: &Path) -> SuiteSettings {
    let mut s = SuiteSettings::new(dir.join("scratch"));
    s.job_timeout = Duration::from_secs(60);
    s
}

/// A farm on the CLI simulator.
pub fn cli_farm(
    config: EngineConfig,
    tweak: impl FnOnce(&mut SlurmSettings),
) -> (Arc<SlurmFarm>, Engine, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("farm-slurm-cli-")
        .tempdir()
        .unwrap();
    let engine = Engine::start(config);
    let mut settings = test_settings(Transport::Cli, dir.path());
    tweak(&mut settings);
    let runner = Arc::new(cli::SimRunner::new(engine.clone()));
    let farm = SlurmFarm::with_runner("sim", settings, common(dir.path()), runner).unwrap();
    (Arc::new(farm), engine, dir)
}

/// A farm on the slurmrestd emulation.
pub async fn rest_farm(
    config: EngineConfig,
) -> (
    Arc<SlurmFarm>,
    Engine,
    wiremock::MockServer,
    tempfile::TempDir,
) {
    let dir = tempfile::Builder::new()
        .prefix("farm-slurm-rest-")
        .tempdir()
        .unwrap();
    let engine = Engine::start(config);
    let server = rest::serve(engine.clone()).await;
    let mut settings = test_settings(Transport::Rest, dir.path());
    settings.url = server.uri();
    settings.user_name = Some(rest::USER.into());
    settings.token = Some(rest::TOKEN.to_owned().into());
    let farm = SlurmFarm::from_settings("emulated", settings, common(dir.path())).unwrap();
    (Arc::new(farm), engine, server, dir)
}

pub async fn cli_test_farm() -> TestFarm {
    let (farm, engine, dir) = cli_farm(EngineConfig::default(), |_| {});
    TestFarm::new(farm)
        .with_settings(suite_settings(dir.path()))
        .with_control(Arc::new(Control(engine.clone())))
        .with_guard((engine, dir))
}

pub async fn rest_test_farm() -> TestFarm {
    let (farm, engine, server, dir) = rest_farm(EngineConfig::default()).await;
    TestFarm::new(farm)
        .with_settings(suite_settings(dir.path()))
        .with_control(Arc::new(Control(engine.clone())))
        .with_guard((engine, server, dir))
}
