//! `LocalQueue`: the HTTP adapter speaking to the local queue, plus "start one when none
//! answers". Every farm operation is the HTTP adapter's; this type only makes sure a server
//! runs (at the first call, and again if an idle queue exited between calls), finds the
//! token in the data root, has the server prove it holds that token before each operation
//! sends it ([`authenticate`]), and stages render files under the data root when no shared
//! staging root is configured.
//!
//! The proof is asked before every operation, not once: the queue may have exited (idle)
//! since the last call and someone else may be listening on its port now.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use farm_core::{
    Capabilities, CheckReport, CommonSettings, FarmError, FarmPlugin, InstallationMetadata, Job,
    JobFilter, JobId, JobRequest, JobState, LogChunk, RenderedJob, Result, SharedStaging,
};
use farm_http::{HttpFarm, HttpSettings};
use farm_queue::data_root::{DataRoot, TokenKind};
use farm_queue::store::TaskRecord;
use secrecy::SecretString;
use uuid::Uuid;

use crate::client::{Probe, authenticate, ensure_server, loopback, probe};
use crate::config::LocalSettings;

/// The adapter name.
pub const ADAPTER: &str = "local";

/// The local queue as a farm.
pub struct LocalQueue {
    name: String,
    settings: LocalSettings,
    /// Where the queue listens: given (`url`, `$FARM_QUEUE_URL`) or found in the data root
    /// (`discovered`), in which case an autostart may move it to a free port.
    url: std::sync::Mutex<String>,
    discovered: bool,
    root: DataRoot,
    common: CommonSettings,
    /// Renders and reports capabilities; never contacts the server.
    offline: HttpFarm,
    online: tokio::sync::OnceCell<Online>,
    starting: tokio::sync::Mutex<()>,
    /// For the health proofs.
    probe: reqwest::Client,
    /// Staging goes to the data root (no `staging_root` configured).
    own_staging: bool,
}

/// The connected farm and the token it sends.
struct Online {
    farm: HttpFarm,
    token: SecretString,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("name", &self.name)
            .field("url", &self.url())
            .field("data_root", &self.root.path())
            .finish_non_exhaustive()
    }
}

impl LocalQueue {
    /// A local queue farm. Nothing is contacted or started until an operation needs the
    /// server, so `render` works on a machine where no queue ever ran.
    pub fn new(settings: LocalSettings, mut common: CommonSettings) -> Result<LocalQueue> {
        let root = DataRoot::resolve(settings.data_root.as_deref());
        let given = settings.url.clone().or_else(|| {
            std::env::var(crate::config::QUEUE_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty())
        });
        let discovered = given.is_none();
        let url = given.unwrap_or_else(|| root.queue_url(farm_queue::DEFAULT_PORT));
        let own_staging = common.staging.is_none();
        if own_staging {
            common.staging = Some(SharedStaging::new(root.staging()));
        }
        let offline = HttpFarm::new(http_settings(&settings, &url, None))?
            .with_common(common.clone())
            .with_name(ADAPTER);
        let probe = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| FarmError::config(format!("cannot build an HTTP client: {e}")))?;
        Ok(LocalQueue {
            name: ADAPTER.to_owned(),
            settings,
            url: std::sync::Mutex::new(url),
            discovered,
            root,
            common,
            offline,
            online: tokio::sync::OnceCell::new(),
            starting: tokio::sync::Mutex::new(()),
            probe,
            own_staging,
        })
    }

    /// Names the farm (for messages).
    pub fn with_name(mut self, name: impl Into<String>) -> LocalQueue {
        self.name = name.into();
        self
    }

    /// Where the queue listens (or will, once started).
    pub fn url(&self) -> String {
        self.url.lock().expect("url poisoned").clone()
    }

    /// The data root this farm uses (logs, tokens, staging).
    pub fn data_root(&self) -> &DataRoot {
        &self.root
    }

    /// Creates the data root's staging directory when staging goes there: unlike a shared
    /// staging root, which must already be mounted, it is ours to create.
    fn prepare_staging(&self) -> Result<()> {
        if !self.own_staging {
            return Ok(());
        }
        let staging = self.root.staging();
        self.root
            .create()
            .and_then(|()| std::fs::create_dir_all(&staging))
            .map_err(|e| FarmError::io(format!("cannot create {}", staging.display()), e))
    }

    async fn ensure(&self) -> Result<()> {
        let _one_at_a_time = self.starting.lock().await;
        let mut url = self.url();
        if self.discovered && self.online.get().is_none() {
            // A queue may have started (or moved) since: ask the data root again.
            url = self.root.queue_url(farm_queue::DEFAULT_PORT);
        }
        let url = ensure_server(&self.settings, &self.root, &url, self.discovered).await?;
        *self.url.lock().expect("url poisoned") = url;
        Ok(())
    }

    /// The connected HTTP farm, starting the queue first if needed, once the server has
    /// proved it holds the token.
    async fn farm(&self) -> Result<&HttpFarm> {
        let online = self.online().await?;
        match self.authenticate().await {
            // The queue exited (idle) since the last call: start it again.
            Err(err) if self.restarted(&err).await => self.authenticate().await?,
            other => other?,
        }
        Ok(&online.farm)
    }

    /// Has the server at the URL prove it holds the token the farm sends.
    async fn authenticate(&self) -> Result<()> {
        let online = self.online().await?;
        authenticate(&self.probe, &self.url(), &online.token).await
    }

    async fn online(&self) -> Result<&Online> {
        self.online
            .get_or_try_init(|| async {
                self.ensure().await?;
                let token = match &self.settings.token {
                    Some(t) => t.clone(),
                    None => self.root.read_token(TokenKind::Api).ok().flatten().ok_or_else(|| {
                        FarmError::config(format!(
                            "farm {}: no token for the queue at {}: set settings.token, or data_root to the queue's data root \
                             (its api.token file was not found in {})",
                            self.name,
                            self.url(),
                            self.root.path().display()
                        ))
                    })?,
                };
                let farm = HttpFarm::new(http_settings(&self.settings, &self.url(), Some(token.clone())))?
                    .with_common(self.common.clone())
                    .with_name(&self.name);
                Ok::<_, FarmError>(Online { farm, token })
            })
            .await
    }

    /// After a retryable failure: if nothing answers any more (an idle queue exited) and
    /// starting is allowed, start the queue again and say the call may be retried.
    async fn restarted(&self, err: &FarmError) -> bool {
        let url = self.url();
        if !err.is_retryable() || !self.settings.autostart || loopback(&url).is_none() {
            return false;
        }
        // Started again where the connected farm looks: the port the data root recorded.
        matches!(probe(&url).await, Probe::Down(_))
            && self.ensure().await.is_ok()
            && self.url() == url
    }

    fn explain(&self, err: FarmError) -> FarmError {
        match err {
            FarmError::PermissionDenied { message, source } if self.settings.token.is_none() => {
                let ours = match self.root.running_server() {
                    Some(info) if info.url != self.url() => format!(
                        "; this data root's queue listens at {}, so the port of {} is taken by another queue, perhaps another user's",
                        info.url,
                        self.url()
                    ),
                    _ => String::new(),
                };
                FarmError::PermissionDenied {
                    message: format!(
                        "{message} (the token came from {}; if the queue at {} serves another data root, set data_root or token{ours})",
                        self.root.path().join("api.token").display(),
                        self.url()
                    ),
                    source,
                }
            }
            other => other,
        }
    }
}

fn http_settings(settings: &LocalSettings, url: &str, token: Option<SecretString>) -> HttpSettings {
    let mut http = HttpSettings::new(url.to_owned()).with_timeout(settings.timeout);
    http.token = token;
    http.verify_capabilities = false;
    // The protocol makes these optional; the local queue has them all, and its check
    // knows every agent's resources.
    http.capabilities = Some(Capabilities {
        retry_failed: true,
        check: true,
        check_resources: true,
        ..farm_http::Profile::builtin().capabilities()
    });
    http
}

/// Runs an operation on the connected farm; if the queue went away (idle shutdown) and may
/// be started, starts it and runs the operation once more. Submits are idempotent by render
/// context, so repeating one is safe. The server proves it holds the token before each.
macro_rules! online {
    ($self:ident, |$farm:ident| $call:expr) => {{
        let $farm = $self.farm().await.map_err(|e| $self.explain(e))?;
        match $call.await {
            Err(err) if $self.restarted(&err).await => match $self.authenticate().await {
                Ok(()) => $call.await,
                Err(e) => Err(e),
            },
            other => other,
        }
        .map_err(|e| $self.explain(e))
    }};
}

#[async_trait::async_trait]
impl FarmPlugin for LocalQueue {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn capabilities(&self) -> Capabilities {
        self.offline.capabilities()
    }

    async fn create_temp_directory(&self, render_context: Uuid) -> Result<String> {
        self.prepare_staging()?;
        self.offline.create_temp_directory(render_context).await
    }

    async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, String>> {
        self.prepare_staging()?;
        self.offline.copy_render_files(files, render_context).await
    }

    async fn installation_metadata(&self) -> Result<InstallationMetadata> {
        self.offline.installation_metadata().await
    }

    async fn render_environment(&self, render_context: Uuid) -> Result<BTreeMap<String, String>> {
        self.offline.render_environment(render_context).await
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        self.offline.render(request).await
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        request.validate()?;
        online!(self, |farm| farm.submit(request))
    }

    async fn job_state(&self, id: &JobId) -> Result<JobState> {
        online!(self, |farm| farm.job_state(id))
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        online!(self, |farm| farm.job(id))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        online!(self, |farm| farm.list_jobs(filter))
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        online!(self, |farm| farm.render_log_filename(id))
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        online!(self, |farm| farm.read_log(id, offset))
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        online!(self, |farm| farm.start(id))
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        online!(self, |farm| farm.stop(id))
    }

    async fn retry_failed(&self, id: &JobId) -> Result<JobId> {
        online!(self, |farm| farm.retry_failed(id))
    }

    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        request.validate()?;
        online!(self, |farm| farm.check(request))
    }
}

impl LocalQueue {
    /// Every task of a job (`GET /v1/jobs/{id}/tasks`, page by page), for
    /// `farm status --tasks`.
    pub async fn tasks(&self, id: &JobId) -> Result<Vec<TaskRecord>> {
        self.farm().await.map_err(|e| self.explain(e))?;
        let online = self.online().await?;
        crate::client::tasks(&self.probe, &self.url(), &online.token, id)
            .await
            .map_err(|e| self.explain(e))
    }
}
