//! Settings of an `http` farm: where the scheduler is, how to authenticate, how patient to
//! be, and which profile describes its API.
//!
//! ```yaml
//! farms:
//!   queue:
//!     adapter: http
//!     settings:
//!       url: http://render-queue:7575
//!       token_env: RENDER_QUEUE_TOKEN      # or `token:` (never printed)
//!       timeout: 30s
//!       connect_timeout: 5s
//!       retry: {max_attempts: 4, base_delay_ms: 100, max_delay_ms: 5000}
//!       profile: builtin                   # or deadline-web-service, or a YAML file
//! ```

use std::time::Duration;

use farm_core::{Capabilities, FarmError, Result};
use secrecy::SecretString;
use serde::Deserialize;

/// Environment variable read for the token when neither `token` nor `token_env` is set.
pub const DEFAULT_TOKEN_ENV: &str = "FARM_HTTP_TOKEN";

/// How calls that may safely be repeated are retried: exponential backoff with full jitter
/// (each delay is uniform in `0..=min(max_delay, base_delay * 2^n)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, including the first; 1 disables retries.
    pub max_attempts: u32,
    /// The first delay's upper bound.
    pub base_delay_ms: u64,
    /// The largest delay.
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay_ms: 100,
            max_delay_ms: 5000,
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay_ms: 0,
        max_delay_ms: 0,
    };

    /// The delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self
            .base_delay_ms
            .saturating_mul(1u64 << retry.min(30))
            .min(self.max_delay_ms);
        Duration::from_millis(if cap == 0 { 0 } else { fastrand::u64(0..=cap) })
    }
}

/// Settings of the `http` adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Base URL of the scheduler (`http://127.0.0.1:7575`); the profile's paths are
    /// appended to it.
    pub url: String,
    /// The bearer token. Never logged: `Debug` prints `[REDACTED]`; read as raw text and
    /// never quoted in an error.
    #[serde(default, deserialize_with = "farm_core::secret::optional_token")]
    pub token: Option<SecretString>,
    /// Variable holding the token when `token` is not set (default `FARM_HTTP_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Longest wait for one HTTP exchange (default 30 s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub timeout: Duration,
    /// Longest wait to connect (default 5 s).
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub connect_timeout: Duration,
    /// Retries for calls that are safe to repeat.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// `builtin` (our protocol), another shipped profile's name, or a profile file.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Overrides the profile's capabilities (`stage_files` follows the farm's staging).
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// Compare the profile's capabilities with the server's once, warning on mismatch.
    #[serde(default = "yes")]
    pub verify_capabilities: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_profile() -> String {
    "builtin".into()
}

fn yes() -> bool {
    true
}

impl HttpSettings {
    /// Settings for a scheduler speaking our protocol at `url`, with the defaults above.
    pub fn new(url: impl Into<String>) -> HttpSettings {
        HttpSettings {
            url: url.into(),
            token: None,
            token_env: None,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            retry: RetryPolicy::default(),
            profile: default_profile(),
            capabilities: None,
            verify_capabilities: true,
        }
    }

    /// Sets the token.
    pub fn with_token(mut self, token: impl Into<String>) -> HttpSettings {
        self.token = Some(SecretString::from(token.into()));
        self
    }

    /// Sets both timeouts' exchange part.
    pub fn with_timeout(mut self, timeout: Duration) -> HttpSettings {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> HttpSettings {
        self.retry = retry;
        self
    }

    /// Selects a profile: a shipped profile's name or a file.
    pub fn with_profile(mut self, profile: impl Into<String>) -> HttpSettings {
        self.profile = profile.into();
        self
    }

    /// The token: `token`, else the variable named by `token_env` (default
    /// `FARM_HTTP_TOKEN`). A named variable that is unset is a configuration error.
    pub fn resolve_token(&self) -> Result<Option<SecretString>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        match &self.token_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(SecretString::from(v))),
                _ => Err(FarmError::config(format!(
                    "settings.token_env names {var}, which is not set"
                ))),
            },
            None => Ok(std::env::var(DEFAULT_TOKEN_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)),
        }
    }

    /// Checks the URL (scheme and host) so a typo fails at load time.
    pub fn check(&self) -> Result<reqwest::Url> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| FarmError::config(format!("settings.url {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(FarmError::config(format!(
                "settings.url {:?} must be an http:// or https:// URL with a host",
                self.url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FarmError::config(
                "settings.url must not carry credentials; use token or token_env",
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(yaml: &str) -> std::result::Result<HttpSettings, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_durations_and_unknown_keys() {
        let s = parse("url: http://q:7575\n").unwrap();
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.retry, RetryPolicy::default());
        assert_eq!(s.profile, "builtin");
        let s =
            parse("url: http://q\ntimeout: 1m 30s\nconnect_timeout: 2\nretry: {max_attempts: 1}\n")
                .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.retry.max_attempts, 1);
        assert!(
            parse("url: http://q\ntimeout: soon\n")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            parse("url: http://q\ntimout: 3s\n")
                .unwrap_err()
                .contains("unknown field `timout`")
        );
    }

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let s = parse("url: http://q\ntoken: s3cr3t-t0ken\n").unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t-t0ken"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
        assert_eq!(
            s.resolve_token().unwrap().unwrap().expose_secret(),
            "s3cr3t-t0ken"
        );
    }

    #[test]
    fn a_named_token_variable_must_exist() {
        let s = HttpSettings {
            token_env: Some("FARM_HTTP_TEST_SURELY_UNSET_VAR".into()),
            ..HttpSettings::new("http://q")
        };
        let err = s.resolve_token().unwrap_err().to_string();
        assert!(err.contains("FARM_HTTP_TEST_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn urls_are_checked() {
        assert!(HttpSettings::new("http://127.0.0.1:7575").check().is_ok());
        assert!(HttpSettings::new("ftp://x").check().is_err());
        assert!(HttpSettings::new("not a url").check().is_err());
        let err = HttpSettings::new("http://user:pw@host")
            .check()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 250,
        };
        for _ in 0..200 {
            assert!(p.delay(0) <= Duration::from_millis(100));
            assert!(p.delay(1) <= Duration::from_millis(200));
            assert!(p.delay(10) <= Duration::from_millis(250));
        }
        assert_eq!(RetryPolicy::NONE.delay(3), Duration::ZERO);
    }
}
