//! The Katana operations every farm answers from its farms-file entry, written once:
//! staging through a shared directory (`createTempDirectory`, `copyRenderFiles`),
//! installation metadata (`getInstallationMetadata`) and the render environment
//! (`getRenderEnvironment`).
//!
//! Nothing in them depends on the scheduler, so an adapter does not implement them: it hands
//! a [`KatanaServices`] over through [`FarmPlugin::katana_services`], and the trait's
//! provided methods answer from it. An adapter whose farm has its own asset store (or an
//! external program that answers them itself) overrides the four methods instead.
//!
//! [`FarmPlugin::katana_services`]: crate::FarmPlugin::katana_services

use std::collections::BTreeMap;
use std::path::PathBuf;

use uuid::Uuid;

use crate::error::{FarmError, Result};
use crate::installation::InstallationMetadata;
use crate::staging::SharedStaging;

/// Settings every adapter implements the same way; adapters delegate the four
/// configuration-driven trait methods to this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommonSettings {
    /// Staging through a shared directory, when configured.
    pub staging: Option<SharedStaging>,
    /// The Katana installation on the render nodes.
    pub installation: Option<InstallationMetadata>,
    /// The render environment.
    pub render_environment: BTreeMap<String, String>,
}

impl CommonSettings {
    /// Whether `stage_files` can be offered.
    pub fn can_stage(&self) -> bool {
        self.staging.is_some()
    }

    /// `create_temp_directory` through the shared staging root.
    pub async fn create_temp_directory(
        &self,
        adapter: &str,
        render_context: Uuid,
    ) -> Result<String> {
        let staging = self.staging(adapter, "create_temp_directory")?;
        Ok(staging
            .create_temp_directory(render_context)
            .await?
            .display()
            .to_string())
    }

    /// `copy_render_files` through the shared staging root.
    pub async fn copy_render_files(
        &self,
        adapter: &str,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        let staging = self.staging(adapter, "copy_render_files")?;
        Ok(staging
            .copy_render_files(files, render_context)
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.display().to_string()))
            .collect())
    }

    /// `installation_metadata` from the configuration.
    pub fn installation_metadata(&self, farm: &str) -> Result<InstallationMetadata> {
        self.installation.as_ref().map(InstallationMetadata::resolved).ok_or_else(|| {
            FarmError::config(format!(
                "farm {farm} has no `installation` (set installation.katana_root in the farms file)"
            ))
        })
    }

    /// `render_environment` from the configuration.
    pub fn render_environment(&self) -> BTreeMap<String, String> {
        self.render_environment.clone()
    }

    fn staging(&self, adapter: &str, operation: &'static str) -> Result<&SharedStaging> {
        self.staging.as_ref().ok_or_else(|| {
            FarmError::unsupported(operation, format!("{adapter} (no staging_root configured)"))
        })
    }
}

/// What a farm hands the trait's provided methods: its name (messages name the farm, not
/// the adapter kind: one site may run several farms of one kind) and its common settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KatanaServices {
    farm: String,
    settings: CommonSettings,
}

impl KatanaServices {
    /// The services of farm `farm`, configured by `settings` (`FarmSpec::common`).
    pub fn new(farm: impl Into<String>, settings: CommonSettings) -> KatanaServices {
        KatanaServices {
            farm: farm.into(),
            settings,
        }
    }

    /// The farm's name.
    pub fn farm(&self) -> &str {
        &self.farm
    }

    /// The settings the services answer from (staging goes through them directly).
    pub fn settings(&self) -> &CommonSettings {
        &self.settings
    }

    /// Whether `stage_files` can be offered: a staging root is configured.
    pub fn can_stage(&self) -> bool {
        self.settings.can_stage()
    }

    /// `installation_metadata`, resolved, or a `Config` error naming the farm.
    pub fn installation_metadata(&self) -> Result<InstallationMetadata> {
        self.settings.installation_metadata(&self.farm)
    }

    /// `render_environment`.
    pub fn render_environment(&self) -> BTreeMap<String, String> {
        self.settings.render_environment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FarmSpec;

    #[tokio::test]
    async fn staging_without_a_root_is_unsupported_and_installation_must_be_configured() {
        let common = FarmSpec::new("demo").common();
        let err = common
            .create_temp_directory("demo", Uuid::new_v4())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        let err = common.installation_metadata("hpc").unwrap_err().to_string();
        assert!(err.contains("installation.katana_root"), "{err}");
    }

    #[test]
    fn installation_errors_name_the_farm_and_metadata_is_resolved() {
        let mut spec = FarmSpec::new("demo");
        let err = KatanaServices::new("studio-a", spec.common())
            .installation_metadata()
            .unwrap_err()
            .to_string();
        assert!(err.contains("farm studio-a has no `installation`"), "{err}");
        spec.installation = Some(InstallationMetadata {
            katana_root: "/opt/Katana".into(),
            render_plugin_dso_paths: BTreeMap::new(),
            renderboot_command: None,
        });
        spec.render_environment
            .insert("LICENSE".into(), "4101@lic".into());
        let services = KatanaServices::new("studio-a", spec.common());
        assert_eq!(
            services
                .installation_metadata()
                .unwrap()
                .renderboot_command
                .as_deref(),
            Some("/opt/Katana/bin/renderboot")
        );
        assert_eq!(services.render_environment()["LICENSE"], "4101@lic");
        assert!(!services.can_stage());
    }
}
