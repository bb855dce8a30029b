//! The one error type every adapter returns.

use std::fmt;

use crate::job::JobId;

/// A boxed error kept as the `source` of a [`FarmError`], so the native cause is never lost.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for results of farm operations.
pub type Result<T, E = FarmError> = std::result::Result<T, E>;

/// Everything a farm operation can fail with.
///
/// Each variant is something a caller can act on; adapters convert their transport signals
/// (HTTP status, exit code and stderr) into one of these in exactly one function, keeping the
/// scheduler's own words in the message so users can debug their farm with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FarmError {
    /// The scheduler does not know this job (never existed, or purged from its records).
    #[error("job {id} not found")]
    JobNotFound {
        /// The id that was asked about.
        id: JobId,
    },

    /// The request (or an argument) is invalid; nothing reached the scheduler.
    #[error("invalid request: {field}: {problem}")]
    InvalidRequest {
        /// Dotted path of the offending field, e.g. `commands[1][0]` or `resources.cpus`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The adapter cannot do this (its capability is false).
    #[error("{operation} is not supported by the {adapter} adapter")]
    Unsupported {
        /// The trait operation, e.g. `stop`.
        operation: &'static str,
        /// The adapter kind, e.g. `htcondor`.
        adapter: String,
    },

    /// The scheduler could not be reached or is overloaded. Retrying later may succeed.
    #[error("scheduler unavailable: {message}")]
    Unavailable {
        /// What failed, with the scheduler's words when there are any.
        message: String,
        /// The transport error.
        #[source]
        source: Option<BoxError>,
    },

    /// The scheduler refused the credentials or the user may not do this.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The scheduler's refusal.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The scheduler answered with an error or with output that could not be understood.
    #[error("scheduler error: {message}")]
    Scheduler {
        /// The native message (stderr, `errors[]`, problem details), verbatim.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The farm configuration is wrong (unknown adapter, bad setting, missing file).
    #[error("configuration error: {message}")]
    Config {
        /// What is wrong and where.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A local file operation failed (staging render files, writing a job file, reading a log).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A coarse classification of [`FarmError`], for callers that branch without caring which
/// backend produced the error (exit codes, HTTP status mapping, retry loops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`FarmError::JobNotFound`].
    JobNotFound,
    /// [`FarmError::InvalidRequest`].
    InvalidRequest,
    /// [`FarmError::Unsupported`].
    Unsupported,
    /// [`FarmError::Unavailable`].
    Unavailable,
    /// [`FarmError::PermissionDenied`].
    PermissionDenied,
    /// [`FarmError::Scheduler`].
    Scheduler,
    /// [`FarmError::Config`].
    Config,
    /// [`FarmError::Io`].
    Io,
}

impl ErrorKind {
    /// A stable lower-case name, used in JSON output and the external-adapter protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::JobNotFound => "job_not_found",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Scheduler => "scheduler",
            ErrorKind::Config => "config",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FarmError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FarmError::JobNotFound { .. } => ErrorKind::JobNotFound,
            FarmError::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            FarmError::Unsupported { .. } => ErrorKind::Unsupported,
            FarmError::Unavailable { .. } => ErrorKind::Unavailable,
            FarmError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            FarmError::Scheduler { .. } => ErrorKind::Scheduler,
            FarmError::Config { .. } => ErrorKind::Config,
            FarmError::Io { .. } => ErrorKind::Io,
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// `JobNotFound` for `id`.
    pub fn job_not_found(id: impl Into<JobId>) -> FarmError {
        FarmError::JobNotFound { id: id.into() }
    }

    /// `InvalidRequest` naming a field and the problem.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> FarmError {
        FarmError::InvalidRequest {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// `Unsupported` for an operation of an adapter.
    pub fn unsupported(operation: &'static str, adapter: impl Into<String>) -> FarmError {
        FarmError::Unsupported {
            operation,
            adapter: adapter.into(),
        }
    }

    /// `Unavailable` without a source.
    pub fn unavailable(message: impl Into<String>) -> FarmError {
        FarmError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// `Scheduler` with the native message and no source.
    pub fn scheduler(message: impl Into<String>) -> FarmError {
        FarmError::Scheduler {
            message: message.into(),
            source: None,
        }
    }

    /// `PermissionDenied` without a source.
    pub fn permission_denied(message: impl Into<String>) -> FarmError {
        FarmError::PermissionDenied {
            message: message.into(),
            source: None,
        }
    }

    /// `Config` without a source.
    pub fn config(message: impl Into<String>) -> FarmError {
        FarmError::Config {
            message: message.into(),
            source: None,
        }
    }

    /// `Io` for a failed local file operation.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> FarmError {
        FarmError::Io {
            context: context.into(),
            source,
        }
    }

    /// The message followed by every `source` in the chain, one per line, for `-v` output.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            out.push_str("\n  caused by: ");
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }
}

/// serde_yaml begins its messages with the path of the value it was reading (`farms.a: `),
/// which callers that name the field themselves would show twice; this drops it.
pub(crate) fn without_path_prefix<'m>(message: &'m str, path: &str) -> &'m str {
    match message.split_once(": ") {
        Some((head, rest))
            if !head.is_empty()
                && (path == head
                    || path.starts_with(&format!("{head}."))
                    || path.starts_with(&format!("{head}["))) =>
        {
            rest
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_wrong() {
        assert_eq!(
            FarmError::job_not_found("42").to_string(),
            "job 42 not found"
        );
        assert_eq!(
            FarmError::invalid("commands[0]", "empty argv").to_string(),
            "invalid request: commands[0]: empty argv"
        );
        assert_eq!(
            FarmError::unsupported("stop", "htcondor").to_string(),
            "stop is not supported by the htcondor adapter"
        );
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(FarmError::unavailable("down").is_retryable());
        assert!(!FarmError::scheduler("no").is_retryable());
        assert!(!FarmError::job_not_found("1").is_retryable());
    }

    #[test]
    fn chain_keeps_the_native_cause() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused by 127.0.0.1:6820",
        );
        let err = FarmError::Unavailable {
            message: "cannot reach slurmrestd".into(),
            source: Some(Box::new(io)),
        };
        let chain = err.chain();
        assert!(chain.contains("cannot reach slurmrestd"));
        assert!(chain.contains("caused by: refused by 127.0.0.1:6820"));
        assert_eq!(err.kind().as_str(), "unavailable");
    }
}
