//! The `settings:` block of an OpenJD farm, read with `FarmSpec::settings_as`.
//!
//! ```yaml
//! adapter: openjd
//! settings:
//!   transport: local            # or deadline-cloud
//!   data_root: /var/tmp/farm-openjd
//!   farm_id: farm-0123...       # deadline-cloud only
//!   queue_id: queue-0123...
//! ```

use std::path::PathBuf;
use std::time::Duration;

use farm_core::{FarmError, Result};
use serde::Deserialize;

/// Where bundles run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// This machine, with the real `openjd run` (one detached run per job).
    #[default]
    Local,
    /// AWS Deadline Cloud, through the official `deadline` CLI.
    DeadlineCloud,
}

/// Settings of the `openjd` adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenJdSettings {
    /// `local` (default) or `deadline-cloud`.
    #[serde(default)]
    pub transport: Transport,
    /// The `openjd` program (PyPI `openjd-cli`) for the local transport.
    #[serde(default = "default_openjd")]
    pub openjd_bin: String,
    /// The `deadline` program (PyPI `deadline`) for the deadline-cloud transport.
    #[serde(default = "default_deadline")]
    pub deadline_bin: String,
    /// Job folders (local) and submitted bundles plus the journal (deadline-cloud).
    /// Default: `<state dir>/farm/openjd/<farm name>`.
    #[serde(default)]
    pub data_root: Option<PathBuf>,
    /// Deadline Cloud farm id (`farm-...`); default: the `deadline` CLI's configured one.
    #[serde(default)]
    pub farm_id: Option<String>,
    /// Deadline Cloud queue id (`queue-...`); default: the CLI's configured one.
    #[serde(default)]
    pub queue_id: Option<String>,
    /// AWS profile for the `deadline` CLI.
    #[serde(default)]
    pub profile: Option<String>,
    /// AWS region for the `deadline` CLI.
    #[serde(default)]
    pub region: Option<String>,
    /// Longest a `deadline` command may take (default 120s: submit uploads the bundle).
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub command_timeout: Duration,
    /// Local: how long a stopped run gets after SIGTERM before SIGKILL (default 5s).
    #[serde(
        default = "default_grace",
        deserialize_with = "farm_core::config::duration"
    )]
    pub stop_grace: Duration,
}

fn default_openjd() -> String {
    "openjd".into()
}

fn default_deadline() -> String {
    "deadline".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

impl Default for OpenJdSettings {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every setting has a default")
    }
}

impl OpenJdSettings {
    /// Checks what serde cannot: ids that would be read as options.
    pub fn validate(&self, farm: &str) -> Result<()> {
        for (key, value) in [
            ("farm_id", &self.farm_id),
            ("queue_id", &self.queue_id),
            ("profile", &self.profile),
            ("region", &self.region),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.starts_with('-') || v.chars().any(char::is_control))
            {
                return Err(FarmError::config(format!(
                    "farm {farm}: settings.{key}: {v:?} is not an id"
                )));
            }
        }
        for (key, value) in [
            ("openjd_bin", &self.openjd_bin),
            ("deadline_bin", &self.deadline_bin),
        ] {
            if value.is_empty() {
                return Err(FarmError::config(format!(
                    "farm {farm}: settings.{key} is empty"
                )));
            }
        }
        Ok(())
    }

    /// The data root: the setting, else the per-farm state directory.
    pub fn data_root(&self, farm: &str) -> Result<PathBuf> {
        self.data_root
            .clone()
            .or_else(|| farm_core::journal::default_directory("openjd", farm))
            .ok_or_else(|| {
                FarmError::config(format!(
                    "farm {farm}: no state directory on this host: set settings.data_root"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_kebab_case_transport() {
        let s = OpenJdSettings::default();
        assert_eq!(s.transport, Transport::Local);
        assert_eq!(s.openjd_bin, "openjd");
        let s: OpenJdSettings = serde_yaml::from_str(
            "transport: deadline-cloud\nfarm_id: farm-1\ncommand_timeout: 30s",
        )
        .unwrap();
        assert_eq!(s.transport, Transport::DeadlineCloud);
        assert_eq!(s.command_timeout, Duration::from_secs(30));
        assert!(serde_yaml::from_str::<OpenJdSettings>("colour: red").is_err());
    }

    #[test]
    fn option_like_ids_are_refused() {
        let s: OpenJdSettings = serde_yaml::from_str("queue_id: --yes").unwrap();
        let err = s.validate("f").unwrap_err().to_string();
        assert!(err.contains("settings.queue_id"), "{err}");
    }
}
