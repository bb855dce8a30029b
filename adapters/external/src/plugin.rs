//! [`ExternalFarm`]: the `FarmPlugin` for a program, wiring the client, the wire tasks and
//! the reply parser. The bridge validates requests and enforces capabilities itself, so
//! the program gets only valid requests and only calls it said it supports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use farm_core::{
    Capabilities, CheckReport, CommonSettings, FarmError, FarmPlugin, FarmSpec,
    InstallationMetadata, Job, JobFilter, JobId, JobRequest, LogChunk, RenderedJob, Result,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::Client;
use crate::config::ExternalSettings;
use crate::parse::with_id;
use crate::render::wire_tasks;

/// The adapter's name in farms files.
pub const ADAPTER: &str = "external";

/// A farm served by an external program.
pub struct ExternalFarm {
    client: Client,
    adapter_name: String,
    capabilities: Capabilities,
}

impl std::fmt::Debug for ExternalFarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalFarm")
            .field("name", &self.client.name())
            .field("adapter", &self.adapter_name)
            .field("settings", self.client.settings())
            .finish()
    }
}

impl ExternalFarm {
    /// Builds farm `name` from its farms-file entry: starts the program and greets it.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<ExternalFarm> {
        let settings: ExternalSettings = spec.settings_as(name)?;
        ExternalFarm::from_settings(name, settings, spec.common())
    }

    /// Starts the program and greets it; blocks for at most the call timeout. The program
    /// answers staging, installation metadata and render environment itself (they are
    /// protocol calls), so `common` is not used: it is taken so that every adapter is
    /// built the same way.
    pub fn from_settings(
        name: &str,
        settings: ExternalSettings,
        common: CommonSettings,
    ) -> Result<ExternalFarm> {
        let _ = common;
        let (client, hello) = Client::start(name, settings)?;
        Ok(ExternalFarm {
            client,
            adapter_name: hello.adapter,
            capabilities: hello.capabilities,
        })
    }

    /// Sends one call; an operation the program says it cannot do is named with the
    /// adapter's own name.
    async fn call(&self, method: &'static str, params: Value) -> Result<Value> {
        match self.client.call(method, params).await {
            Err(FarmError::Unsupported { .. }) => {
                Err(FarmError::unsupported(method, self.adapter_name.clone()))
            }
            other => other,
        }
    }

    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T> {
        let value = self.call(method, params).await?;
        serde_json::from_value(value.clone()).map_err(|e| FarmError::Scheduler {
            message: format!(
                "the external adapter answered {method} with an unexpected shape: {value}"
            ),
            source: Some(Box::new(e)),
        })
    }

    fn require(&self, enabled: bool, operation: &'static str) -> Result<()> {
        if enabled {
            Ok(())
        } else {
            Err(FarmError::unsupported(operation, &self.adapter_name))
        }
    }
}

#[async_trait]
impl FarmPlugin for ExternalFarm {
    fn adapter(&self) -> &str {
        &self.adapter_name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn create_temp_directory(&self, render_context: Uuid) -> Result<String> {
        self.require(self.capabilities.stage_files, "create_temp_directory")?;
        self.call_as(
            "create_temp_directory",
            json!({ "render_context": render_context }),
        )
        .await
    }

    async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        self.require(self.capabilities.stage_files, "copy_render_files")?;
        self.call_as(
            "copy_render_files",
            json!({ "files": files, "render_context": render_context }),
        )
        .await
    }

    async fn installation_metadata(&self) -> Result<InstallationMetadata> {
        self.call_as("installation_metadata", json!({})).await
    }

    async fn render_environment(&self, render_context: Uuid) -> Result<BTreeMap<String, String>> {
        self.call_as(
            "render_environment",
            json!({ "render_context": render_context }),
        )
        .await
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        request.validate()?;
        let rendered: RenderedJob = self
            .call_as(
                "render",
                json!({ "request": request, "tasks": wire_tasks(request) }),
            )
            .await?;
        if rendered.files.is_empty() {
            return Err(FarmError::scheduler(format!(
                "the external adapter of farm {} rendered no file",
                self.client.name()
            )));
        }
        Ok(rendered)
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        request.validate()?;
        if !request.depends_on.is_empty() {
            self.require(self.capabilities.dependencies, "depends_on")?;
        }
        self.call_as(
            "submit",
            json!({ "request": request, "tasks": wire_tasks(request) }),
        )
        .await
    }

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        self.require(self.capabilities.check, "check")?;
        request.validate()?;
        let report: CheckReport = self
            .call_as(
                "check",
                json!({ "request": request, "tasks": wire_tasks(request) }),
            )
            .await?;
        if report.message.trim().is_empty() {
            return Err(FarmError::scheduler(format!(
                "the external adapter of farm {} answered check with an empty message",
                self.client.name()
            )));
        }
        Ok(report)
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        self.call_as("job", json!({ "id": id }))
            .await
            .map_err(|e| with_id(e, id))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.require(self.capabilities.list_jobs, "list_jobs")?;
        self.call_as("list_jobs", json!({ "filter": filter })).await
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        self.require(self.capabilities.render_log, "render_log_filename")?;
        self.call_as("render_log_filename", json!({ "id": id }))
            .await
            .map_err(|e| with_id(e, id))
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        self.require(self.capabilities.read_log, "read_log")?;
        self.call_as("read_log", json!({ "id": id, "offset": offset }))
            .await
            .map_err(|e| with_id(e, id))
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        self.require(self.capabilities.start, "start")?;
        self.call_as("start", json!({ "id": id }))
            .await
            .map_err(|e| with_id(e, id))
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        self.require(self.capabilities.stop, "stop")?;
        self.call("stop", json!({ "id": id }))
            .await
            .map(|_| ())
            .map_err(|e| with_id(e, id))
    }
}
