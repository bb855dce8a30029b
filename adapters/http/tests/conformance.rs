//! The conformance suite against stateful emulations of every shipped profile's scheduler:
//! jobs advance through their lifecycle and really run their commands, and the emulations
//! can forget jobs, garble or withhold replies (`SchedulerControl`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use farm_conformance::{SuiteSettings, TestFarm};
use farm_core::{CommonSettings, SharedStaging};
use farm_http::{HttpFarm, HttpSettings, RetryPolicy};
use support::{Dialect, Emulation};

const TOKEN: &str = "conformance-token-not-a-secret";

async fn emulated(dialect: Dialect, profile: &str) -> TestFarm {
    let emulation = Emulation::start(dialect, Some(TOKEN)).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let settings = HttpSettings::new(emulation.url())
        .with_token(TOKEN)
        .with_profile(profile)
        .with_timeout(Duration::from_secs(2))
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 20,
            max_delay_ms: 200,
        });
    // The staging root is the shared file system's mount point: it exists before the farm.
    std::fs::create_dir_all(scratch.path().join("staging")).expect("staging root");
    let common = CommonSettings {
        staging: Some(SharedStaging::new(scratch.path().join("staging"))),
        ..CommonSettings::default()
    };
    let farm = HttpFarm::from_settings("http", settings, common).expect("farm");
    let mut suite = SuiteSettings::new(scratch.path().join("shared"));
    suite.job_timeout = Duration::from_secs(30);
    suite.check_timeout = Duration::from_secs(120);
    let control = emulation.control();
    TestFarm::new(Arc::new(farm))
        .with_settings(suite)
        .with_control(control)
        .with_guard((emulation, scratch))
}

/// Our protocol, the built-in profile.
async fn builtin() -> TestFarm {
    emulated(Dialect::FarmV1, "builtin").await
}

farm_conformance::suite!(builtin);

mod deadline {
    use super::*;

    /// Deadline's Web Service with the FarmBridge plug-in.
    async fn deadline_web_service() -> TestFarm {
        emulated(Dialect::Deadline, "deadline-web-service").await
    }

    farm_conformance::suite!(deadline_web_service);
}

mod untimed {
    use super::*;

    /// Our protocol from a scheduler that reports no start or end time, described by a
    /// profile that maps none and says `job_times: false`: the suite asks only for the
    /// times a farm declares (issue 15).
    async fn untimed_scheduler() -> TestFarm {
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = dir.path().join("untimed.yaml");
        std::fs::write(&profile, untimed_profile()).expect("write the profile");
        emulated(Dialect::FarmV1Untimed, &profile.display().to_string()).await
    }

    /// The built-in profile without the two times.
    fn untimed_profile() -> String {
        let mut yaml = farm_http::profile::BUILTIN_YAML.to_owned();
        for (from, to) in [
            ("  start_time: /start_time\n", ""),
            ("  end_time: /end_time\n", ""),
            (
                "  idempotent_submit: true\n",
                "  idempotent_submit: true\n  job_times: false\n",
            ),
        ] {
            assert!(yaml.contains(from), "the built-in profile has no {from:?}");
            yaml = yaml.replacen(from, to, 1);
        }
        yaml
    }

    farm_conformance::suite!(untimed_scheduler);
}

/// A real server speaking a shipped profile's API, for CI: set `FARM_TEST_HTTP_URL` (and
/// `FARM_TEST_HTTP_TOKEN`, `FARM_TEST_HTTP_PROFILE` when needed). Its jobs must run on this
/// machine, since the checks' probes write into a local scratch directory (the local queue
/// does). Fault-injection checks report "not applicable" here.
mod real_server {
    use super::*;

    async fn real_server() -> TestFarm {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = var("FARM_TEST_HTTP_URL").expect("FARM_TEST_HTTP_URL");
        let mut settings = HttpSettings::new(url)
            .with_profile(var("FARM_TEST_HTTP_PROFILE").unwrap_or_else(|| "builtin".into()));
        if let Some(token) = var("FARM_TEST_HTTP_TOKEN") {
            settings = settings.with_token(token);
        }
        let scratch = tempfile::tempdir().expect("tempdir");
        let farm = HttpFarm::new(settings).expect("farm");
        let mut suite = SuiteSettings::new(scratch.path().join("shared"));
        suite.job_timeout = Duration::from_secs(60);
        TestFarm::new(Arc::new(farm))
            .with_settings(suite)
            .with_guard(scratch)
    }

    farm_conformance::suite!(real_server, gate = "FARM_TEST_HTTP_URL");
}
