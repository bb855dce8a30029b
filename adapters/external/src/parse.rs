//! The program's replies -> values and `FarmError`s. Pure: [`decode_reply`] is the one
//! place protocol errors become `FarmError`s.

use farm_core::{Capabilities, FarmError, JobId, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::PROTOCOL_VERSION;

/// What the program says about itself in reply to `hello`.
#[derive(Debug, Deserialize)]
pub struct Hello {
    /// The adapter's own name, used in messages.
    pub adapter: String,
    /// What it supports.
    pub capabilities: Capabilities,
}

/// The one place protocol errors become `FarmError`s.
pub fn decode_reply(reply: Value, name: &str) -> Result<Value> {
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

/// Checks the `hello` reply of farm `name`'s program: the protocol it speaks and what it
/// says about itself.
pub fn check_hello(name: &str, value: Value) -> Result<Hello> {
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

/// Fills in the id of a `JobNotFound` the adapter reported without one.
pub fn with_id(err: FarmError, id: &JobId) -> FarmError {
    match err {
        FarmError::JobNotFound { id: found } if found.as_str().is_empty() => {
            FarmError::job_not_found(id)
        }
        other => other,
    }
}
