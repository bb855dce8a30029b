//! Printing results and errors, for people (text) and programs (JSON).

use std::process::ExitCode;

use farm_core::{ErrorKind, FarmError, Job};
use serde_json::json;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// JSON on stdout (errors too, as {"error": {...}}).
    Json,
}

/// Exit statuses (documented in `farm --help`).
pub mod exit {
    pub const OTHER: u8 = 1;
    pub const NOT_FOUND: u8 = 3;
    pub const INVALID: u8 = 4;
    pub const UNSUPPORTED: u8 = 5;
    pub const UNAVAILABLE: u8 = 6;
    pub const PERMISSION: u8 = 7;
    pub const SCHEDULER: u8 = 8;
    pub const CONFIG: u8 = 9;
    pub const JOB_FAILED: u8 = 10;
    pub const JOB_CANCELLED: u8 = 11;
    pub const CHECKS_FAILED: u8 = 12;
}

/// The exit status for an error.
pub fn exit_code(err: &FarmError) -> u8 {
    match err.kind() {
        ErrorKind::JobNotFound => exit::NOT_FOUND,
        ErrorKind::InvalidRequest => exit::INVALID,
        ErrorKind::Unsupported => exit::UNSUPPORTED,
        ErrorKind::Unavailable => exit::UNAVAILABLE,
        ErrorKind::PermissionDenied => exit::PERMISSION,
        ErrorKind::Scheduler => exit::SCHEDULER,
        ErrorKind::Config => exit::CONFIG,
        _ => exit::OTHER,
    }
}

/// The error as JSON: kind, message, and the structured fields callers branch on.
pub fn error_json(err: &FarmError) -> serde_json::Value {
    let mut body = json!({ "kind": err.kind().as_str(), "message": err.to_string() });
    match err {
        FarmError::JobNotFound { id } => body["id"] = json!(id),
        FarmError::InvalidRequest { field, problem } => {
            body["field"] = json!(field);
            body["problem"] = json!(problem);
        }
        _ => {}
    }
    let chain = err.chain();
    if chain != err.to_string() {
        body["chain"] = json!(chain);
    }
    json!({ "error": body })
}

/// Prints an error in the chosen format and returns the exit status.
pub fn report_error(err: &FarmError, output: Output, verbose: bool) -> ExitCode {
    match output {
        Output::Json => println!("{}", error_json(err)),
        Output::Text => {
            if verbose {
                eprintln!("farm: error: {}", err.chain());
            } else {
                eprintln!("farm: error: {err}");
            }
        }
    }
    ExitCode::from(exit_code(err))
}

/// Prints a JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

/// `2026-11-22 14:03:07` in local time, or `-`.
pub fn time(ms: Option<i64>) -> String {
    use chrono::TimeZone;
    match ms.and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single()) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

/// A multi-line description of one job.
pub fn job_details(job: &Job) -> String {
    let mut out = format!("{}  {}  {}\n", job.id, job.state, job.name);
    let mut field = |k: &str, v: String| out.push_str(&format!("  {k:<12} {v}\n"));
    if let Some(native) = &job.native_state {
        field("native", native.clone());
    }
    if let Some(reason) = &job.reason {
        field("reason", reason.clone());
    }
    field("attempt", job.attempt.to_string());
    if let Some(p) = job.progress {
        field(
            "frames",
            format!("{} / {} done", p.frames_done, p.frames_total),
        );
    }
    field("submitted", time(job.submit_time));
    field("started", time(job.start_time));
    field("ended", time(job.end_time));
    if let Some(log) = &job.render_log_filename {
        field("log", log.clone());
    }
    if let Some(ctx) = job.render_context {
        field("context", ctx.to_string());
    }
    if !job.tags.is_empty() {
        field("tags", job.tags.join(" "));
    }
    out
}

/// A table of jobs, one per line.
pub fn job_table(jobs: &[Job]) -> String {
    let id_w = jobs
        .iter()
        .map(|j| j.id.as_str().len())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = format!(
        "{:<id_w$}  {:<9}  {:<7}  {:<19}  NAME\n",
        "ID", "STATE", "FRAMES", "SUBMITTED"
    );
    for j in jobs {
        let frames = j
            .progress
            .map(|p| format!("{}/{}", p.frames_done, p.frames_total))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<id_w$}  {:<9}  {:<7}  {:<19}  {}\n",
            j.id.as_str(),
            j.state.as_str(),
            frames,
            time(j.submit_time),
            j.name
        ));
    }
    out
}
