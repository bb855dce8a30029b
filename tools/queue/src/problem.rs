//! Problem documents (RFC 9457): every error either protocol answers, and the one mapping
//! from store outcomes to HTTP statuses.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::AppState;
use crate::store::{Store, StoreError};

/// An RFC 9457 problem document with its status.
#[derive(Debug)]
pub struct Problem {
    pub(crate) status: StatusCode,
    title: &'static str,
    detail: String,
    pub(crate) field: Option<String>,
    job_id: Option<String>,
    extra: Option<Box<(&'static str, serde_json::Value)>>,
}

impl Problem {
    /// A problem with a status, a short title and a detail.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            field: None,
            job_id: None,
            extra: None,
        }
    }

    /// 400: a parameter or body is not well-formed.
    pub fn bad_request(detail: impl Into<String>, field: Option<&str>) -> Problem {
        Problem {
            field: field.map(str::to_owned),
            ..Problem::new(StatusCode::BAD_REQUEST, "Bad request", detail)
        }
    }

    /// 404 for any path that names nothing.
    pub fn no_route() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found", "no such resource")
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    /// 503: shutting down or overloaded.
    pub fn busy(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail)
    }

    /// 507: the data root's file system is full; nothing was changed.
    pub fn disk_full(data_root: &std::path::Path) -> Problem {
        Problem::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "Insufficient storage",
            format!(
                "the queue's data root {} is full (no space left on its file system): nothing \
                 was changed; free space there and retry",
                data_root.display()
            ),
        )
    }

    /// Adds one more member to the document.
    pub fn with(mut self, key: &'static str, value: serde_json::Value) -> Problem {
        self.extra = Some(Box::new((key, value)));
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some(id) = self.job_id {
            body["job_id"] = json!(id);
        }
        if let Some(extra) = self.extra {
            let (key, value) = *extra;
            body[key] = value;
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The one place store outcomes become HTTP statuses.
impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Problem {
        match err {
            StoreError::JobNotFound(id) => Problem {
                job_id: Some(id.clone()),
                ..Problem::new(
                    StatusCode::NOT_FOUND,
                    "Job not found",
                    format!("job {id} not found"),
                )
            },
            StoreError::Invalid { field, problem } => Problem {
                field: Some(field.clone()),
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid request",
                    format!("{field}: {problem}"),
                )
            },
            StoreError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "Conflict", detail),
            StoreError::Gone(detail) => Problem::new(StatusCode::GONE, "Gone", detail),
            StoreError::LogGap(expected) => Problem::new(
                StatusCode::CONFLICT,
                "Log offset gap",
                format!("the server has {expected} bytes"),
            )
            .with("expected_offset", json!(expected)),
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                Problem::busy("the queue database is busy; retry")
            }
            other => {
                tracing::error!(error = %other, "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    other.to_string(),
                )
            }
        }
    }
}

/// Runs a blocking store operation off the async workers.
pub async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Problem> {
    let store = Arc::clone(&state.store);
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Err(e)) if e.is_disk_full() => {
            tracing::warn!(data_root = %state.store.data_dir().display(), error = %e, "the data root is full: changes are refused until space is freed");
            Err(Problem::disk_full(state.store.data_dir()))
        }
        Ok(result) => result.map_err(Problem::from),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "a store operation panicked",
            ))
        }
    }
}
