//! Settings of the `local` adapter (the `settings:` map of a farm with `adapter: local`;
//! `FARM_LOCAL_<NAME>` variables override them, as for every adapter).
//!
//! The queue's address is found through its data root: where the running queue says it
//! listens (`server.json`), else the port it used last, else 7575 — and an autostarted queue
//! that finds that port taken (another user's queue) takes a free one and records it. Set
//! `url` (or [`QUEUE_URL_ENV`], the one variable every command reads) only for a queue
//! elsewhere.
//!
//! ```yaml
//! farms:
//!   local:
//!     adapter: local
//!     settings:
//!       url: http://127.0.0.1:7575   # where the queue listens (default: found in the data root)
//!       autostart: true              # start a queue in the background when none answers
//!       agents: 4                    # local agents of an autostarted queue (default 2)
//!       idle_shutdown: 15m           # an autostarted queue exits after this long idle
//!       pass_env: [OCIO, "PIXAR_*"]  # more variables an autostarted queue (and so its jobs) keeps
//!       start_timeout: 20s           # wait this long for an autostarted queue to answer
//!       timeout: 30s                 # longest wait for one HTTP exchange
//! ```

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The one variable naming the local queue's address (`farm queue serve` listens at its
/// port; `farm queue url`, `farm agent` and the `local` farm connect to it).
pub const QUEUE_URL_ENV: &str = "FARM_QUEUE_URL";

/// Settings of the `local` adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// The queue's URL (default: `$FARM_QUEUE_URL`, else found in the data root).
    #[serde(default)]
    pub url: Option<String>,
    /// The queue's data root (default: `$FARM_DATA_ROOT`, else the user's data directory).
    #[serde(default)]
    pub data_root: Option<PathBuf>,
    /// The queue's client token (default: read from `api.token` in the data root).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Start a queue in the background when none answers at a loopback `url`.
    #[serde(default = "yes")]
    pub autostart: bool,
    /// Local agents an autostarted queue runs (default: its own default, 2).
    #[serde(default)]
    pub agents: Option<usize>,
    /// An autostarted queue exits after this long without work or clients.
    #[serde(
        default = "default_idle",
        deserialize_with = "farm_core::config::duration"
    )]
    pub idle_shutdown: Duration,
    /// Variables an autostarted queue keeps from the caller's environment besides
    /// [`crate::client::AUTOSTART_ENV`] (a trailing `*` matches a prefix). Credential
    /// variables are never passed.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The command that starts a queue (default: this program with `queue serve`).
    #[serde(default)]
    pub server_command: Option<Vec<String>>,
    /// How long to wait for an autostarted queue to answer.
    #[serde(
        default = "default_start_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub start_timeout: Duration,
    /// Longest wait for one HTTP exchange.
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub timeout: Duration,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            url: None,
            data_root: None,
            token: None,
            autostart: true,
            agents: None,
            idle_shutdown: default_idle(),
            pass_env: Vec::new(),
            server_command: None,
            start_timeout: default_start_timeout(),
            timeout: default_timeout(),
        }
    }
}

impl LocalSettings {
    /// Settings for a queue at `url` that is never autostarted.
    pub fn connect(url: impl Into<String>, token: SecretString) -> LocalSettings {
        LocalSettings {
            url: Some(url.into()),
            token: Some(token),
            autostart: false,
            ..LocalSettings::default()
        }
    }
}

fn default_idle() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_start_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_durations() {
        let s: LocalSettings = serde_yaml::from_str("{}").unwrap();
        assert_eq!(s.url, None, "found in the data root");
        assert!(s.autostart);
        assert_eq!(s.idle_shutdown, Duration::from_secs(900));
        let s: LocalSettings =
            serde_yaml::from_str("idle_shutdown: 90s\nagents: 4\nautostart: false\n").unwrap();
        assert_eq!(
            (s.idle_shutdown, s.agents, s.autostart),
            (Duration::from_secs(90), Some(4), false)
        );
        assert!(
            serde_yaml::from_str::<LocalSettings>("agent: 4\n").is_err(),
            "unknown keys are refused"
        );
        assert!(serde_yaml::from_str::<LocalSettings>("idle_shutdown: soon\n").is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let s = LocalSettings::connect(
            "http://127.0.0.1:1",
            SecretString::from("s3cr3t-token".to_owned()),
        );
        assert!(!format!("{s:?}").contains("s3cr3t-token"));
    }
}
