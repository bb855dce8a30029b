//! The only code of the `local` adapter that starts processes or probes the server: making
//! sure a queue answers, starting one in the background when none does.
//!
//! The embedded queue is a detached `farm queue serve --idle-shutdown 15m` process rather
//! than a server inside the calling program: `farm submit` can return at once and a later
//! `farm status` finds the same queue, a long-lived host (Katana) does not carry the server
//! in its own process, and because the state is in SQLite, a queue that exited when idle
//! loses nothing — the next call simply starts it again.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use farm_core::{FarmError, Result};

use crate::config::LocalSettings;
use crate::data_root::DataRoot;

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

/// Makes sure a queue answers at `settings.url`, starting one in the background when
/// allowed. Returns once it answers.
pub async fn ensure_server(settings: &LocalSettings, root: &DataRoot) -> Result<()> {
    match probe(&settings.url).await {
        Probe::Up => Ok(()),
        Probe::Foreign(why) => Err(FarmError::unavailable(why)),
        Probe::Down(why) => match loopback(&settings.url).filter(|_| settings.autostart) {
            Some((host, port)) => start_server(settings, root, &host, port).await,
            None => Err(FarmError::unavailable(format!(
                "no queue answers at {} ({why}); start one with `farm queue serve`",
                settings.url
            ))),
        },
    }
}

async fn start_server(
    settings: &LocalSettings,
    root: &DataRoot,
    host: &str,
    port: u16,
) -> Result<()> {
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
        .args(&argv[1..])
        .arg("--bind")
        .arg(host)
        .arg("--port")
        .arg(port.to_string())
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
    tracing::info!(pid = child.id(), url = %settings.url, data_root = %root.path().display(), "started the local queue in the background");
    let deadline = Instant::now() + settings.start_timeout;
    let mut exited = None;
    loop {
        if probe(&settings.url).await == Probe::Up {
            // Reap it whenever it exits, so a long-lived caller collects no zombie.
            std::thread::spawn(move || child.wait());
            return Ok(());
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
                settings.url,
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
