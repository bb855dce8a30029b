//! Which farms exist: the farms file plus built-in ones, and the adapters that build them.

use std::path::PathBuf;
use std::sync::Arc;

use farm_core::{AdapterRegistry, FarmError, FarmPlugin, FarmSpec, FarmsConfig, Result};

/// Every adapter compiled into this program.
pub fn registry() -> AdapterRegistry {
    let mut registry = AdapterRegistry::new();
    farm_conformance::simulator::register(&mut registry);
    #[cfg(feature = "external")]
    farm_external::register(&mut registry);
    #[cfg(feature = "external")]
    farm_external::katana::register(&mut registry);
    #[cfg(feature = "http")]
    farm_http::register(&mut registry);
    #[cfg(feature = "local")]
    farm_local::register(&mut registry);
    #[cfg(feature = "htcondor")]
    farm_htcondor::register(&mut registry);
    #[cfg(feature = "slurm")]
    farm_slurm::register(&mut registry);
    #[cfg(feature = "openjd")]
    farm_openjd::register(&mut registry);
    registry
}

/// Where a farm's definition came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The farms file at this path.
    File(PathBuf),
    /// Built into the program.
    BuiltIn,
}

/// The farms file (if any) merged with the built-in farms.
#[derive(Debug)]
pub struct Farms {
    pub config: FarmsConfig,
    pub sources: std::collections::BTreeMap<String, Source>,
    pub file: Option<PathBuf>,
    pub registry: AdapterRegistry,
}

/// Built-in farms, available unless the farms file defines the same name.
fn builtins() -> Vec<(&'static str, FarmSpec)> {
    let mut sim = FarmSpec::new("simulator");
    sim.description = Some("in-memory simulator: jobs run on this machine while farm runs".into());
    // Logs outlive the process so the log path `farm submit --wait` prints stays readable;
    // one folder for every run, each process's logs in its own subfolder.
    let state_dir = cache_dir().join("farm").join("simulator");
    sim.settings =
        serde_yaml::to_value(serde_json::json!({ "state_dir": state_dir })).unwrap_or_default();
    let mut farms = Vec::new();
    if cfg!(feature = "local") {
        let mut local = FarmSpec::new("local");
        local.description = Some("the local queue on this machine (started on demand)".into());
        farms.push(("local", local));
    }
    farms.push(("simulator", sim));
    farms
}

impl Farms {
    /// Reads the farms file (explicit path, $FARM_CONFIG, or the default location).
    pub fn load(explicit: Option<&std::path::Path>) -> Result<Farms> {
        let found = FarmsConfig::discover(explicit)?;
        let (file, mut config) = match found {
            Some((path, config)) => (Some(path), config),
            None => (None, FarmsConfig::default()),
        };
        let mut sources = std::collections::BTreeMap::new();
        for name in config.farms.keys() {
            sources.insert(name.clone(), Source::File(file.clone().unwrap_or_default()));
        }
        for (name, spec) in builtins() {
            if !config.farms.contains_key(name) {
                config.farms.insert(name.to_owned(), spec);
                sources.insert(name.to_owned(), Source::BuiltIn);
            }
        }
        Ok(Farms {
            config,
            sources,
            file,
            registry: registry(),
        })
    }

    /// The farm to use: `--farm`/$FARM, else the file's `default`, else `local`.
    pub fn chosen_name(&self, requested: Option<&str>) -> String {
        requested
            .map(str::to_owned)
            .or_else(|| self.config.default.clone())
            .unwrap_or_else(|| "local".to_owned())
    }

    /// The named farm's configuration, if there is such a farm.
    pub fn spec(&self, name: &str) -> Option<&farm_core::FarmSpec> {
        self.config.farms.get(name)
    }

    /// Builds the named farm.
    pub fn build(&self, name: &str) -> Result<Arc<dyn FarmPlugin>> {
        if !self.config.farms.contains_key(name) {
            let where_ = match &self.file {
                Some(path) => format!("in {}", path.display()),
                None => {
                    "(no farms file found; set FARM_CONFIG or create ~/.config/farm/farms.yaml)"
                        .to_owned()
                }
            };
            return Err(FarmError::config(format!(
                "no farm named {name:?} {where_}; known farms: {}",
                self.config
                    .farms
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.registry.build_named(&self.config, name)
    }
}

/// The user's cache directory (`$XDG_CACHE_HOME` or `~/.cache`), else the system temporary
/// directory.
fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}
