//! The only code that sends HTTP: authentication, timeouts, retries with backoff.

use std::time::Duration;

use farm_core::{FarmError, JobId, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{HttpSettings, RetryPolicy};
use crate::parse::{CallInfo, Failure, farm_error};
use crate::profile::{AuthScheme, ErrorMapping, Method, Profile};

/// Header carrying one id per logical call, the same on every retry of it, so server logs
/// (and the test emulations) can tell a retry from a new call.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// One call, fully rendered.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation, for messages.
    pub operation: &'static str,
    /// Method.
    pub method: Method,
    /// Path after the base URL (already percent-encoded).
    pub path: String,
    /// Query pairs (a list parameter appears once per value).
    pub query: Vec<(String, String)>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<String>,
    /// Whether the call may be sent again after a retryable failure.
    pub retry: bool,
    /// The job it is about.
    pub job: Option<JobId>,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code (2xx).
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text (lossy UTF-8).
    pub body: String,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// The HTTP client of one farm.
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(HeaderName, SecretString)>,
    retry: RetryPolicy,
    errors: ErrorMapping,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field(
                "auth",
                &self.auth.as_ref().map(|(h, _)| format!("{h}: [REDACTED]")),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

impl Client {
    /// A client for `settings` speaking `profile`.
    pub fn new(settings: &HttpSettings, profile: &Profile) -> Result<Client> {
        let url = settings.check()?;
        let token = settings.resolve_token()?;
        let auth = match (&profile.auth.scheme, token) {
            (AuthScheme::None, _) | (_, None) => None,
            (AuthScheme::Bearer, Some(t)) => Some((
                reqwest::header::AUTHORIZATION,
                SecretString::from(format!("Bearer {}", t.expose_secret())),
            )),
            (AuthScheme::Header, Some(t)) => {
                let name = profile.auth.header.as_deref().unwrap_or_default();
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                    FarmError::config(format!(
                        "profile {}: auth.header {name:?}: {e}",
                        profile.name
                    ))
                })?;
                Some((name, t))
            }
        };
        if let Some((_, value)) = &auth
            && HeaderValue::from_str(value.expose_secret()).is_err()
        {
            return Err(FarmError::config(
                "the token has characters an HTTP header cannot carry",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("farm-http/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FarmError::Config {
                message: "cannot build the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        let base = format!(
            "{}{}",
            url.as_str().trim_end_matches('/'),
            profile.base_path.trim_end_matches('/')
        );
        Ok(Client {
            http,
            base,
            auth,
            retry: settings.retry,
            errors: profile.errors.clone(),
        })
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The base URL (without credentials).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `call`, retrying retryable failures when the call allows it.
    pub async fn send(&self, call: &Call) -> Result<Reply> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let attempts = if call.retry {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut retry = 0;
        loop {
            match self.send_once(call, &request_id).await {
                Ok(reply) => return Ok(reply),
                Err((err, retry_after)) if err.is_retryable() && retry + 1 < attempts => {
                    let delay = retry_after
                        .map(|d| d.min(Duration::from_millis(self.retry.max_delay_ms)))
                        .unwrap_or_else(|| self.retry.delay(retry));
                    tracing::debug!(operation = call.operation, error = %err, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// One exchange. Failures carry the server's `Retry-After`.
    async fn send_once(
        &self,
        call: &Call,
        request_id: &str,
    ) -> std::result::Result<Reply, (FarmError, Option<Duration>)> {
        let url = format!("{}{}", self.base, call.path);
        let target = format!("{:?} {}", call.method, call.path);
        let info = CallInfo {
            operation: call.operation,
            target: &target,
            job: call.job.as_ref(),
        };
        let mut builder = self
            .http
            .request(call.method.as_reqwest(), &url)
            .header(REQUEST_ID_HEADER, request_id)
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/problem+json, text/plain",
            );
        if !call.query.is_empty() {
            builder = builder.query(&call.query);
        }
        for (name, value) in &call.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some((name, value)) = &self.auth {
            let mut value = HeaderValue::from_str(value.expose_secret())
                .expect("checked when the client was built");
            value.set_sensitive(true);
            builder = builder.header(name.clone(), value);
        }
        if let Some(body) = &call.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return Err((farm_error(Failure::Transport(e), info, &self.errors), None)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Err((farm_error(Failure::Transport(e), info, &self.errors), None)),
        };
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if (200..300).contains(&status) {
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err((
            farm_error(
                Failure::Status {
                    status,
                    body,
                    retry_after,
                },
                info,
                &self.errors,
            ),
            retry_after,
        ))
    }
}
