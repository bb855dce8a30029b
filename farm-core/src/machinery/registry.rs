//! Builds farms from configuration: adapter name -> factory.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{FarmSpec, FarmsConfig};
use crate::error::{FarmError, Result};
use crate::plugin::FarmPlugin;

/// Makes a farm from its name and spec.
pub type AdapterFactory = Arc<dyn Fn(&str, &FarmSpec) -> Result<Arc<dyn FarmPlugin>> + Send + Sync>;

struct Entry {
    summary: String,
    factory: AdapterFactory,
}

/// The adapters a program knows, by name. Adapters register as they are linked in; a farm
/// whose adapter is missing fails with a message naming the ones that exist.
#[derive(Default)]
pub struct AdapterRegistry {
    adapters: BTreeMap<String, Entry>,
    planned: BTreeMap<String, String>,
}

impl std::fmt::Debug for AdapterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterRegistry")
            .field("adapters", &self.adapters.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AdapterRegistry {
    /// An empty registry.
    pub fn new() -> AdapterRegistry {
        AdapterRegistry::default()
    }

    /// Registers `adapter` with a one-line summary.
    pub fn register(
        &mut self,
        adapter: &str,
        summary: &str,
        factory: impl Fn(&str, &FarmSpec) -> Result<Arc<dyn FarmPlugin>> + Send + Sync + 'static,
    ) {
        self.planned.remove(adapter);
        self.adapters.insert(
            adapter.to_owned(),
            Entry {
                summary: summary.to_owned(),
                factory: Arc::new(factory),
            },
        );
    }

    /// Records an adapter that is known but not built into this program, so users get
    /// `why` instead of "unknown adapter".
    pub fn mark_unavailable(&mut self, adapter: &str, why: &str) {
        if !self.adapters.contains_key(adapter) {
            self.planned.insert(adapter.to_owned(), why.to_owned());
        }
    }

    /// `(adapter, summary)` for every available adapter.
    pub fn adapters(&self) -> impl Iterator<Item = (&str, &str)> {
        self.adapters
            .iter()
            .map(|(k, e)| (k.as_str(), e.summary.as_str()))
    }

    /// Whether `adapter` can be built.
    pub fn has(&self, adapter: &str) -> bool {
        self.adapters.contains_key(adapter)
    }

    /// Builds the farm `name` described by `spec`.
    pub fn build(&self, name: &str, spec: &FarmSpec) -> Result<Arc<dyn FarmPlugin>> {
        match self.adapters.get(&spec.adapter) {
            Some(entry) => (entry.factory)(name, spec),
            None => Err(match self.planned.get(&spec.adapter) {
                Some(why) => FarmError::config(format!(
                    "farm {name}: the {} adapter is not available: {why}",
                    spec.adapter
                )),
                None => FarmError::config(format!(
                    "farm {name}: unknown adapter {:?}; available adapters: {}",
                    spec.adapter,
                    self.adapters.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            }),
        }
    }

    /// Builds the farm `name` from a farms file.
    pub fn build_named(&self, config: &FarmsConfig, name: &str) -> Result<Arc<dyn FarmPlugin>> {
        let spec = config.farms.get(name).ok_or_else(|| {
            let known: Vec<_> = config.farms.keys().cloned().collect();
            FarmError::config(format!(
                "no farm named {name:?}; configured farms: {}",
                if known.is_empty() {
                    "(none)".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        self.build(name, spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_adapters_are_explained() {
        let mut reg = AdapterRegistry::new();
        reg.mark_unavailable("slurm", "not implemented yet");
        let err = reg
            .build("hpc", &FarmSpec::new("slurm"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "configuration error: farm hpc: the slurm adapter is not available: not implemented yet"
        );
        let err = reg
            .build("x", &FarmSpec::new("pbs"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown adapter \"pbs\""), "{err}");
        let err = reg
            .build_named(&FarmsConfig::default(), "nope")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no farm named \"nope\"") && err.contains("(none)"),
            "{err}"
        );
    }
}
