//! Settings of an `adapter: external` farm, from the farms file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Settings of an `adapter: external` farm.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSettings {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Extra environment variables for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directory to start it in.
    #[serde(default)]
    pub working_directory: Option<PathBuf>,
    /// How long one call may take (default 60s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub timeout: Duration,
    /// Passed verbatim to the adapter in `hello` (its own configuration).
    #[serde(default)]
    pub options: Value,
}

impl std::fmt::Debug for ExternalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values and options may hold credentials: never print them.
        f.debug_struct("ExternalSettings")
            .field("command", &self.command)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
