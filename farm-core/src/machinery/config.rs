//! The farms file: named farms, each an adapter plus its settings.
//!
//! ```yaml
//! default: studio-slurm
//! farms:
//!   studio-slurm:
//!     adapter: slurm
//!     description: Main render partition
//!     staging_root: /mnt/render/staging
//!     installation: {katana_root: /opt/Katana7.0v1}
//!     render_environment: {FOUNDRY_LICENSE: 4101@licserver}
//!     settings:            # the adapter's own settings, checked by the adapter
//!       transport: cli
//!       partition: render
//! ```
//!
//! Found through `--config`, then `FARM_CONFIG`, then `<config dir>/farm/farms.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{FarmError, Result};
use crate::installation::InstallationMetadata;
use crate::staging::SharedStaging;

/// Re-exported from [`katana`](crate::katana), where what it configures is implemented.
pub use crate::katana::CommonSettings;

/// Environment variable naming the farms file.
pub const CONFIG_ENV: &str = "FARM_CONFIG";

/// The whole farms file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmsConfig {
    /// Farm used when `--farm` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Farms by name.
    #[serde(default)]
    pub farms: BTreeMap<String, FarmSpec>,
}

/// One named farm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmSpec {
    /// Which adapter drives it (`slurm`, `htcondor`, `http`, `local`, `external`, ...).
    pub adapter: String,
    /// One line for `farm farms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Shared directory for render-file staging (enables `stage_files` on adapters that
    /// stage through a shared file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_root: Option<PathBuf>,
    /// The Katana installation on the render nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<InstallationMetadata>,
    /// Variables for the render process (`getRenderEnvironment`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub render_environment: BTreeMap<String, String>,
    /// The adapter's own settings, validated by the adapter.
    #[serde(default, skip_serializing_if = "is_null")]
    pub settings: serde_yaml::Value,
}

fn is_null(v: &serde_yaml::Value) -> bool {
    v.is_null()
}

impl FarmSpec {
    /// A farm of `adapter` with no settings.
    pub fn new(adapter: impl Into<String>) -> FarmSpec {
        FarmSpec {
            adapter: adapter.into(),
            description: None,
            staging_root: None,
            installation: None,
            render_environment: BTreeMap::new(),
            settings: serde_yaml::Value::Null,
        }
    }

    /// Deserialises the adapter's settings (missing settings are an empty map), naming the
    /// field of any error: `farm hpc: settings.partition: invalid type ...`. Variables
    /// `FARM_<ADAPTER>_<SETTING>` override file values (`FARM_SLURM_PARTITION=gpu`); a
    /// variable that names no setting of the adapter is ignored with a warning (the
    /// environment is shared with other tools), but a bad value for a real setting is an
    /// error naming the variable.
    pub fn settings_as<T: DeserializeOwned>(&self, farm_name: &str) -> Result<T> {
        let mut value = match &self.settings {
            serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
            other => other.clone(),
        };
        let from_file: T = deserialize_settings(value.clone(), farm_name, None)?;
        let overrides = env_overrides(&self.adapter, std::env::vars());
        if overrides.is_empty() {
            return Ok(from_file);
        }
        let prefix = format!(
            "FARM_{}_",
            self.adapter.to_ascii_uppercase().replace('-', "_")
        );
        for (key, val) in overrides {
            let var = format!("{prefix}{}", key.to_ascii_uppercase());
            let mut candidate = value.clone();
            if let serde_yaml::Value::Mapping(map) = &mut candidate {
                map.insert(serde_yaml::Value::String(key.clone()), val);
            }
            match deserialize_settings::<T>(candidate.clone(), farm_name, Some(&var)) {
                Ok(_) => value = candidate,
                Err(err) if err.to_string().contains(&format!("unknown field `{key}`")) => {
                    tracing::warn!(variable = %var, farm = farm_name, "ignoring a variable that names no setting of the {} adapter", self.adapter);
                }
                Err(err) => return Err(err),
            }
        }
        deserialize_settings(value, farm_name, None)
    }

    /// What every adapter shares: staging, installation metadata, render environment.
    pub fn common(&self) -> CommonSettings {
        CommonSettings {
            staging: self.staging_root.as_ref().map(SharedStaging::new),
            installation: self.installation.clone(),
            render_environment: self.render_environment.clone(),
        }
    }
}

fn deserialize_settings<T: DeserializeOwned>(
    value: serde_yaml::Value,
    farm_name: &str,
    variable: Option<&str>,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(".{path}")
        };
        let from = variable
            .map(|v| format!(" (from ${v})"))
            .unwrap_or_default();
        // Serde quotes the offending value; never show it for a secret setting.
        let detail = if path.split('.').any(crate::secret::is_secret_setting) {
            "invalid value (not shown: it is a secret)".to_owned()
        } else {
            err.inner().to_string()
        };
        FarmError::config(format!("farm {farm_name}: settings{at}{from}: {detail}"))
    })
}

/// Reads a positive duration from adapter settings: `30s`, `1m 30s`, `500ms` (humantime) or
/// a number of seconds. For `#[serde(deserialize_with = "farm_core::config::duration")]`, so
/// every adapter accepts the same spellings.
pub fn duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::time::Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) if s.is_finite() && s > 0.0 => Ok(std::time::Duration::from_secs_f64(s)),
        Raw::Seconds(s) => Err(serde::de::Error::custom(format!(
            "{s} is not a positive duration"
        ))),
        Raw::Text(t) => humantime::parse_duration(&t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a duration such as 30s, 1m 30s or 500ms"
                ))
            }),
    }
}

/// `FARM_<ADAPTER>_<NAME>=value` variables as `(name, value)` settings, the value read as a
/// YAML scalar (`8` is a number, `true` a boolean). The name is lower-cased.
pub fn env_overrides(
    adapter: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, serde_yaml::Value)> {
    let prefix = format!("FARM_{}_", adapter.to_ascii_uppercase().replace('-', "_"));
    let mut out: Vec<_> = vars
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(&prefix)?.to_ascii_lowercase();
            // A secret is taken verbatim: YAML would unquote it, cut it at ` #`, or turn
            // it into a number.
            let value = if crate::secret::is_secret_setting(&name) {
                serde_yaml::Value::String(v)
            } else {
                serde_yaml::from_str::<serde_yaml::Value>(&v)
                    .ok()
                    .filter(|parsed| !parsed.is_mapping() && !parsed.is_sequence())
                    .unwrap_or(serde_yaml::Value::String(v))
            };
            (!name.is_empty()).then_some((name, value))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl FarmsConfig {
    /// Parses a farms file, naming the line and field of any error.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<FarmsConfig> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let message = err.inner().to_string();
            let detail = crate::error::without_path_prefix(&message, &path);
            FarmError::config(format!("{origin}: {path}: {detail}"))
        })
    }

    /// Reads the farms file from `explicit`, else `FARM_CONFIG`, else the user's config
    /// directory, returning its path and contents. `None` when no file exists and none was
    /// named; a named file that is missing is an error.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<(PathBuf, FarmsConfig)>> {
        let named = explicit.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(CONFIG_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(path) = named {
            let text = std::fs::read_to_string(&path).map_err(|e| FarmError::Config {
                message: format!("cannot read farms file {}: {e}", path.display()),
                source: Some(Box::new(e)),
            })?;
            let config = FarmsConfig::from_yaml_str(&text, &path.display().to_string())?;
            return Ok(Some((path, config)));
        }
        match default_config_path() {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(&path).map_err(|e| FarmError::Config {
                    message: format!("cannot read farms file {}: {e}", path.display()),
                    source: Some(Box::new(e)),
                })?;
                let config = FarmsConfig::from_yaml_str(&text, &path.display().to_string())?;
                Ok(Some((path, config)))
            }
            _ => Ok(None),
        }
    }
}

/// `<config dir>/farm/farms.yaml` (`~/.config/farm/farms.yaml` on Linux).
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("farm").join("farms.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct DemoSettings {
        partition: String,
        #[serde(default)]
        max_array: Option<u32>,
    }

    #[test]
    fn a_farms_file_parses_and_settings_are_checked_by_their_adapter() {
        let cfg = FarmsConfig::from_yaml_str(
            "default: hpc\nfarms:\n  hpc:\n    adapter: demo\n    staging_root: /mnt/s\n    settings: {partition: render, max_array: 8}\n",
            "farms.yaml",
        )
        .unwrap();
        let spec = &cfg.farms["hpc"];
        let s: DemoSettings = spec.settings_as("hpc").unwrap();
        assert_eq!(
            s,
            DemoSettings {
                partition: "render".into(),
                max_array: Some(8)
            }
        );
        assert!(spec.common().can_stage());

        let typo = FarmSpec {
            settings: serde_yaml::from_str("{partiton: x}").unwrap(),
            ..FarmSpec::new("demo")
        };
        let err = typo
            .settings_as::<DemoSettings>("hpc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("farm hpc: settings") && err.contains("unknown field `partiton`"),
            "{err}"
        );
        let wrong = FarmSpec {
            settings: serde_yaml::from_str("{partition: x, max_array: lots}").unwrap(),
            ..FarmSpec::new("demo")
        };
        let err = wrong
            .settings_as::<DemoSettings>("hpc")
            .unwrap_err()
            .to_string();
        assert!(err.contains("settings.max_array"), "{err}");
    }

    #[test]
    fn unknown_top_level_keys_name_their_place() {
        let err = FarmsConfig::from_yaml_str("farms:\n  a:\n    adaptor: slurm\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.yaml") && err.contains("farms.a") && err.contains("adaptor"),
            "{err}"
        );
        assert_eq!(
            err.matches("farms.a").count(),
            1,
            "the place is named once: {err}"
        );
    }

    #[test]
    fn durations_accept_units_and_plain_seconds_but_not_zero() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "duration")]
            d: std::time::Duration,
        }
        let ok = |y: &str| serde_yaml::from_str::<T>(y).map(|t| t.d);
        assert_eq!(ok("d: 30s").unwrap(), std::time::Duration::from_secs(30));
        assert_eq!(ok("d: 1m 30s").unwrap(), std::time::Duration::from_secs(90));
        assert_eq!(
            ok("d: 500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(
            ok("d: 2.5").unwrap(),
            std::time::Duration::from_millis(2500)
        );
        for bad in ["d: 0", "d: -1", "d: 0s", "d: soon"] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_overrides_are_typed_scalars() {
        let vars = [
            ("FARM_SLURM_PARTITION", "gpu"),
            ("FARM_SLURM_MAX_ARRAY", "8"),
            ("FARM_HTTP_URL", "x"),
            ("FARM_SLURM_", "ignored"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let got = env_overrides("slurm", vars.into_iter());
        assert_eq!(
            got,
            [
                ("max_array".to_string(), serde_yaml::Value::Number(8.into())),
                (
                    "partition".to_string(),
                    serde_yaml::Value::String("gpu".into())
                ),
            ]
        );
    }

    #[test]
    fn unrelated_variables_are_ignored_and_bad_values_name_their_variable() {
        // SAFETY of the test: the variable names are unique to this test.
        let spec = FarmSpec {
            settings: serde_yaml::from_str("{partition: render}").unwrap(),
            ..FarmSpec::new("envtestadapter")
        };
        // std::env::set_var is unsafe in edition 2024 and the crate forbids unsafe code, so
        // exercise the path through a child process instead.
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("FARM_ENVTEST_CHILD").is_some() {
            let s: DemoSettings = spec.settings_as("hpc").unwrap();
            assert_eq!(s.partition, "gpu");
            assert_eq!(s.max_array, None);
            return;
        }
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "machinery::config::tests::unrelated_variables_are_ignored_and_bad_values_name_their_variable",
                "--nocapture",
            ])
            .env("FARM_ENVTEST_CHILD", "1")
            .env("FARM_ENVTESTADAPTER_PARTITION", "gpu")
            .env("FARM_ENVTESTADAPTER_TEST_URL", "http://unrelated")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        let bad = std::process::Command::new(&exe)
            .args([
                "--exact",
                "machinery::config::tests::a_bad_variable_value_names_the_variable",
                "--nocapture",
            ])
            .env("FARM_ENVTEST_CHILD", "1")
            .env("FARM_ENVTESTADAPTER_MAX_ARRAY", "lots")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&bad.stdout);
        assert!(bad.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn a_bad_variable_value_names_the_variable() {
        if std::env::var_os("FARM_ENVTEST_CHILD").is_none() {
            return; // run as a child of the test above, with the variable set
        }
        let spec = FarmSpec {
            settings: serde_yaml::from_str("{partition: render}").unwrap(),
            ..FarmSpec::new("envtestadapter")
        };
        let err = spec
            .settings_as::<DemoSettings>("hpc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("settings.max_array (from $FARM_ENVTESTADAPTER_MAX_ARRAY)"),
            "{err}"
        );
    }
}
