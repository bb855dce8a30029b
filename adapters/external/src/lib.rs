//! External adapters: a farm implemented by another program, in any language, spoken to as
//! JSON lines over its standard input and output (`docs/external-adapters.md`).
//!
//! The bridge validates requests and enforces capabilities itself, so an external adapter
//! gets only valid requests, already expanded into tasks and concrete argv per step; it
//! needs no frame-set parser and no placeholder logic of its own. A child that dies is
//! restarted on the next call; a child that does not answer in time gives `Unavailable`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use farm_core::{
    Capabilities, FarmError, FarmPlugin, FarmSpec, InstallationMetadata, Job, JobFilter, JobId,
    JobRequest, LogChunk, RenderedJob, Result,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// The protocol version this bridge speaks.
pub const PROTOCOL_VERSION: u64 = 1;

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

/// One task as the external adapter receives it: concrete argv and `FARM_*` variables for
/// every step, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct WireTask {
    /// Chunk index from 0.
    pub index: u32,
    /// The chunk's frames, or `None`.
    pub frames: Option<String>,
    /// The steps in execution order; stop at the first that fails.
    pub steps: Vec<WireStep>,
}

/// One command invocation of a task.
#[derive(Debug, Clone, Serialize)]
pub struct WireStep {
    /// Which entry of `commands`.
    pub command_index: usize,
    /// The frame, when commands repeat per frame.
    pub frame: Option<u32>,
    /// The argv, placeholders substituted.
    pub argv: Vec<String>,
    /// `FARM_*` variables to set (on top of the request's environment).
    pub env: BTreeMap<String, String>,
}

/// The tasks of a validated request, as sent with `render` and `submit`.
pub fn wire_tasks(request: &JobRequest) -> Vec<WireTask> {
    request
        .tasks()
        .into_iter()
        .map(|task| WireTask {
            index: task.index,
            frames: task.frames.as_ref().map(ToString::to_string),
            steps: request
                .steps(&task)
                .into_iter()
                .map(|s| WireStep {
                    command_index: s.command_index,
                    frame: s.frame,
                    argv: s.argv,
                    env: s
                        .farm_env
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

type Pending = Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Result<Value>>>>>;

/// A running adapter process.
struct Connection {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    pending: Pending,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing stdin asks the adapter to exit; kill it if it lingers.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A farm served by an external program.
pub struct ExternalFarm {
    name: String,
    settings: ExternalSettings,
    adapter_name: String,
    capabilities: Capabilities,
    connection: Mutex<Option<Arc<Connection>>>,
    /// One restart at a time.
    restart_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ExternalFarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalFarm")
            .field("name", &self.name)
            .field("adapter", &self.adapter_name)
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Deserialize)]
struct Hello {
    adapter: String,
    capabilities: Capabilities,
}

impl ExternalFarm {
    /// Starts the adapter program and greets it. Blocks for at most the call timeout.
    pub fn start(name: &str, settings: ExternalSettings) -> Result<ExternalFarm> {
        if settings.command.is_empty() {
            return Err(FarmError::config(format!(
                "farm {name}: settings.command is empty"
            )));
        }
        let connection = spawn(name, &settings)?;
        let hello = hello_blocking(name, &settings, &connection)?;
        Ok(ExternalFarm {
            name: name.to_owned(),
            adapter_name: hello.adapter,
            capabilities: hello.capabilities,
            settings,
            connection: Mutex::new(Some(Arc::new(connection))),
            restart_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The running adapter, restarted (and greeted again) if it died.
    async fn connection(&self) -> Result<Arc<Connection>> {
        {
            let slot = self.connection.lock().expect("poisoned");
            if let Some(conn) = slot.as_ref()
                && conn.alive.load(Ordering::SeqCst)
            {
                return Ok(conn.clone());
            }
        }
        let _restarting = self.restart_lock.lock().await;
        // Another call may have restarted it while this one waited.
        if let Some(conn) = self.connection.lock().expect("poisoned").as_ref()
            && conn.alive.load(Ordering::SeqCst)
        {
            return Ok(conn.clone());
        }
        tracing::warn!(farm = %self.name, "external adapter is not running; restarting it");
        let conn = spawn(&self.name, &self.settings)?;
        let rx = send_hello(&self.name, &self.settings, &conn)?;
        let value = match tokio::time::timeout(self.settings.timeout, rx).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => {
                return Err(FarmError::unavailable(format!(
                    "the external adapter of farm {} exited during hello",
                    self.name
                )));
            }
            Err(_) => {
                return Err(FarmError::unavailable(format!(
                    "the external adapter of farm {} did not answer hello",
                    self.name
                )));
            }
        };
        check_hello(&self.name, value)?;
        let conn = Arc::new(conn);
        *self.connection.lock().expect("poisoned") = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one call and waits for its reply.
    async fn call(&self, method: &'static str, params: Value) -> Result<Value> {
        let conn = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        conn.pending.lock().expect("poisoned").insert(id, tx);
        let line = serde_json::to_string(&json!({ "id": id, "method": method, "params": params }))
            .expect("requests serialise");
        let stdin = conn.stdin.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut pipe = stdin.lock().expect("poisoned");
            pipe.write_all(line.as_bytes())
                .and_then(|()| pipe.write_all(b"\n"))
                .and_then(|()| pipe.flush())
        })
        .await
        .map_err(|e| FarmError::unavailable(format!("external adapter writer failed: {e}")))?;
        if let Err(e) = written {
            conn.pending.lock().expect("poisoned").remove(&id);
            return Err(FarmError::Unavailable {
                message: format!(
                    "cannot send {method} to the external adapter of farm {}: {e}",
                    self.name
                ),
                source: Some(Box::new(e)),
            });
        }
        match tokio::time::timeout(self.settings.timeout, rx).await {
            // The adapter says it cannot do this: name the operation and the adapter.
            Ok(Ok(Err(FarmError::Unsupported { .. }))) => {
                Err(FarmError::unsupported(method, self.adapter_name.clone()))
            }
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(FarmError::unavailable(format!(
                "the external adapter of farm {} exited before answering {method}",
                self.name
            ))),
            Err(_) => {
                conn.pending.lock().expect("poisoned").remove(&id);
                Err(FarmError::unavailable(format!(
                    "the external adapter of farm {} did not answer {method} within {:?}",
                    self.name, self.settings.timeout
                )))
            }
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

fn spawn(name: &str, settings: &ExternalSettings) -> Result<Connection> {
    let mut command = Command::new(&settings.command[0]);
    command
        .args(&settings.command[1..])
        .envs(&settings.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(dir) = &settings.working_directory {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|e| FarmError::Config {
        message: format!(
            "farm {name}: cannot start external adapter {:?}: {e}",
            settings.command[0]
        ),
        source: Some(Box::new(e)),
    })?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (pending, alive, name) = (pending.clone(), alive.clone(), name.to_owned());
        std::thread::Builder::new()
            .name(format!("farm-external-{name}"))
            .spawn(move || read_replies(BufReader::new(stdout), &pending, &alive, &name))
            .map_err(|e| FarmError::io("cannot start the external adapter reader thread", e))?;
    }
    Ok(Connection {
        child,
        stdin: Arc::new(Mutex::new(stdin)),
        pending,
        alive,
    })
}

/// Routes each reply line to the caller waiting for its id, until the adapter's stdout
/// closes; then fails every pending call.
fn read_replies(
    reader: impl BufRead,
    pending: &Pending,
    alive: &std::sync::atomic::AtomicBool,
    name: &str,
) {
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let parsed: std::result::Result<Value, _> = serde_json::from_str(&line);
        let Some(id) = parsed
            .as_ref()
            .ok()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_u64)
        else {
            tracing::warn!(farm = %name, line = %line.chars().take(200).collect::<String>(), "external adapter wrote a line that is not a reply");
            // An unparseable line cannot be routed; fail the oldest caller with it rather
            // than let it wait for a timeout.
            let oldest = pending.lock().expect("poisoned").keys().min().copied();
            if let Some(oldest) = oldest
                && let Some(tx) = pending.lock().expect("poisoned").remove(&oldest)
            {
                let _ = tx.send(Err(FarmError::scheduler(format!(
                    "the external adapter of farm {name} wrote garbage: {}",
                    line.chars().take(200).collect::<String>()
                ))));
            }
            continue;
        };
        let reply = decode_reply(parsed.expect("checked"), name);
        if let Some(tx) = pending.lock().expect("poisoned").remove(&id) {
            let _ = tx.send(reply);
        }
    }
    alive.store(false, Ordering::SeqCst);
    for (_, tx) in pending.lock().expect("poisoned").drain() {
        let _ = tx.send(Err(FarmError::unavailable(format!(
            "the external adapter of farm {name} exited"
        ))));
    }
}

/// The one place protocol errors become `FarmError`s.
fn decode_reply(reply: Value, name: &str) -> Result<Value> {
    if let Some(err) = reply.get("error") {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_owned();
        let kind = err
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("scheduler");
        return Err(match kind {
            "job_not_found" => FarmError::job_not_found(
                err.get("job_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            "invalid_request" => FarmError::invalid(
                err.get("field")
                    .and_then(Value::as_str)
                    .unwrap_or("request"),
                message,
            ),
            "unsupported" => FarmError::Unsupported {
                operation: "operation",
                adapter: name.to_owned(),
            },
            "unavailable" => FarmError::unavailable(message),
            "permission_denied" => FarmError::permission_denied(message),
            "config" => FarmError::config(message),
            "io" => FarmError::io(
                message,
                std::io::Error::other("reported by the external adapter"),
            ),
            _ => FarmError::scheduler(message),
        });
    }
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(FarmError::scheduler(format!(
            "the external adapter of farm {name} sent a reply without result or error"
        ))),
    }
}

/// Sends `hello` (always call id 0) and returns where its reply will arrive.
fn send_hello(
    name: &str,
    settings: &ExternalSettings,
    conn: &Connection,
) -> Result<tokio::sync::oneshot::Receiver<Result<Value>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    conn.pending.lock().expect("poisoned").insert(0, tx);
    let line = json!({ "id": 0, "method": "hello", "params": { "protocol": PROTOCOL_VERSION, "farm": name, "options": settings.options } });
    let mut pipe = conn.stdin.lock().expect("poisoned");
    writeln!(pipe, "{line}")
        .and_then(|()| pipe.flush())
        .map_err(|e| FarmError::io(format!("farm {name}: cannot greet the external adapter"), e))?;
    Ok(rx)
}

/// The farm is built synchronously (factories are), so the first greeting is awaited by
/// polling; restarts inside a call await it asynchronously ([`ExternalFarm::restart`]).
fn hello_blocking(name: &str, settings: &ExternalSettings, conn: &Connection) -> Result<Hello> {
    let mut rx = send_hello(name, settings, conn)?;
    let deadline = std::time::Instant::now() + settings.timeout;
    let value = loop {
        match rx.try_recv() {
            Ok(reply) => break reply?,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(FarmError::config(format!(
                    "farm {name}: the external adapter exited during hello"
                )));
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                if std::time::Instant::now() > deadline {
                    return Err(FarmError::unavailable(format!(
                        "farm {name}: the external adapter did not answer hello"
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    check_hello(name, value)
}

fn check_hello(name: &str, value: Value) -> Result<Hello> {
    let protocol = value.get("protocol").and_then(Value::as_u64);
    if protocol != Some(PROTOCOL_VERSION) {
        return Err(FarmError::config(format!(
            "farm {name}: the external adapter speaks protocol {}, this farm speaks {PROTOCOL_VERSION}",
            protocol.map_or_else(|| "(none)".to_owned(), |p| p.to_string())
        )));
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        FarmError::config(format!(
            "farm {name}: bad hello from the external adapter ({e}): {value}"
        ))
    })
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
                self.name
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

/// Fills in the id of a `JobNotFound` the adapter reported without one.
fn with_id(err: FarmError, id: &JobId) -> FarmError {
    match err {
        FarmError::JobNotFound { id: found } if found.as_str().is_empty() => {
            FarmError::job_not_found(id)
        }
        other => other,
    }
}

/// Registers `adapter: external`.
pub fn register(registry: &mut farm_core::AdapterRegistry) {
    registry.register(
        "external",
        "a farm implemented by another program, spoken to as JSON lines over stdio",
        |name: &str, spec: &FarmSpec| {
            let settings: ExternalSettings = spec.settings_as(name)?;
            Ok(Arc::new(ExternalFarm::start(name, settings)?) as Arc<dyn FarmPlugin>)
        },
    );
}
