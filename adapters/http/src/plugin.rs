//! `HttpFarm`: the `FarmPlugin` for any HTTP scheduler a profile describes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use farm_core::{
    Capabilities, CheckReport, CommonSettings, FarmError, FarmPlugin, FarmSpec, Job, JobFilter,
    JobId, JobRequest, JobState, KatanaServices, LogChunk, RenderedJob, Result,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{Call, Client, Reply};
use crate::config::HttpSettings;
use crate::parse;
use crate::profile::{Idempotency, Operation, Profile};
use crate::render;
use crate::template::Scope;

/// The adapter name.
pub const ADAPTER: &str = "http";

/// Most pages `list_jobs` follows before giving up (a server whose cursor never ends).
const MAX_PAGES: usize = 10_000;

/// A farm reached over HTTP: our protocol, or any API a profile describes.
pub struct HttpFarm {
    profile: Arc<Profile>,
    client: Client,
    caps: Capabilities,
    caps_override: Option<Capabilities>,
    katana: KatanaServices,
    verify_capabilities: bool,
    verified: tokio::sync::OnceCell<()>,
    /// Ids this client submitted: a 404 for one of them means the scheduler lost it.
    submitted: Mutex<HashSet<String>>,
    /// The last terminal record seen per job, reported if the scheduler forgets the job.
    finished: Mutex<HashMap<String, Job>>,
}

impl std::fmt::Debug for HttpFarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFarm")
            .field("name", &self.katana.farm())
            .field("profile", &self.profile.name)
            .field("client", &self.client)
            .finish()
    }
}

impl HttpFarm {
    /// Builds farm `name` from its farms-file entry.
    pub fn from_spec(name: &str, spec: &FarmSpec) -> Result<HttpFarm> {
        let settings: HttpSettings = spec.settings_as(name)?;
        HttpFarm::from_settings(name, settings, spec.common())
    }

    /// Builds a farm from settings; fails on a bad URL, an unreadable or invalid profile,
    /// or a capability override the profile has no operation for.
    pub fn from_settings(
        name: &str,
        settings: HttpSettings,
        common: CommonSettings,
    ) -> Result<HttpFarm> {
        Ok(HttpFarm::new(settings)?.with_common(common).with_name(name))
    }

    /// A farm for `settings` named after its URL, with no staging, installation or render
    /// environment: the start of [`from_settings`](HttpFarm::from_settings), which adds
    /// them with [`with_common`](HttpFarm::with_common) and
    /// [`with_name`](HttpFarm::with_name). The local queue wraps an `HttpFarm` built this
    /// way.
    pub fn new(settings: HttpSettings) -> Result<HttpFarm> {
        let profile = if settings.profile == "builtin" {
            Profile::builtin()
        } else {
            Profile::load(&settings.profile)?
        };
        let client = Client::new(&settings, &profile)?;
        let mut farm = HttpFarm {
            katana: KatanaServices::new(client.base(), CommonSettings::default()),
            caps: Capabilities::default(),
            caps_override: settings.capabilities,
            profile: Arc::new(profile),
            client,
            verify_capabilities: settings.verify_capabilities,
            verified: tokio::sync::OnceCell::new(),
            submitted: Mutex::new(HashSet::new()),
            finished: Mutex::new(HashMap::new()),
        };
        farm.caps = farm.effective_capabilities()?;
        Ok(farm)
    }

    /// Adds staging, installation metadata and render environment from the farms file.
    pub fn with_common(mut self, common: CommonSettings) -> HttpFarm {
        self.katana = KatanaServices::new(self.katana.farm(), common);
        self.caps.stage_files = self.katana.can_stage();
        self
    }

    /// Names the farm in messages.
    pub fn with_name(mut self, name: impl Into<String>) -> HttpFarm {
        self.katana = KatanaServices::new(name, self.katana.settings().clone());
        self
    }

    /// The profile in use.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn effective_capabilities(&self) -> Result<Capabilities> {
        let mut caps = self.caps_override.unwrap_or(self.profile.capabilities());
        let ops = &self.profile.operations;
        for (flag, present, what) in [
            (caps.list_jobs, ops.list.is_some(), "list_jobs"),
            (caps.stop, ops.stop.is_some(), "stop"),
            (caps.start, ops.start.is_some(), "start"),
            (
                caps.retry_failed,
                ops.retry_failed.is_some(),
                "retry_failed",
            ),
            (caps.check, ops.check.is_some(), "check"),
            (caps.read_log, ops.log.is_some(), "read_log"),
            (caps.check, ops.check.is_some(), "check"),
            (
                caps.render_log,
                self.profile.job.render_log_filename.is_some(),
                "render_log",
            ),
            (
                caps.idempotent_submit,
                ops.submit
                    .idempotency
                    .is_some_and(|i| i != Idempotency::None),
                "idempotent_submit",
            ),
            (
                caps.job_times,
                self.profile.job.start_time.is_some() && self.profile.job.end_time.is_some(),
                "job_times",
            ),
        ] {
            if flag && !present {
                return Err(FarmError::config(format!(
                    "settings.capabilities.{what} is on, but profile {} has no operation or mapping for it",
                    self.profile.name
                )));
            }
        }
        caps.stage_files = self.katana.can_stage();
        Ok(caps)
    }

    fn require(&self, enabled: bool, operation: &'static str) -> Result<()> {
        if enabled {
            Ok(())
        } else {
            Err(FarmError::unsupported(operation, ADAPTER))
        }
    }

    fn check_id(&self, id: &JobId) -> Result<()> {
        if self.profile.ids.accepts(id.as_str()) {
            Ok(())
        } else {
            Err(FarmError::job_not_found(id.clone()))
        }
    }

    /// Renders an operation's path, query and headers in `scope`.
    fn call(
        &self,
        operation: &'static str,
        op: &Operation,
        scope: &Scope,
        job: Option<&JobId>,
    ) -> Call {
        let mut query = Vec::new();
        for (name, t) in &op.query {
            match t.0.eval(scope) {
                Value::Null => {}
                Value::Array(items) => {
                    query.extend(
                        items
                            .iter()
                            .map(|v| (name.clone(), crate::template::scalar_text(v))),
                    );
                }
                v => query.push((name.clone(), crate::template::scalar_text(&v))),
            }
        }
        let headers = op
            .headers
            .iter()
            .filter_map(|(name, t)| match t.0.eval(scope) {
                Value::Null => None,
                v => Some((name.clone(), crate::template::scalar_text(&v))),
            })
            .collect();
        let body = op
            .body
            .as_ref()
            .map(|b| serde_json::to_string(&b.0.eval(scope)).expect("JSON values serialise"));
        Call {
            operation,
            method: op.method,
            path: op.path.0.eval_path(scope),
            query,
            headers,
            body,
            retry: true,
            job: job.cloned(),
        }
    }

    fn id_scope(id: &JobId) -> Scope {
        Scope::new().with("id", Value::String(id.to_string()))
    }

    /// Compares the profile's capabilities with the server's, once; a mismatch is a
    /// warning (the profile decides), an unreachable endpoint is ignored.
    async fn verify(&self) {
        if !self.verify_capabilities {
            return;
        }
        let Some(op) = &self.profile.operations.capabilities else {
            return;
        };
        self.verified
            .get_or_init(|| async {
                let mut call = self.call("capabilities", op, &Scope::new(), None);
                call.retry = false;
                let server = match self.client.send(&call).await {
                    Ok(reply) => serde_json::from_str::<Capabilities>(&reply.body).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match server {
                    Ok(mut server) => {
                        server.stage_files = self.caps.stage_files;
                        if server != self.caps {
                            tracing::warn!(farm = %self.katana.farm(), claimed = ?self.caps, server = ?server, "the server's capabilities differ from the profile's");
                        }
                    }
                    Err(e) => tracing::warn!(farm = %self.katana.farm(), error = %e, "could not cross-check the server's capabilities (is the farm's url right?)"),
                }
            })
            .await;
    }

    /// Fetches the record, without the lost-job fallback.
    async fn fetch(&self, id: &JobId) -> Result<Job> {
        self.check_id(id)?;
        let op = &self.profile.operations.get;
        let reply = self
            .client
            .send(&self.call("get", op, &Self::id_scope(id), Some(id)))
            .await?;
        let body = parse::json_body("get", &reply.body)?;
        let record = parse::record(&body, op.record.as_ref())
            .ok_or_else(|| FarmError::job_not_found(id.clone()))?;
        let mut job = parse::job(&self.profile, record)?;
        if job.state == JobState::Failed
            && job.reason.is_none()
            && let Some(op) = &self.profile.operations.failure_reason
        {
            let mut call = self.call("failure_reason", op, &Self::id_scope(id), Some(id));
            call.retry = false;
            if let Ok(reply) = self.client.send(&call).await
                && let Ok(body) = serde_json::from_str::<Value>(&reply.body)
            {
                job.reason = op
                    .reason
                    .as_ref()
                    .and_then(|p| p.find(&body))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        Ok(job)
    }

    /// One page after another until the server says there are no more.
    async fn list_all(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let op = self
            .profile
            .operations
            .list
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("list_jobs", ADAPTER))?;
        let native_states: Vec<String> = if filter.states.is_empty() {
            Vec::new()
        } else if op.state_filter.is_empty() {
            filter.states.iter().map(|s| s.to_string()).collect()
        } else {
            let mut words: Vec<String> = Vec::new();
            for state in &filter.states {
                for word in op.state_filter.get(state).into_iter().flatten() {
                    if !words.contains(word) {
                        words.push(word.clone());
                    }
                }
            }
            words
        };
        let filter_value = json!({
            "states": if filter.states.is_empty() { Value::Null } else { json!(filter.states) },
            "native_states": if native_states.is_empty() { Value::Null } else { json!(native_states) },
            "name": filter.name,
            "tag": filter.tag,
            "since": filter.since,
        });
        let items = op.items.as_ref().expect("checked when the profile loaded");
        let mut cursor: Option<String> = None;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let scope = Scope::new()
                .with("filter", filter_value.clone())
                .with("cursor", cursor.clone().map_or(Value::Null, Value::String));
            let reply = self
                .client
                .send(&self.call("list", op, &scope, None))
                .await?;
            let body = parse::json_body("list", &reply.body)?;
            let (jobs, next) = parse::page(&self.profile, &body, items, op.next_cursor.as_ref())?;
            out.extend(jobs.into_iter().filter(|j| filter.matches(j)));
            match next {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(out),
            }
        }
        Err(FarmError::scheduler(format!(
            "list: more than {MAX_PAGES} pages; the server's cursor never ends"
        )))
    }

    /// The job carrying `render_context`, if the scheduler has one.
    async fn find_by_context(&self, render_context: Uuid) -> Result<Option<JobId>> {
        let jobs = self.list_all(&JobFilter::default()).await?;
        Ok(jobs
            .into_iter()
            .find(|j| j.render_context == Some(render_context))
            .map(|j| j.id))
    }

    fn remember(&self, id: &JobId) {
        self.submitted
            .lock()
            .expect("poisoned")
            .insert(id.to_string());
    }

    fn id_from(
        &self,
        what: &str,
        op: &Operation,
        reply: &Reply,
        fallback: Option<&JobId>,
    ) -> Result<JobId> {
        match (&op.id, fallback) {
            (Some(pointer), _) => parse::id(what, &parse::json_body(what, &reply.body)?, pointer),
            (None, Some(id)) => Ok(id.clone()),
            (None, None) => Err(FarmError::scheduler(format!(
                "{what}: the profile names no id pointer"
            ))),
        }
    }
}

#[async_trait]
impl FarmPlugin for HttpFarm {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn katana_services(&self) -> Option<&KatanaServices> {
        Some(&self.katana)
    }

    async fn render(&self, request: &JobRequest) -> Result<RenderedJob> {
        render::render(&self.profile, request)
    }

    /// The profile's `check` operation (`POST /v1/jobs:check` in our protocol): a 2xx is an
    /// acceptance, a 422 the server's refusal (`InvalidRequest` naming its field).
    async fn check(&self, request: &JobRequest) -> Result<CheckReport> {
        request.validate()?;
        self.require(self.caps.check, "check")?;
        let op = self
            .profile
            .operations
            .check
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("check", ADAPTER))?;
        let mut call = self.call(
            "check",
            op,
            &render::request_scope(&self.profile, op, request),
            None,
        );
        call.body = render::body(&self.profile, op, request);
        let reply = self.client.send(&call).await?;
        Ok(parse::check_report(&self.profile.name, &reply))
    }

    async fn submit(&self, request: &JobRequest) -> Result<JobId> {
        request.validate()?;
        if !request.depends_on.is_empty() {
            self.require(self.caps.dependencies, "depends_on")?;
        }
        self.verify().await;
        let op = &self.profile.operations.submit;
        let mut call = self.call(
            "submit",
            op,
            &render::request_scope(&self.profile, op, request),
            None,
        );
        call.body = render::body(&self.profile, op, request);
        let id = match op.idempotency.unwrap_or(Idempotency::None) {
            Idempotency::Key => {
                let reply = self.client.send(&call).await?;
                self.id_from("submit", op, &reply, None)?
            }
            Idempotency::None => {
                call.retry = false;
                let reply = self.client.send(&call).await?;
                self.id_from("submit", op, &reply, None)?
            }
            Idempotency::Lookup => {
                // Look before every attempt: a job with this render context is the one we
                // (or an earlier attempt whose answer was lost) submitted.
                call.retry = false;
                let policy = self.client_retry();
                let mut retry = 0;
                loop {
                    if let Some(existing) = self.find_by_context(request.render_context).await? {
                        break existing;
                    }
                    match self.client.send(&call).await {
                        Ok(reply) => break self.id_from("submit", op, &reply, None)?,
                        Err(e) if e.is_retryable() && retry + 1 < policy.max_attempts => {
                            tokio::time::sleep(policy.delay(retry)).await;
                            retry += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        self.remember(&id);
        Ok(id)
    }

    async fn job(&self, id: &JobId) -> Result<Job> {
        self.verify().await;
        match self.fetch(id).await {
            Ok(job) => {
                if job.state.is_terminal() {
                    self.finished
                        .lock()
                        .expect("poisoned")
                        .insert(id.to_string(), job.clone());
                }
                Ok(job)
            }
            Err(FarmError::JobNotFound { id: missing }) => {
                if let Some(job) = self.finished.lock().expect("poisoned").get(id.as_str()) {
                    return Ok(job.clone());
                }
                if self
                    .submitted
                    .lock()
                    .expect("poisoned")
                    .contains(id.as_str())
                {
                    let mut job = Job::new(id.clone(), "", JobState::Failed);
                    job.reason = Some(format!(
                        "lost: the scheduler at {} has no record of this job any more",
                        self.client.base()
                    ));
                    return Ok(job);
                }
                Err(FarmError::JobNotFound { id: missing })
            }
            Err(e) => Err(e),
        }
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.require(self.caps.list_jobs, "list_jobs")?;
        self.list_all(filter).await
    }

    async fn render_log_filename(&self, id: &JobId) -> Result<Option<String>> {
        self.require(self.caps.render_log, "render_log_filename")?;
        Ok(self.fetch(id).await?.render_log_filename)
    }

    async fn read_log(&self, id: &JobId, offset: u64) -> Result<LogChunk> {
        self.require(self.caps.read_log, "read_log")?;
        self.check_id(id)?;
        let op = self
            .profile
            .operations
            .log
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("read_log", ADAPTER))?;
        let scope = Self::id_scope(id).with("offset", json!(offset));
        let reply = self
            .client
            .send(&self.call("log", op, &scope, Some(id)))
            .await?;
        let header = |name: &str| reply.header(name);
        parse::log_chunk(
            op.text.as_ref(),
            op.next_offset.as_ref(),
            op.complete.as_ref(),
            &parse::LogReply {
                body: &reply.body,
                header: &header,
            },
            offset,
        )
    }

    async fn start(&self, id: &JobId) -> Result<JobId> {
        self.require(self.caps.start, "start")?;
        self.check_id(id)?;
        let op = self
            .profile
            .operations
            .start
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("start", ADAPTER))?;
        let reply = self
            .client
            .send(&self.call("start", op, &Self::id_scope(id), Some(id)))
            .await?;
        let new_id = self.id_from("start", op, &reply, Some(id))?;
        self.finished.lock().expect("poisoned").remove(id.as_str());
        self.remember(&new_id);
        Ok(new_id)
    }

    async fn retry_failed(&self, id: &JobId) -> Result<JobId> {
        self.require(self.caps.retry_failed, "retry_failed")?;
        self.check_id(id)?;
        let op = self
            .profile
            .operations
            .retry_failed
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("retry_failed", ADAPTER))?;
        let reply = self
            .client
            .send(&self.call("retry_failed", op, &Self::id_scope(id), Some(id)))
            .await?;
        let new_id = self.id_from("retry_failed", op, &reply, Some(id))?;
        self.finished.lock().expect("poisoned").remove(id.as_str());
        self.remember(&new_id);
        Ok(new_id)
    }

    async fn stop(&self, id: &JobId) -> Result<()> {
        self.require(self.caps.stop, "stop")?;
        self.check_id(id)?;
        let op = self
            .profile
            .operations
            .stop
            .as_ref()
            .ok_or_else(|| FarmError::unsupported("stop", ADAPTER))?;
        self.client
            .send(&self.call("stop", op, &Self::id_scope(id), Some(id)))
            .await?;
        Ok(())
    }
}

impl HttpFarm {
    fn client_retry(&self) -> crate::config::RetryPolicy {
        self.client.retry_policy()
    }
}
