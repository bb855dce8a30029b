//! The queue server: the farm protocol for clients, the agent protocol for agents, the
//! reaper that declares silent agents lost, the supervisor of local agents, and an
//! optional idle shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::web;
use farm_core::{FarmError, now_millis};
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent_api;
use crate::api;
use crate::auth::LoginCodes;
use crate::data_root::{DataRoot, TokenKind, token_matches};
use crate::problem::Problem;
use crate::store::{Durability, Store, StoreOptions};
use crate::supervisor::{AgentLauncher, Supervisor};

/// Default port of the queue.
pub const DEFAULT_PORT: u16 = 7575;

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; anything but loopback is reachable from other machines.
    pub bind: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// When `port` is taken (another user's queue, say), listen on a free port instead of
    /// failing; the port is recorded in the data root either way, and tried first next time.
    pub free_port_if_taken: bool,
    /// Where state and logs live.
    pub data_root: DataRoot,
    /// Local agents to keep running.
    pub agents: usize,
    /// How local agents are started.
    pub launcher: AgentLauncher,
    /// Expected interval between an agent's heartbeats.
    pub heartbeat: Duration,
    /// Silence after which an agent is lost and its task requeued.
    pub agent_timeout: Duration,
    /// Times a task may be handed out before it fails as lost.
    pub max_tries: u32,
    /// Shut down after this long with no unfinished job and no client request.
    pub idle_shutdown: Option<Duration>,
    /// Commit durability.
    pub durability: Durability,
    /// Client token; read or created in the data root when `None`.
    pub api_token: Option<SecretString>,
    /// Agent token; read or created in the data root when `None`.
    pub agent_token: Option<SecretString>,
}

impl ServerConfig {
    /// Defaults: loopback, port 7575, two local agents started as `<this executable> agent`.
    /// A program that is not `farm` (a test harness, say) must set `launcher` to it, or
    /// `agents` to 0.
    pub fn new(data_root: DataRoot) -> ServerConfig {
        ServerConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            free_port_if_taken: false,
            data_root,
            agents: 2,
            launcher: AgentLauncher::current_exe(),
            heartbeat: Duration::from_secs(1),
            agent_timeout: Duration::from_secs(10),
            max_tries: 3,
            idle_shutdown: None,
            durability: Durability::Normal,
            api_token: None,
            agent_token: None,
        }
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The durable state.
    pub store: Arc<Store>,
    /// Heartbeat interval told to agents.
    pub heartbeat: Duration,
    /// Agent timeout told to agents.
    pub agent_timeout: Duration,
    /// Set when the server stops handing out work.
    pub draining: CancellationToken,
    /// Last client request (ms since the epoch), for the idle shutdown.
    pub last_activity: Arc<AtomicI64>,
    /// Login codes for the web page.
    pub login_codes: Arc<LoginCodes>,
    api_token: Arc<SecretString>,
    agent_token: Arc<SecretString>,
}

impl AppState {
    /// The answer to a health challenge: proves this server holds the client token.
    pub(crate) fn health_proof(&self, challenge: &str) -> String {
        crate::auth::health_proof(&self.api_token, challenge)
    }

    /// The client token, for the web page once it has shown a login code.
    pub(crate) fn api_token_text(&self) -> String {
        self.api_token.expose_secret().to_owned()
    }
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    url: String,
    api_token: SecretString,
    agent_token: SecretString,
    data_root: DataRoot,
    stop: CancellationToken,
    task: JoinHandle<Result<(), FarmError>>,
}

impl RunningServer {
    /// The base URL (`http://127.0.0.1:7575`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token clients present.
    pub fn api_token(&self) -> &SecretString {
        &self.api_token
    }

    /// The token agents present.
    pub fn agent_token(&self) -> &SecretString {
        &self.agent_token
    }

    /// The data root it serves.
    pub fn data_root(&self) -> &DataRoot {
        &self.data_root
    }

    /// Asks the server to stop: local agents are stopped (their tasks requeued), then the
    /// listener closes.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// A token that stops the server when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the server has stopped (after [`shutdown`](Self::shutdown), or by itself
    /// when idle).
    pub async fn wait(self) -> Result<(), FarmError> {
        self.task
            .await
            .map_err(|e| FarmError::scheduler(format!("the queue server task failed: {e}")))?
    }
}

fn config_error(what: String) -> impl FnOnce(std::io::Error) -> FarmError {
    move |e| FarmError::io(what, e)
}

/// Starts a server: takes the data root's lock, recovers the state a previous run left,
/// listens, and launches the local agents. Returns once it accepts connections.
pub async fn start(config: ServerConfig) -> Result<RunningServer, FarmError> {
    let root = config.data_root.clone();
    root.create().map_err(config_error(format!(
        "cannot create the data root {}",
        root.path().display()
    )))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.lock_file())
        .map_err(config_error(format!(
            "cannot open {}",
            root.lock_file().display()
        )))?;
    // A queue that is stopping (an idle one, say) removes server.json just before it lets
    // go of the lock: give it a moment rather than refusing the start that replaces it.
    let mut tries = 0;
    while lock.try_lock().is_err() && !root.server_info().exists() && tries < 30 {
        tries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if lock.try_lock().is_err() {
        let owner = std::fs::read_to_string(root.server_info())
            .ok()
            .and_then(|t| serde_json::from_str::<crate::data_root::ServerInfo>(&t).ok())
            .map(|i| {
                format!(
                    "the queue of process {} already serves it and listens at {}",
                    i.pid, i.url
                )
            })
            .unwrap_or_else(|| "another queue already serves it (it is still starting)".to_owned());
        return Err(FarmError::unavailable(format!(
            "data root {}: {owner}; use that queue, or stop it first",
            root.path().display()
        )));
    }
    let api_token = match config.api_token.clone() {
        Some(t) => t,
        None => root
            .load_or_create_token(TokenKind::Api)
            .map_err(config_error("cannot read or create the api token".into()))?,
    };
    let agent_token = match config.agent_token.clone() {
        Some(t) => t,
        None => root
            .load_or_create_token(TokenKind::Agent)
            .map_err(config_error("cannot read or create the agent token".into()))?,
    };
    let store_options = StoreOptions {
        max_tries: config.max_tries.max(1),
        durability: config.durability,
    };
    let store = {
        let (db, logs) = (root.database(), root.job_logs());
        let (local_agents, local_slots) = (config.agents, config.launcher.slots);
        tokio::task::spawn_blocking(move || -> Result<Store, FarmError> {
            let store = Store::open(&db, &logs, store_options).map_err(|e| {
                FarmError::scheduler(format!("cannot open the queue database: {e}"))
            })?;
            let agents = store
                .recover()
                .map_err(|e| FarmError::scheduler(format!("cannot recover the queue: {e}")))?;
            let local = (local_agents > 0).then(|| crate::placement::Capacity {
                slots: u64::from(local_slots.max(1)),
                ..crate::placement::this_machine()
            });
            store
                .expect_local_agents(local)
                .map_err(|e| FarmError::scheduler(format!("cannot recover the queue: {e}")))?;
            if agents > 0 {
                tracing::info!(agents, "waiting for known agents to reconnect");
            }
            Ok(store)
        })
        .await
        .map_err(|e| FarmError::scheduler(format!("cannot open the queue database: {e}")))??
    };
    let store = Arc::new(store);
    let listener = match tokio::net::TcpListener::bind(SocketAddr::new(config.bind, config.port))
        .await
    {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && config.free_port_if_taken => {
            tracing::warn!(port = config.port, "the port is taken (another queue, perhaps another user's, or another program): listening on a free port instead");
            tokio::net::TcpListener::bind(SocketAddr::new(config.bind, 0)).await
        }
        other => other,
    }
    .map_err(|e| FarmError::Unavailable {
        message: if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "port {} on {} is taken by another program, perhaps another user's queue; \
                 choose another with --port (0: any free port)",
                config.port, config.bind
            )
        } else {
            format!("cannot listen on {}:{}: {e}", config.bind, config.port)
        },
        source: Some(Box::new(e)),
    })?;
    let addr = listener
        .local_addr()
        .map_err(config_error("cannot read the listening address".into()))?;
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("http://{host}:{}", addr.port());
    let info =
        serde_json::json!({ "url": url, "pid": std::process::id(), "bind": addr.to_string() });
    if let Err(e) = root.record_port(addr.port()) {
        tracing::warn!(error = %e, "cannot record the port in the data root");
    }
    let info_tmp = root.path().join(".server.json.tmp");
    std::fs::write(&info_tmp, info.to_string())
        .and_then(|()| std::fs::rename(&info_tmp, root.server_info()))
        .map_err(config_error(format!(
            "cannot write {}",
            root.server_info().display()
        )))?;

    let state = AppState {
        store: Arc::clone(&store),
        heartbeat: config.heartbeat,
        agent_timeout: config.agent_timeout,
        draining: CancellationToken::new(),
        last_activity: Arc::new(AtomicI64::new(now_millis())),
        login_codes: Arc::new(LoginCodes::default()),
        api_token: Arc::new(api_token.clone()),
        agent_token: Arc::new(agent_token.clone()),
    };
    let app = router(state.clone());
    let stop = CancellationToken::new();
    let serve_stop = CancellationToken::new();
    let server = {
        let serve_stop = serve_stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { serve_stop.cancelled().await })
                .await
        })
    };
    let supervisor = Supervisor {
        count: config.agents,
        launcher: config.launcher.clone(),
        url: url.clone(),
        agent_token: agent_token.clone(),
        data_root: root.clone(),
        store: Arc::clone(&store),
        stop: state.draining.clone(),
    };
    let supervisor = tokio::spawn(supervisor.run());
    let reaper = tokio::spawn(reap(
        Arc::clone(&store),
        config.heartbeat,
        config.agent_timeout,
        stop.clone(),
    ));
    if let Some(idle) = config.idle_shutdown {
        tokio::spawn(idle_watch(state.clone(), idle, stop.clone()));
    }
    tracing::info!(%url, data_root = %root.path().display(), agents = config.agents, "queue server listening");
    let task = {
        let (stop, root) = (stop.clone(), root.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            tracing::info!("queue server stopping");
            state.draining.cancel();
            // Agents report their interrupted tasks while the listener still runs.
            if let Err(e) = supervisor.await {
                tracing::warn!(error = %e, "agent supervisor failed");
            }
            reaper.abort();
            serve_stop.cancel();
            let result = server.await;
            let _ = std::fs::remove_file(root.server_info());
            drop(lock);
            match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(FarmError::Unavailable {
                    message: format!("the queue server failed: {e}"),
                    source: Some(Box::new(e)),
                }),
                Err(e) => Err(FarmError::scheduler(format!(
                    "the queue server task failed: {e}"
                ))),
            }
        })
    };
    Ok(RunningServer {
        url,
        api_token,
        agent_token,
        data_root: root,
        stop,
        task,
    })
}

fn router(state: AppState) -> Router {
    let farm = Router::new()
        .route("/v1/capabilities", get(api::capabilities))
        .route("/v1/jobs", post(api::submit).get(api::list))
        .route("/v1/jobs:check", post(api::check))
        .route(
            "/v1/jobs/{id}",
            get(api::get_job)
                .post(api::job_action)
                .patch(web::patch_job)
                .delete(web::delete_job),
        )
        .route("/v1/jobs/{id}/log", get(api::read_log))
        .route("/v1/jobs/{id}/tasks", get(api::tasks))
        .route("/v1/agents", get(api::agents))
        .route("/v1/agents/{id}", post(web::agent_action))
        .route("/web/v1/jobs/{id}/outputs", get(web::list_outputs))
        .route(
            "/web/v1/jobs/{id}/outputs/{name}",
            get(web::output_thumbnail),
        )
        .route("/web/v1/login-codes", post(api::issue_login_code))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_token,
        ));
    let agents = Router::new()
        .route("/agent/v1/agents", post(agent_api::register))
        .route("/agent/v1/agents/{agent}", delete(agent_api::deregister))
        .route("/agent/v1/agents/{agent}/lease", post(agent_api::lease))
        .route(
            "/agent/v1/agents/{agent}/heartbeat",
            post(agent_api::heartbeat),
        )
        .route(
            "/agent/v1/agents/{agent}/assignments/{assignment}/start",
            post(agent_api::start),
        )
        .route(
            "/agent/v1/agents/{agent}/assignments/{assignment}/log",
            post(agent_api::log),
        )
        .route(
            "/agent/v1/agents/{agent}/assignments/{assignment}/finish",
            post(agent_api::finish),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_agent_token,
        ));
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/", get(web::page))
        .route("/app.js", get(web::script))
        .route("/style.css", get(web::style))
        .route("/favicon.svg", get(web::favicon))
        .route("/favicon.ico", get(web::favicon))
        .route("/web/v1/session", post(api::open_session))
        .merge(farm)
        .merge(agents)
        .fallback(|| async { Problem::no_route() })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this resource does not take that method",
            )
        })
        .layer(middleware::from_fn(allow_as_specified))
        .with_state(state)
}

/// The methods the protocol defines for a path (`/v1/jobs/{id}` and `/v1/jobs/{id}:stop`
/// share one route but not their methods).
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/app.js" | "/style.css" | "/favicon.svg" | "/favicon.ico" | "/v1/health"
        | "/v1/capabilities" | "/v1/agents" => return Some("GET"),
        "/v1/jobs" => return Some("GET, POST"),
        "/v1/jobs:check" | "/web/v1/login-codes" | "/web/v1/session" => return Some("POST"),
        _ => {}
    }
    if let Some(agent) = path.strip_prefix("/v1/agents/") {
        let action = agent.ends_with(":disable") || agent.ends_with(":enable");
        return (action && !agent.contains('/')).then_some("POST");
    }
    if let Some(rest) = path.strip_prefix("/web/v1/jobs/") {
        let outputs = rest.split('/').nth(1) == Some("outputs");
        return outputs.then_some("GET");
    }
    let rest = path.strip_prefix("/v1/jobs/")?;
    match rest.split_once('/') {
        Some((id, "log" | "tasks")) if !id.is_empty() => Some("GET"),
        Some(_) => None,
        None if rest.ends_with(":stop")
            || rest.ends_with(":start")
            || rest.ends_with(":retry-failed") =>
        {
            Some("POST")
        }
        None if rest.contains(':') => None,
        None if !rest.is_empty() => Some("GET, PATCH, DELETE"),
        None => None,
    }
}

/// Every 405 says which methods the resource takes (RFC 9110).
async fn allow_as_specified(request: Request, next: Next) -> Response {
    let allow = allowed_methods(request.uri().path());
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        match allow {
            Some(methods) => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, axum::http::HeaderValue::from_static(methods));
            }
            None => {
                response.headers_mut().remove(header::ALLOW);
            }
        }
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Some(t) if token_matches(t, state.api_token.expose_secret()) => next.run(request).await,
        Some(_) => Problem::unauthorized("the bearer token is wrong").into_response(),
        None => Problem::unauthorized("this queue needs `Authorization: Bearer <token>` (the token is in api.token in its data root)")
            .into_response(),
    }
}

async fn require_agent_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Some(t) if token_matches(t, state.agent_token.expose_secret()) => next.run(request).await,
        _ => Problem::unauthorized("agents must present the queue's agent token").into_response(),
    }
}

/// Declares agents lost when they fall silent, which requeues (or fails) their tasks.
async fn reap(store: Arc<Store>, every: Duration, timeout: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.expire_agents(timeout, &[], "")).await {
            Ok(Ok(lost)) if !lost.is_empty() => tracing::warn!(
                ?lost,
                "agents lost (silent too long); their tasks were requeued"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot expire agents"),
            _ => {}
        }
    }
}

/// Stops the server once nothing is waiting or running and no client has called for `idle`.
async fn idle_watch(state: AppState, idle: Duration, stop: CancellationToken) {
    let period = (idle / 10).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
        let quiet_ms = now_millis()
            - state
                .last_activity
                .load(std::sync::atomic::Ordering::Relaxed);
        if quiet_ms < idle.as_millis() as i64 {
            continue;
        }
        let store = Arc::clone(&state.store);
        if let Ok(Ok(0)) = tokio::task::spawn_blocking(move || store.unfinished_jobs()).await {
            tracing::info!(idle = %humantime::format_duration(idle), "no work and no clients: shutting down");
            stop.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn allow_headers_follow_the_protocol_paths() {
        assert_eq!(allowed_methods("/v1/jobs"), Some("GET, POST"));
        assert_eq!(allowed_methods("/v1/jobs/12"), Some("GET, PATCH, DELETE"));
        assert_eq!(allowed_methods("/v1/agents/3:disable"), Some("POST"));
        assert_eq!(allowed_methods("/v1/agents/3"), None);
        assert_eq!(allowed_methods("/web/v1/jobs/3/outputs"), Some("GET"));
        assert_eq!(allowed_methods("/v1/jobs/12:stop"), Some("POST"));
        assert_eq!(allowed_methods("/v1/jobs/12/log"), Some("GET"));
        assert_eq!(allowed_methods("/v1/jobs/12/tasks"), Some("GET"));
        assert_eq!(allowed_methods("/v1/jobs/12:retry-failed"), Some("POST"));
        assert_eq!(allowed_methods("/v1/jobs/12/other"), None);
        assert_eq!(allowed_methods("/agent/v1/agents"), None);
        assert_eq!(allowed_methods("/web/v1/session"), Some("POST"));
    }
}
