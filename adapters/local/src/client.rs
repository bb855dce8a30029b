//! The only code of the `local` adapter that starts processes or probes the server: making
//! sure a queue answers, starting one in the background when none does, checking that what
//! answers holds the queue's token before anything sends it there, and asking the queue for
//! a web login code.
//!
//! The embedded queue is a detached `farm queue serve --idle-shutdown 15m` process rather
//! than a server inside the calling program: `farm submit` can return at once and a later
//! `farm status` finds the same queue, a long-lived host (Katana) does not carry the server
//! in its own process, and because the state is in SQLite, a queue that exited when idle
//! loses nothing — the next call simply starts it again.
//!
//! That queue and its agents run every job, so it starts with a cleared environment plus
//! [`AUTOSTART_ENV`] (and the farm's `pass_env`): the caller's secrets (a Slurm JWT, cloud
//! keys, other farms' tokens) are not handed to every job for the next idle period.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use farm_core::{FarmError, Result};
use secrecy::SecretString;

use farm_queue::auth;
use farm_queue::data_root::{DataRoot, TokenKind};

use crate::config::LocalSettings;

/// What answers at the queue's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A queue (or another server of our protocol).
    Up,
    /// Nothing: connection refused or timed out.
    Down(String),
    /// Something else (not our protocol).
    Foreign(String),
}

/// Asks `GET /v1/health`.
pub async fn probe(url: &str) -> Probe {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Probe::Down(e.to_string()),
    };
    match client
        .get(format!("{}/v1/health", url.trim_end_matches('/')))
        .send()
        .await
    {
        Err(e) => Probe::Down(e.to_string()),
        Ok(response) => {
            let status = response.status();
            match response.json::<serde_json::Value>().await {
                Ok(body) if status.is_success() && body["status"] == "ok" => Probe::Up,
                _ => Probe::Foreign(format!(
                    "{url} answered {status} to /v1/health, not a farm queue"
                )),
            }
        }
    }
}

/// Asks the server at `url` to prove it holds `token` (`GET /v1/health?challenge=...`),
/// before anything sends the token there: while a queue is stopped, any local user can
/// listen on its port. Refuses with `PermissionDenied` when the proof is missing or wrong.
pub async fn authenticate(http: &reqwest::Client, url: &str, token: &SecretString) -> Result<()> {
    let challenge = auth::new_challenge();
    let reply = send(
        http.get(format!("{}/v1/health", url.trim_end_matches('/')))
            .query(&[("challenge", challenge.as_str())]),
        || format!("no queue answers at {url}"),
    )
    .await?;
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    let proof = body["proof"].as_str().unwrap_or("");
    if status.is_success() && auth::health_proof_matches(token, &challenge, proof) {
        return Ok(());
    }
    Err(FarmError::permission_denied(format!(
        "the server at {url} cannot prove that it holds this queue's token (health answered \
         {status}{}), so the token was not sent to it: another program, perhaps another \
         user's, may be listening on that port, or the queue there serves another data root",
        if proof.is_empty() {
            " without a proof"
        } else {
            " with a wrong proof"
        }
    )))
}

/// Sends a request to the queue; a queue that does not answer is `Unavailable` (retryable),
/// with `what` saying what was asked and the transport's own words.
async fn send(
    request: reqwest::RequestBuilder,
    what: impl FnOnce() -> String,
) -> Result<reqwest::Response> {
    request.send().await.map_err(|e| FarmError::Unavailable {
        message: format!("{}: {e}", what()),
        source: Some(Box::new(e)),
    })
}

/// Every task of job `id`, page by page (`GET /v1/jobs/{id}/tasks`). Call only after
/// [`authenticate`]: it sends the token.
pub async fn tasks(
    http: &reqwest::Client,
    url: &str,
    token: &SecretString,
    id: &farm_core::JobId,
) -> Result<Vec<farm_queue::store::TaskRecord>> {
    use secrecy::ExposeSecret;
    #[derive(serde::Deserialize)]
    struct Page {
        tasks: Vec<farm_queue::store::TaskRecord>,
        next_cursor: Option<String>,
    }
    let base = url.trim_end_matches('/');
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1000".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let Some(number) = farm_queue::store::parse_job_id(id.as_str()) else {
            return Err(FarmError::job_not_found(id.clone()));
        };
        let reply = send(
            http.get(format!("{base}/v1/jobs/{number}/tasks"))
                .query(&query)
                .bearer_auth(token.expose_secret()),
            || format!("no queue answers at {url}"),
        )
        .await?;
        let status = reply.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FarmError::job_not_found(id.clone()));
        }
        let text = reply.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(FarmError::scheduler(format!(
                "the queue answered {status} to the task list of job {id}: {text}"
            )));
        }
        let page: Page = serde_json::from_str(&text).map_err(|e| {
            FarmError::scheduler(format!("the queue's task list is unreadable: {e}"))
        })?;
        all.extend(page.tasks);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// The address of the queue's web page with a login code in the URL fragment
/// (`URL/#code=...`), as `farm queue url` prints it: the running queue issues the code,
/// valid for one login within a minute, so what the browser keeps in its history is worth
/// nothing afterwards, and the token itself is never in an address. Needs the queue at
/// `url` to be running, and to prove first that it holds the token in `root`.
pub async fn web_login_url(url: &str, root: &DataRoot) -> Result<String> {
    use secrecy::ExposeSecret;
    let token = root
        .read_token(TokenKind::Api)
        .map_err(|e| {
            FarmError::io(
                format!("cannot read the token in {}", root.path().display()),
                e,
            )
        })?
        .ok_or_else(|| {
            FarmError::config(format!(
                "no api.token in {}: has a queue run with this data root?",
                root.path().display()
            ))
        })?;
    let base = url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| FarmError::config(format!("cannot build an HTTP client: {e}")))?;
    authenticate(&http, base, &token)
        .await
        .map_err(|e| match e {
            FarmError::Unavailable { message, source } => FarmError::Unavailable {
                message: format!("{message}; start the queue first (`farm queue serve`)"),
                source,
            },
            other => other,
        })?;
    let reply = send(
        http.post(format!("{base}/web/v1/login-codes"))
            .bearer_auth(token.expose_secret()),
        || format!("cannot ask {base} for a login code"),
    )
    .await?;
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    match body["code"].as_str() {
        Some(code) if status.is_success() && auth::valid_challenge(code) => {
            Ok(format!("{base}/#code={code}"))
        }
        _ => Err(FarmError::scheduler(format!(
            "{base} did not issue a login code ({status}): {}",
            body["detail"].as_str().unwrap_or("no detail")
        ))),
    }
}

/// Variables an autostarted queue keeps from the caller's environment; everything else is
/// dropped. An entry ending in `*` is a prefix. `FARM_DATA_ROOT` and `FARM_NUM_AGENTS`
/// are the queue's own settings, `FARM_DEMO_OUT` where the demo job writes its frames.
pub const AUTOSTART_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_*",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "FARM_DATA_ROOT",
    "FARM_NUM_AGENTS",
    "FARM_DEMO_OUT",
];

fn listed(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *p,
    })
}

/// The environment of an autostarted queue: the variables of `vars` that [`AUTOSTART_ENV`]
/// or `pass_env` name, never a credential variable
/// ([`farm_core::secret::is_credential_variable`]), whatever `pass_env` says.
pub fn autostart_environment(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    pass_env: &[String],
) -> Vec<(OsString, OsString)> {
    let extra: Vec<&str> = pass_env.iter().map(String::as_str).collect();
    vars.into_iter()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                (listed(name, AUTOSTART_ENV) || listed(name, &extra))
                    && !farm_core::secret::is_credential_variable(name)
            })
        })
        .collect()
}

/// `(host, port)` of a loopback `http://` URL: the only kind this adapter may start a queue
/// for.
pub fn loopback(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let (is_loopback, bind) = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => (ip.is_loopback(), ip.to_string()),
        Err(_) => (
            host.eq_ignore_ascii_case("localhost"),
            "127.0.0.1".to_owned(),
        ),
    };
    is_loopback.then(|| (bind, parsed.port_or_known_default().unwrap_or(80)))
}

/// Makes sure a queue answers, starting one in the background when allowed, and returns
/// its URL. A `url` given by the user is kept (and a queue started there exactly); a
/// `discovered` one (the data root's) is the data root's queue only when that queue says
/// so: something else at that port (another user's queue) makes this one start on the
/// port the queue chooses, a free one if need be.
pub async fn ensure_server(
    settings: &LocalSettings,
    root: &DataRoot,
    url: &str,
    discovered: bool,
) -> Result<String> {
    let ours = || root.running_server().is_some_and(|info| info.url == url);
    match probe(url).await {
        Probe::Up if !discovered || ours() => Ok(url.to_owned()),
        Probe::Foreign(why) if !discovered => Err(FarmError::unavailable(why)),
        Probe::Down(why) if !discovered => match loopback(url).filter(|_| settings.autostart) {
            Some((host, port)) => start_server(settings, root, url, &host, Some(port)).await,
            None => Err(FarmError::unavailable(format!(
                "no queue answers at {url} ({why}); start one with `farm queue serve`"
            ))),
        },
        _ if !settings.autostart => Err(FarmError::unavailable(format!(
            "the queue of data root {} does not run (nothing of it answers at {url}); start it \
             with `farm queue serve`",
            root.path().display()
        ))),
        other => {
            if !matches!(other, Probe::Down(_)) {
                tracing::info!(%url, "another queue or program holds the port; starting this data root's queue on a free one");
            }
            start_server(settings, root, url, "127.0.0.1", None).await
        }
    }
}

/// Starts `farm queue serve` in the background and waits until it answers: at `port`
/// exactly, or (`None`) where the queue chooses and records in `server.json`.
async fn start_server(
    settings: &LocalSettings,
    root: &DataRoot,
    url: &str,
    host: &str,
    port: Option<u16>,
) -> Result<String> {
    root.create().map_err(|e| {
        FarmError::io(
            format!("cannot create the data root {}", root.path().display()),
            e,
        )
    })?;
    let log_path = root.server_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| FarmError::io(format!("cannot open {}", log_path.display()), e))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let argv = match &settings.server_command {
        Some(argv) if !argv.is_empty() => argv.clone(),
        _ => {
            let exe = std::env::current_exe()
                .map_err(|e| FarmError::io("cannot find this program to start the queue", e))?;
            vec![exe.display().to_string(), "queue".into(), "serve".into()]
        }
    };
    let mut command = std::process::Command::new(&argv[0]);
    command
        .env_clear()
        .envs(autostart_environment(
            std::env::vars_os(),
            &settings.pass_env,
        ))
        .args(&argv[1..])
        .arg("--bind")
        .arg(host)
        .args(
            port.map(|p| ["--port".to_owned(), p.to_string()])
                .into_iter()
                .flatten(),
        )
        .arg("--data-root")
        .arg(root.path())
        .arg("--idle-shutdown")
        .arg(humantime::format_duration(settings.idle_shutdown).to_string());
    if let Some(agents) = settings.agents {
        command.arg("--agents").arg(agents.to_string());
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    use std::os::unix::process::CommandExt;
    command
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| FarmError::io("cannot open the server log", e))?,
        )
        .stderr(log)
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| FarmError::io(format!("cannot start the local queue with {}", argv[0]), e))?;
    tracing::info!(pid = child.id(), %url, data_root = %root.path().display(), "started the local queue in the background");
    let deadline = Instant::now() + settings.start_timeout;
    let mut exited = None;
    loop {
        // Where it listens: where it was told, or where it says (it, or another caller's
        // queue that won the race for the data root).
        let at = match port {
            Some(_) => Some(url.to_owned()),
            None => root.running_server().map(|info| info.url),
        };
        if let Some(at) = at
            && probe(&at).await == Probe::Up
        {
            // Reap it whenever it exits, so a long-lived caller collects no zombie.
            std::thread::spawn(move || child.wait());
            return Ok(at);
        }
        if exited.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            // Another caller may have won the race to start it: keep probing a little.
            exited = Some(status);
        }
        if Instant::now() >= deadline
            || exited.is_some_and(|_| Instant::now() + settings.start_timeout / 2 >= deadline)
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FarmError::unavailable(format!(
                "the local queue did not start at {}{}; its log {} says: {}",
                match port {
                    Some(_) => url.to_owned(),
                    None => format!("data root {}", root.path().display()),
                },
                exited
                    .map(|s| format!(" (it exited: {s})"))
                    .unwrap_or_default(),
                log_path.display(),
                tail(&log_path, log_start)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines written to the log since `from`.
fn tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let new = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = new.lines().rev().take(8).collect();
    let out: Vec<&str> = lines.into_iter().rev().collect();
    if out.is_empty() {
        "(nothing)".into()
    } else {
        out.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls_may_be_autostarted() {
        assert_eq!(
            loopback("http://127.0.0.1:7575"),
            Some(("127.0.0.1".into(), 7575))
        );
        assert_eq!(
            loopback("http://localhost:9000/"),
            Some(("127.0.0.1".into(), 9000))
        );
        assert_eq!(loopback("http://[::1]:7575"), Some(("::1".into(), 7575)));
        assert_eq!(loopback("http://render-queue:7575"), None);
        assert_eq!(loopback("http://10.0.0.5:7575"), None);
        assert_eq!(loopback("https://127.0.0.1:7575"), None);
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn an_autostarted_queue_keeps_only_listed_variables_and_never_credentials() {
        let env = vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
            ("LC_ALL", "C.UTF-8"),
            ("FARM_DATA_ROOT", "/q"),
            ("FARM_NUM_AGENTS", "4"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("SLURM_JWT", "jwt"),
            ("FARM_HTTP_TOKEN", "t"),
            ("FARM_LOCAL_TOKEN", "t"),
            ("OCIO", "/show/config.ocio"),
            ("PIXAR_LICENSE_FILE", "9010@lic"),
            ("LD_PRELOAD", "/tmp/x.so"),
        ]);
        let names = |kept: Vec<(OsString, OsString)>| -> Vec<String> {
            kept.into_iter()
                .map(|(k, _)| k.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            names(autostart_environment(env.clone(), &[])),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "FARM_DATA_ROOT",
                "FARM_NUM_AGENTS"
            ]
        );
        let pass = [
            "OCIO".to_owned(),
            "PIXAR_*".to_owned(),
            "SLURM_JWT".to_owned(),
        ];
        assert_eq!(
            names(autostart_environment(env, &pass)),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "FARM_DATA_ROOT",
                "FARM_NUM_AGENTS",
                "OCIO",
                "PIXAR_LICENSE_FILE"
            ],
            "pass_env adds names, never a credential variable"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(matches!(
            probe(&format!("http://127.0.0.1:{port}")).await,
            Probe::Down(_)
        ));
    }
}
