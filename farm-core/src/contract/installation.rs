//! Where Katana lives on the render nodes (`BaseFarmPlugin.InstallationMetadata`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Describes the Katana installation on a render node, from the farm's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallationMetadata {
    /// Absolute path of the Katana installation on the render nodes.
    pub katana_root: String,
    /// Render plug-in name -> absolute folder of its DSOs (`dl`, `prman`, ...).
    #[serde(default)]
    pub render_plugin_dso_paths: BTreeMap<String, String>,
    /// Explicit renderboot path; when absent it is deduced from `katana_root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderboot_command: Option<String>,
}

impl InstallationMetadata {
    /// The renderboot to run: the configured one, else `<katana_root>/bin/renderboot` as
    /// Katana itself deduces it.
    pub fn renderboot_command(&self) -> String {
        self.renderboot_command
            .clone()
            .unwrap_or_else(|| format!("{}/bin/renderboot", self.katana_root.trim_end_matches('/')))
    }

    /// The metadata with the renderboot command filled in, as Katana receives it.
    pub fn resolved(&self) -> InstallationMetadata {
        InstallationMetadata {
            renderboot_command: Some(self.renderboot_command()),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderboot_is_deduced_from_the_root_when_absent() {
        let meta: InstallationMetadata = serde_yaml::from_str(
            "katana_root: /opt/Katana7.0v1/\nrender_plugin_dso_paths: {dl: /opt/3delight/lib}",
        )
        .unwrap();
        assert_eq!(meta.renderboot_command(), "/opt/Katana7.0v1/bin/renderboot");
        assert_eq!(
            meta.resolved().renderboot_command.as_deref(),
            Some("/opt/Katana7.0v1/bin/renderboot")
        );
        let explicit = InstallationMetadata {
            renderboot_command: Some("/site/bin/renderboot-wrapper".into()),
            ..meta
        };
        assert_eq!(
            explicit.renderboot_command(),
            "/site/bin/renderboot-wrapper"
        );
    }
}
