//! The conformance suite against the Slurm adapter: on the CLI simulator, on the
//! slurmrestd emulation, and on a real Slurm through both transports. The real ones are
//! `#[ignore]`d; CI runs them with `FARM_TEST_SLURM=1 cargo test -p farm-slurm --test
//! conformance real:: -- --ignored`.

mod support;

use farm_conformance::suite;

mod cli_simulator {
    use super::support::cli_test_farm as farm;
    super::suite!(farm);
}

mod rest_emulation {
    use super::support::rest_test_farm as farm;
    super::suite!(farm);
}

/// A real Slurm (started by `tools/slurm-lab/slurm-up.sh`). Run (`--ignored`) without
/// `FARM_TEST_SLURM`, or with it and no Slurm reachable, the tests fail instead of skipping.
mod real {
    use std::sync::Arc;
    use std::time::Duration;

    use farm_conformance::{SuiteSettings, TestFarm};
    use farm_slurm::{SlurmFarm, SlurmSettings, Transport};

    fn require_slurm() {
        let ping = std::process::Command::new("scontrol").arg("ping").output();
        match ping {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("UP") => {}
            Ok(out) => panic!(
                "FARM_TEST_SLURM is set but slurmctld is not up: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("FARM_TEST_SLURM is set but scontrol cannot run: {e}"),
        }
    }

    /// A fresh JWT from `scontrol token` (root may mint them), unless SLURM_JWT is set.
    pub fn token() -> String {
        if let Ok(t) = std::env::var("SLURM_JWT")
            && !t.is_empty()
        {
            return t;
        }
        let out = std::process::Command::new("scontrol")
            .args(["token", "lifespan=7200"])
            .output()
            .expect("scontrol token");
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .strip_prefix("SLURM_JWT=")
            .unwrap_or_else(|| panic!("scontrol token printed {text:?}"))
            .to_owned()
    }

    pub fn settings(transport: Transport, dir: &std::path::Path) -> SlurmSettings {
        let mut s = SlurmSettings {
            transport,
            ..SlurmSettings::default()
        };
        s.state_directory = Some(dir.join("journal"));
        s.log_directory = Some(dir.join("logs").display().to_string());
        s.command_timeout = Duration::from_secs(20);
        if transport == Transport::Rest {
            s.url = std::env::var("FARM_TEST_SLURMRESTD_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:6820".into());
            s.user_name = Some(std::env::var("USER").unwrap_or_else(|_| "root".into()));
            s.token = Some(token().into());
            // slurmrestd has no test-only call: `check` asks this host's sbatch.
            s.check_with_cli = true;
        }
        s
    }

    pub fn farm(transport: Transport) -> TestFarm {
        require_slurm();
        // Jobs and this process must see the same paths: a directory under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("farm-slurm-real-")
            .tempdir_in("/tmp")
            .unwrap();
        let farm = SlurmFarm::from_settings(
            "real",
            settings(transport, dir.path()),
            super::support::common(dir.path()),
        )
        .unwrap();
        let mut suite = SuiteSettings::new(dir.path().join("scratch"));
        suite.job_timeout = Duration::from_secs(120);
        suite.check_timeout = Duration::from_secs(400);
        suite.poll_interval = Duration::from_millis(200);
        TestFarm::new(Arc::new(farm))
            .with_settings(suite)
            .with_guard(dir)
    }

    pub async fn real_cli() -> TestFarm {
        farm(Transport::Cli)
    }

    pub async fn real_rest() -> TestFarm {
        farm(Transport::Rest)
    }

    mod cli {
        use super::real_cli as farm;
        farm_conformance::suite!(farm, gate = "FARM_TEST_SLURM");
    }

    mod rest {
        use super::real_rest as farm;
        farm_conformance::suite!(farm, gate = "FARM_TEST_SLURM");
    }
}
