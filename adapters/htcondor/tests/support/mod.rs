//! Shared by the integration tests: the CLI simulator and farms built on it.
#![allow(dead_code)]

pub mod condor_sim;
pub mod constraint;
pub mod submit_lang;

use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{SuiteSettings, TestFarm};
use farm_core::{CommonSettings, InstallationMetadata, SharedStaging};
use farm_htcondor::{CondorFarm, CondorSettings};

pub use condor_sim::{CondorSim, SimConfig};

/// A farm on a fresh simulator, with its scratch directory.
pub struct SimFarm {
    pub farm: Arc<CondorFarm>,
    pub sim: CondorSim,
    pub dir: tempfile::TempDir,
}

impl SimFarm {
    /// Defaults: logs and the journal under the scratch directory, short command timeout,
    /// staging on.
    pub fn new(edit: impl FnOnce(&mut CondorSettings, &mut SimConfig)) -> SimFarm {
        let dir = tempfile::tempdir().expect("tempdir");
        let submit_dir = dir.path().join("submit");
        std::fs::create_dir_all(&submit_dir).expect("submit dir");
        let mut settings = CondorSettings {
            log_directory: dir.path().join("logs").display().to_string(),
            state_directory: Some(dir.path().join("state")),
            command_timeout: Duration::from_secs(3),
            ..CondorSettings::default()
        };
        let mut config = SimConfig::new(&submit_dir);
        edit(&mut settings, &mut config);
        let sim = CondorSim::new(config);
        // The staging root is the shared file system's mount point: it exists before the farm.
        std::fs::create_dir_all(dir.path().join("staging")).expect("staging root");
        let common = CommonSettings {
            staging: Some(SharedStaging::new(dir.path().join("staging"))),
            installation: Some(InstallationMetadata {
                katana_root: "/opt/Katana7.0v1".into(),
                render_plugin_dso_paths: Default::default(),
                renderboot_command: None,
            }),
            render_environment: [("FOUNDRY_LICENSE".to_owned(), "4101@licserver".to_owned())]
                .into(),
        };
        let farm = Arc::new(
            CondorFarm::with_runner("sim", settings, common, Arc::new(sim.clone())).unwrap(),
        );
        SimFarm { farm, sim, dir }
    }

    /// A second adapter on the same simulator and state directory, as a later `farm`
    /// process would build it: it shares nothing in memory with `self.farm`.
    pub fn another_process(&self) -> CondorFarm {
        CondorFarm::with_runner(
            "sim",
            self.farm.settings().clone(),
            CommonSettings::default(),
            Arc::new(self.sim.clone()),
        )
        .unwrap()
    }

    /// As a conformance test farm, with fault injection.
    pub fn into_test_farm(self) -> TestFarm {
        let mut suite = SuiteSettings::new(self.dir.path().join("shared"));
        suite.job_timeout = Duration::from_secs(40);
        suite.check_timeout = Duration::from_secs(160);
        TestFarm::new(self.farm.clone())
            .with_settings(suite)
            .with_control(self.sim.control())
            .with_guard(self.dir)
    }
}

pub mod requests;
pub mod verify;
