//! The agent's side of the agent protocol's transport: one HTTP client with the agent
//! token, replies sorted into what the agent does next ([`CallError`]), and retries.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use farm_core::FarmError;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug)]
pub(super) enum CallError {
    /// The server no longer knows the agent or the assignment.
    Gone(String),
    /// The token was refused.
    Refused(String),
    /// A log upload started past what the server has.
    Gap(u64),
    /// Not reachable, timed out, or shutting down: retry.
    Transport(String),
    /// Any other refusal.
    Server(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Gone(why) => write!(f, "gone: {why}"),
            CallError::Refused(why) => write!(f, "refused: {why}"),
            CallError::Gap(at) => write!(f, "the server expects the log from byte {at}"),
            CallError::Transport(why) => write!(f, "unreachable: {why}"),
            CallError::Server(why) => write!(f, "refused the call: {why}"),
        }
    }
}

pub(super) struct Link {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl Link {
    pub(super) fn new(server: &str, token: SecretString) -> Result<Link, FarmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| FarmError::config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Link {
            http,
            base: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        json: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose_secret())
            .timeout(timeout);
        if let Some(json) = json {
            request = request.json(&json);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(without_url(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Transport(without_url(&e)))?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CallError::Refused(detail),
            StatusCode::NOT_FOUND | StatusCode::GONE => CallError::Gone(detail),
            StatusCode::CONFLICT => match serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["expected_offset"].as_u64())
            {
                Some(expected) => CallError::Gap(expected),
                None => CallError::Server(detail),
            },
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                CallError::Transport(format!("{s}: {detail}"))
            }
            s => CallError::Server(format!("{s}: {detail}")),
        })
    }

    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        result: Result<(StatusCode, Bytes), CallError>,
    ) -> Result<Option<T>, CallError> {
        let (status, bytes) = result?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CallError::Server(format!("unreadable reply: {e}")))
    }
}

/// The error with its causes: reqwest's own message is terse ("error sending request").
fn without_url(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Retries transport failures with backoff until `deadline` (forever without one).
pub(super) async fn retry<F, Fut, T>(deadline: Option<Instant>, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match call().await {
            Err(CallError::Transport(why)) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(CallError::Transport(why));
                }
                tracing::debug!(%why, "server unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}
