//! The adapter's settings: the `settings:` map of an `htcondor` farm in the farms file.
//!
//! ```yaml
//! farms:
//!   pool:
//!     adapter: htcondor
//!     staging_root: /mnt/render/staging
//!     settings:
//!       log_directory: /mnt/render/condor   # shared: submit host, render nodes, this host
//!       ssh: {destination: render@submit01, options: [-oBatchMode=yes]}
//!       command_timeout: 60s
//!       hold_timeout: 4h
//!       state_directory: /var/lib/farm/htcondor/pool   # the journal; default per user
//! ```
//!
//! Every key can be overridden with a `FARM_HTCONDOR_<KEY>` variable.

use std::path::PathBuf;
use std::time::Duration;

use farm_core::{FarmError, FarmSpec, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where job directories go when neither the request nor the settings name one.
pub const DEFAULT_LOG_DIRECTORY: &str = "/tmp/farm-htcondor";

/// Settings of an `htcondor` farm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondorSettings {
    /// Folder holding `condor_submit`, `condor_q`, ...; the `PATH` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// Run the commands on a submit host over ssh instead of locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSettings>,
    /// `CONDOR_CONFIG` for local commands (ignored over ssh, where the remote login decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condor_config: Option<String>,
    /// Longest time one command may take before the call fails as `Unavailable`.
    #[serde(default = "default_command_timeout", with = "human_duration")]
    pub command_timeout: Duration,
    /// Absolute directory for job directories (submit file, wrapper, user log, render logs)
    /// when the request has no `log_directory`. Must be shared by the submit host, the
    /// render nodes and this host for logs to be readable.
    #[serde(default = "default_log_directory")]
    pub log_directory: String,
    /// A job held longer than this is reported Failed (it stays held in the queue until
    /// released or removed). Absent: held jobs wait forever.
    #[serde(default = "default_hold_timeout", with = "human_duration_opt")]
    pub hold_timeout: Option<Duration>,
    /// `max_retries` for every job: HTCondor reruns a proc that exits non-zero this many
    /// times before it counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `-name`: the schedd to talk to, when not the local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedd: Option<String>,
    /// `-pool`: the central manager that locates `schedd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The universe jobs run in.
    #[serde(default = "default_universe")]
    pub universe: String,
    /// `-scanlimit` for `condor_history`: bounds how many history records one query reads,
    /// for schedds with huge histories. Absent: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_scan_limit: Option<u64>,
    /// Where the adapter records the clusters it submitted, so a later `farm` process still
    /// tells a lost job from an unknown id and finds its user log. Default:
    /// `<user state dir>/farm/htcondor/<farm name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_directory: Option<PathBuf>,
}

/// `ssh` transport settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// `[user@]host` of the submit host.
    pub destination: String,
    /// Extra `ssh` options (`-oBatchMode=yes`, `-i key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_log_directory() -> String {
    DEFAULT_LOG_DIRECTORY.to_owned()
}

fn default_hold_timeout() -> Option<Duration> {
    Some(Duration::from_secs(4 * 3600))
}

fn default_universe() -> String {
    "vanilla".to_owned()
}

impl Default for CondorSettings {
    fn default() -> Self {
        CondorSettings {
            bin_dir: None,
            ssh: None,
            condor_config: None,
            command_timeout: default_command_timeout(),
            log_directory: default_log_directory(),
            hold_timeout: default_hold_timeout(),
            max_retries: None,
            schedd: None,
            pool: None,
            universe: default_universe(),
            history_scan_limit: None,
            state_directory: None,
        }
    }
}

impl CondorSettings {
    /// Reads and checks the settings of farm `name`.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<CondorSettings> {
        let settings: CondorSettings = spec.settings_as(name)?;
        settings
            .check()
            .map_err(|problem| FarmError::config(format!("farm {name}: settings.{problem}")))?;
        Ok(settings)
    }

    /// Parses settings from YAML (tests and tools); an error names the setting.
    pub fn from_yaml(text: &str) -> Result<CondorSettings> {
        let settings: CondorSettings = serde_path_to_error::deserialize(
            serde_yaml::Deserializer::from_str(text),
        )
        .map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." {
                String::new()
            } else {
                format!("{at}: ")
            };
            FarmError::config(format!("htcondor settings: {at}{}", e.inner()))
        })?;
        settings
            .check()
            .map_err(|problem| FarmError::config(format!("htcondor settings: {problem}")))?;
        Ok(settings)
    }

    /// The journal directory: `state_directory`, else one per farm under the user's state
    /// directory (the scheme every adapter's journal follows).
    pub fn journal_directory(&self, farm: &str) -> Option<PathBuf> {
        self.state_directory
            .clone()
            .or_else(|| farm_core::journal::default_directory(crate::ADAPTER, farm))
    }

    /// What is wrong, as `field: problem`.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !self.log_directory.starts_with('/') {
            return Err(format!(
                "log_directory: {:?} is not an absolute path",
                self.log_directory
            ));
        }
        if let Err(problem) = crate::vocabulary::check_directory(&self.log_directory) {
            return Err(format!("log_directory: {problem}"));
        }
        if self.command_timeout.is_zero() {
            return Err("command_timeout: must be longer than zero".into());
        }
        if self.universe.is_empty()
            || !self
                .universe
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "universe: {:?} is not a universe name such as vanilla",
                self.universe
            ));
        }
        for (field, value) in [("schedd", &self.schedd), ("pool", &self.pool)] {
            if let Some(v) = value
                && (v.is_empty()
                    || v.starts_with('-')
                    || v.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(format!("{field}: {v:?} is not a host or daemon name"));
            }
        }
        if let Some(dir) = &self.state_directory
            && !dir.is_absolute()
        {
            return Err(format!(
                "state_directory: {:?} is not an absolute path",
                dir.display().to_string()
            ));
        }
        if let Some(ssh) = &self.ssh
            && (ssh.destination.is_empty() || ssh.destination.starts_with('-'))
        {
            return Err(format!(
                "ssh.destination: {:?} is not a [user@]host",
                ssh.destination
            ));
        }
        Ok(())
    }
}

/// Durations: read with the shared `farm_core::config::duration` (`60s`, `4h 30m`, or a
/// number of seconds; zero refused), written as humantime text.
mod human_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        farm_core::config::duration(d)
    }
}

/// Optional durations; `none` (or `null`) switches the limit off.
mod human_duration_opt {
    use super::*;

    pub fn serialize<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_str("none"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        // Buffered, so `none` can be told apart before the shared reader sees the value.
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::Null => Ok(None),
            serde_yaml::Value::String(text) if text.trim().eq_ignore_ascii_case("none") => Ok(None),
            value => farm_core::config::duration(value)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_map() {
        let s = CondorSettings::from_yaml("{}").unwrap();
        assert_eq!(s, CondorSettings::default());
        assert_eq!(s.command_timeout, Duration::from_secs(60));
        assert_eq!(s.hold_timeout, Some(Duration::from_secs(14400)));
        assert_eq!(s.log_directory, DEFAULT_LOG_DIRECTORY);
        assert_eq!(s.state_directory, None);
    }

    #[test]
    fn the_journal_goes_to_the_state_directory_else_one_per_farm() {
        let s = CondorSettings::from_yaml("state_directory: /var/lib/farm/pool").unwrap();
        assert_eq!(
            s.journal_directory("pool"),
            Some(PathBuf::from("/var/lib/farm/pool"))
        );
        let default = CondorSettings::default().journal_directory("my pool");
        assert_eq!(
            default,
            farm_core::journal::default_directory("htcondor", "my pool")
        );
        if let Some(dir) = default {
            assert!(dir.ends_with("farm/htcondor/my_pool"), "{dir:?}");
        }
    }

    #[test]
    fn settings_parse_with_durations_and_ssh() {
        let s = CondorSettings::from_yaml(
            "log_directory: /mnt/logs\ncommand_timeout: 90s\nhold_timeout: none\nmax_retries: 2\n\
             ssh: {destination: render@submit01, options: [-oBatchMode=yes]}\nschedd: schedd01\npool: cm01:9618\n",
        )
        .unwrap();
        assert_eq!(s.command_timeout, Duration::from_secs(90));
        assert_eq!(s.hold_timeout, None);
        assert_eq!(s.ssh.as_ref().unwrap().options, ["-oBatchMode=yes"]);
        let round: CondorSettings =
            serde_yaml::from_str(&serde_yaml::to_string(&s).unwrap()).unwrap();
        assert_eq!(round, s);
    }

    #[test]
    fn durations_are_text_or_seconds_and_serialize_as_text() {
        for (yaml, command, hold) in [
            ("command_timeout: 90", 90.0, Some(14400.0)),
            ("command_timeout: 1.5\nhold_timeout: 600", 1.5, Some(600.0)),
            (
                "command_timeout: 1m 30s\nhold_timeout: 2h",
                90.0,
                Some(7200.0),
            ),
            ("hold_timeout: none", 60.0, None),
            ("hold_timeout: None", 60.0, None),
            ("hold_timeout: null", 60.0, None),
            ("hold_timeout: ~", 60.0, None),
        ] {
            let s = CondorSettings::from_yaml(yaml).unwrap();
            assert_eq!(
                (s.command_timeout, s.hold_timeout),
                (
                    Duration::from_secs_f64(command),
                    hold.map(Duration::from_secs_f64)
                ),
                "{yaml}"
            );
            let text = serde_yaml::to_string(&s).unwrap();
            assert!(!text.contains("command_timeout: 1.5"), "{text}");
            assert_eq!(CondorSettings::from_yaml(&text).unwrap(), s, "{text}");
        }
    }

    #[test]
    fn bad_durations_name_their_setting_in_farms_files() {
        for (settings, needle, value) in [
            (
                "{command_timeout: soon}",
                "settings.command_timeout",
                "soon",
            ),
            ("{command_timeout: 0}", "settings.command_timeout", "0"),
            ("{hold_timeout: 0s}", "settings.hold_timeout", "0s"),
            ("{hold_timeout: -5}", "settings.hold_timeout", "-5"),
            (
                "{hold_timeout: forever}",
                "settings.hold_timeout",
                "forever",
            ),
        ] {
            let spec = FarmSpec {
                settings: serde_yaml::from_str(settings).unwrap(),
                ..FarmSpec::new("htcondor")
            };
            let err = CondorSettings::from_spec("pool", &spec)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("farm pool: {needle}")) && err.contains(value),
                "{settings}: {err}"
            );
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        for (yaml, needle) in [
            ("log_directory: relative/dir", "log_directory"),
            ("log_directory: '/a/$$(x)'", "log_directory"),
            ("command_timeout: 0s", "command_timeout"),
            ("command_timeout: soon", "command_timeout: \"soon\""),
            ("hold_timeout: later", "hold_timeout: \"later\""),
            ("universe: 'vanilla; rm'", "universe"),
            ("schedd: '-pool'", "schedd"),
            ("ssh: {destination: '-oProxyCommand=x'}", "ssh.destination"),
            ("state_directory: relative/state", "state_directory"),
            ("colour: red", "unknown field `colour`"),
        ] {
            let err = CondorSettings::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
    }

    #[test]
    fn farm_specs_report_the_farm_name() {
        let spec = FarmSpec {
            settings: serde_yaml::from_str("{log_directory: nope}").unwrap(),
            ..FarmSpec::new("htcondor")
        };
        let err = CondorSettings::from_spec("pool", &spec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("farm pool: settings.log_directory"), "{err}");
    }
}
