//! The only code that talks to the program: starting it, writing calls to its stdin,
//! routing the reply lines on its stdout to their callers, restarting it when it died.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use farm_core::{FarmError, Result};
use serde_json::{Value, json};

use crate::PROTOCOL_VERSION;
use crate::config::ExternalSettings;
use crate::parse::{Hello, check_hello, decode_reply};

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

/// A connection to farm `name`'s program, restarted on the next call when it died.
pub struct Client {
    name: String,
    settings: ExternalSettings,
    connection: Mutex<Option<Arc<Connection>>>,
    /// One restart at a time.
    restart_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl Client {
    /// Starts the program and greets it. Blocks for at most the call timeout.
    pub fn start(name: &str, settings: ExternalSettings) -> Result<(Client, Hello)> {
        if settings.command.is_empty() {
            return Err(FarmError::config(format!(
                "farm {name}: settings.command is empty"
            )));
        }
        let connection = spawn(name, &settings)?;
        let hello = hello_blocking(name, &settings, &connection)?;
        let client = Client {
            name: name.to_owned(),
            settings,
            connection: Mutex::new(Some(Arc::new(connection))),
            restart_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        };
        Ok((client, hello))
    }

    /// The farm's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings the program was started with.
    pub fn settings(&self) -> &ExternalSettings {
        &self.settings
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

    /// Sends one call and waits for its reply (the `result`, or the program's error).
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value> {
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
/// polling; restarts inside a call await it asynchronously (`Client::connection`).
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
