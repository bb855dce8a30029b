//! `adapter: katana-plugin`: a Katana farm plug-in (a `FarmAPI.BaseFarmPlugin` registered
//! in a Plugins folder) as a farm. The plug-in host, `tools/katana/host/farm_katana_host.py`,
//! is embedded in this crate, written once to a cache directory and run as an external
//! adapter (`docs/katana.md`, "Testing your own Katana farm plug-in").
//!
//! A thin layer: [`KatanaPluginSettings::external`] builds the [`ExternalSettings`] that run
//! the host on the plug-in, and [`ExternalFarm`] does the rest. What the host finds wrong
//! while loading (no such folder, no or an ambiguous plug-in name, a module that fails to
//! import, a missing `submitJob`) is the `config` error of its `hello`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use farm_core::{CommonSettings, FarmError, FarmPlugin, FarmSpec, Result};
use serde::Deserialize;

use crate::{ExternalFarm, ExternalSettings};

/// The adapter's name in farms files.
pub const ADAPTER: &str = "katana-plugin";

/// Variable naming a folder that holds the host instead of the embedded copy (for host
/// development: point it at `tools/katana/host`).
pub const HOST_DIR_ENV: &str = "FARM_KATANA_HOST_DIR";

/// Set in the host's environment (to the farm's name): a `katana-plugin` farm is never
/// built below a host. A plug-in that runs `farm` (FarmBridge.py lists farms with
/// `farm farms`, which builds every farm) would otherwise start a host for its own farm,
/// which would load the plug-in again, without end.
pub const INSIDE_HOST_ENV: &str = "FARM_INSIDE_KATANA_HOST";

/// The host and its stand-in `Katana.FarmAPI`: (path under the host folder, contents).
/// The workspace is not published, so reaching outside the crate is fine; a published
/// crate would carry the host under its own folder.
pub const HOST_FILES: &[(&str, &str)] = &[
    (
        "farm_katana_host.py",
        include_str!("../../../tools/katana/host/farm_katana_host.py"),
    ),
    (
        "Katana/__init__.py",
        include_str!("../../../tools/katana/host/Katana/__init__.py"),
    ),
    (
        "Katana/FarmAPI.py",
        include_str!("../../../tools/katana/host/Katana/FarmAPI.py"),
    ),
];

/// Settings of an `adapter: katana-plugin` farm.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KatanaPluginSettings {
    /// The Plugins folder Katana would load (or the resource folder holding it).
    pub plugins: PathBuf,
    /// The plug-in's registered name; may be left out when the folder registers one farm
    /// plug-in.
    #[serde(default)]
    pub name: Option<String>,
    /// The Python interpreter (3.9 or later; default `python3`).
    #[serde(default = "default_python")]
    pub python: String,
    /// Extra environment for the plug-in.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How long one call may take (default 60s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub timeout: Duration,
}

fn default_python() -> String {
    "python3".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl std::fmt::Debug for KatanaPluginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values may hold credentials: never print them.
        f.debug_struct("KatanaPluginSettings")
            .field("plugins", &self.plugins)
            .field("name", &self.name)
            .field("python", &self.python)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KatanaPluginSettings {
    /// Settings for the plug-ins in `plugins`, everything else defaulted.
    pub fn new(plugins: impl Into<PathBuf>) -> KatanaPluginSettings {
        KatanaPluginSettings {
            plugins: plugins.into(),
            name: None,
            python: default_python(),
            env: BTreeMap::new(),
            timeout: default_timeout(),
        }
    }

    /// The external-adapter settings that run the host in `host_dir` on this plug-in.
    pub fn external(&self, farm: &str, host_dir: &Path) -> Result<ExternalSettings> {
        let plugins = std::path::absolute(&self.plugins).map_err(|e| {
            FarmError::config(format!(
                "farm {farm}: settings.plugins {}: {e}",
                self.plugins.display()
            ))
        })?;
        if !plugins.is_dir() {
            return Err(FarmError::config(format!(
                "farm {farm}: settings.plugins {} is not a folder",
                plugins.display()
            )));
        }
        let mut command = vec![
            self.python.clone(),
            host_dir.join("farm_katana_host.py").display().to_string(),
            "--plugins".into(),
            plugins.display().to_string(),
        ];
        if let Some(name) = &self.name {
            command.extend(["--name".into(), name.clone()]);
        }
        let mut env = self.env.clone();
        env.insert(INSIDE_HOST_ENV.into(), farm.into());
        Ok(ExternalSettings {
            command,
            env,
            working_directory: None,
            timeout: self.timeout,
            options: serde_json::Value::Null,
        })
    }
}

/// Builds farm `name` from its farms-file entry: writes the host if needed, starts it on
/// the plug-in and greets it.
pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<ExternalFarm> {
    let settings: KatanaPluginSettings = spec.settings_as(name)?;
    from_settings(name, settings, spec.common())
}

/// Starts the host (from [`host_dir`]) on the plug-in `settings` name. The plug-in answers
/// staging, installation metadata and render environment itself, so `common` is not
/// used, as for [`ExternalFarm::from_settings`].
pub fn from_settings(
    name: &str,
    settings: KatanaPluginSettings,
    common: CommonSettings,
) -> Result<ExternalFarm> {
    refuse_nesting(name, std::env::var(INSIDE_HOST_ENV).ok())?;
    let external = settings.external(name, &host_dir()?)?;
    ExternalFarm::from_settings(name, external, common)
}

/// A `config` error when this process runs below the host of farm `outer`.
fn refuse_nesting(name: &str, outer: Option<String>) -> Result<()> {
    match outer {
        Some(outer) => Err(FarmError::config(format!(
            "farm {name}: a katana-plugin farm is not started from inside the plug-in host of farm {outer} \
             (a plug-in that runs `farm` would start itself again); point the plug-in's FARM_CONFIG \
             at a farms file without katana-plugin farms"
        ))),
        None => Ok(()),
    }
}

/// FNV-1a over the embedded files: a cache key stable across builds and platforms (std's
/// hasher is not).
fn host_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, text) in HOST_FILES {
        for b in path.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The folder holding the host: `$FARM_KATANA_HOST_DIR`, or the embedded files written
/// once under the user's cache directory (see [`host_dir_in`]).
pub fn host_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(HOST_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("farm")
        .join("katana-host");
    host_dir_in(&base)
}

/// The embedded host written to `<base>/<version>-<hash>/`, unless already there.
///
/// The folder is named after its contents and filled atomically (written beside it, then
/// renamed into place), so concurrent `farm` processes never see a half-written host and
/// a new build never runs an old one.
pub fn host_dir_in(base: &Path) -> Result<PathBuf> {
    let dir = base.join(format!(
        "{}-{:016x}",
        env!("CARGO_PKG_VERSION"),
        host_hash()
    ));
    let complete = |dir: &Path| HOST_FILES.iter().all(|(path, _)| dir.join(path).is_file());
    if complete(&dir) {
        return Ok(dir);
    }
    let io = |what: &str, e: std::io::Error| {
        FarmError::io(
            format!(
                "cannot write the Katana plug-in host under {} ({what})",
                base.display()
            ),
            e,
        )
    };
    std::fs::create_dir_all(base).map_err(|e| io("its folder", e))?;
    let tmp = tempfile_dir(base).map_err(|e| io("a temporary folder", e))?;
    for (path, text) in HOST_FILES {
        let target = tmp.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(path, e))?;
        }
        std::fs::write(&target, text).map_err(|e| io(path, e))?;
    }
    let mut result = std::fs::rename(&tmp, &dir);
    if result.is_err() && !complete(&dir) {
        // A folder someone emptied by hand: replace it.
        let _ = std::fs::remove_dir_all(&dir);
        result = std::fs::rename(&tmp, &dir);
    }
    match result {
        Ok(()) => Ok(dir),
        // Another process got there first: its copy has the same contents by construction.
        Err(_) if complete(&dir) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(io("rename", e))
        }
    }
}

/// A fresh folder in `base` for writing the host before it is renamed into place.
fn tempfile_dir(base: &Path) -> std::io::Result<PathBuf> {
    for attempt in 0u32.. {
        let tmp = base.join(format!(
            ".tmp-{}-{attempt}-{:016x}",
            std::process::id(),
            host_hash()
        ));
        match std::fs::create_dir(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Registers `adapter: katana-plugin`.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        ADAPTER,
        "a Katana farm plug-in (FarmAPI.BaseFarmPlugin) from a Plugins folder, run by the plug-in host",
        |name, spec| Ok(Arc::new(from_spec(name, spec)?) as Arc<dyn FarmPlugin>),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn the_embedded_host_is_written_once_and_matches_the_tree() {
        let base = tempfile::tempdir().unwrap();
        let dir = host_dir_in(base.path()).unwrap();
        for (path, _) in HOST_FILES {
            assert_eq!(
                std::fs::read_to_string(dir.join(path)).unwrap(),
                std::fs::read_to_string(repo("tools/katana/host").join(path)).unwrap(),
                "{path}"
            );
        }
        assert_eq!(host_dir_in(base.path()).unwrap(), dir);
        let entries: Vec<_> = std::fs::read_dir(base.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "no temporary folder is left behind");
    }

    #[test]
    fn an_incomplete_host_folder_is_replaced() {
        let base = tempfile::tempdir().unwrap();
        let dir = host_dir_in(base.path()).unwrap();
        std::fs::remove_file(dir.join("Katana/FarmAPI.py")).unwrap();
        assert_eq!(host_dir_in(base.path()).unwrap(), dir);
        assert!(dir.join("Katana/FarmAPI.py").is_file());
    }

    #[test]
    fn settings_become_the_host_command() {
        let settings: KatanaPluginSettings = serde_yaml::from_str(&format!(
            "plugins: {}\nname: My Farm\nenv: {{A: b}}\ntimeout: 5s\n",
            repo("tools/katana/Plugins").display()
        ))
        .unwrap();
        let external = settings.external("f", Path::new("/host")).unwrap();
        assert_eq!(external.command[0], "python3");
        assert_eq!(external.command[1], "/host/farm_katana_host.py");
        assert_eq!(external.command[2], "--plugins");
        assert!(Path::new(&external.command[3]).is_absolute());
        assert_eq!(&external.command[4..], ["--name", "My Farm"]);
        assert_eq!(external.env["A"], "b");
        assert_eq!(external.env[INSIDE_HOST_ENV], "f");
        assert_eq!(external.timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_missing_plugins_folder_is_a_config_error() {
        let e = KatanaPluginSettings::new("/nonexistent/Plugins")
            .external("f", Path::new("/host"))
            .unwrap_err();
        assert_eq!(e.kind(), farm_core::ErrorKind::Config);
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }

    #[test]
    fn no_katana_plugin_farm_is_built_below_a_host() {
        let e = refuse_nesting("inner", Some("outer".into())).unwrap_err();
        assert_eq!(e.kind(), farm_core::ErrorKind::Config);
        assert!(e.to_string().contains("plug-in host of farm outer"), "{e}");
        assert!(refuse_nesting("top", None).is_ok());
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(serde_yaml::from_str::<KatanaPluginSettings>("plugins: x\nhost: y\n").is_err());
    }
}
