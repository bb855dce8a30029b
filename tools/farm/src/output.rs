//! Printing results and errors, for people (text) and programs (JSON).

use std::process::ExitCode;

use farm_core::{ErrorKind, FarmError, Job, JobId, JobState, Result};
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
    pub const INTERRUPTED: u8 = 130;
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

/// A command-line usage error (exit 2): as `{"error": {"kind": "usage", ...}}` on stdout
/// when the arguments ask for JSON, else clap's own text. Help and version go out as clap
/// prints them.
pub fn usage_error(err: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    let shown = matches!(
        err.kind(),
        Clap::DisplayHelp | Clap::DisplayVersion | Clap::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || shown {
        err.exit();
    }
    let text = err.render().to_string();
    // The first paragraph: `error: the following required arguments were not provided:
    //   <IDS>...` is one message.
    let message = text
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let usage = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(str::to_owned);
    println!(
        "{}",
        json!({ "error": { "kind": "usage", "message": message, "usage": usage } })
    );
    ExitCode::from(2)
}

/// Whether the command line asks for JSON output (`-o json`, `--output json`,
/// `--output=json`, `-ojson`), for errors found before the arguments are parsed.
pub fn asks_for_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        let next_is_json = || args.get(i + 1).is_some_and(|n| n == "json");
        match a.as_str() {
            "-o" | "--output" => next_is_json(),
            "--output=json" | "-ojson" | "-o=json" => true,
            _ => false,
        }
    })
}

/// What a command did with each of its ids, and the ids no job has: printed as they come in
/// text (unknown ids on stderr), as one `{KEY: [...], "errors": [...]}` document in JSON, so
/// the shape never depends on how many ids were given or found. Exits 3 when an id was
/// not found.
pub struct Report {
    key: &'static str,
    items: Vec<serde_json::Value>,
    errors: Vec<FarmError>,
}

impl Report {
    /// A report whose items are listed under `key`.
    pub fn new(key: &'static str) -> Report {
        Report {
            key,
            items: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds an item (printed by the caller in text).
    pub fn item(&mut self, value: impl serde::Serialize) {
        self.items
            .push(serde_json::to_value(value).expect("serialisable"));
    }

    /// What `stop` or `start` did to a job: `outcome` is `stopped`, `started` or
    /// `unchanged`; `now` the job that runs now (a farm may start a job again as a new one).
    pub fn outcome(
        &mut self,
        output: Output,
        id: &JobId,
        outcome: &str,
        state: JobState,
        now: &JobId,
        message: String,
    ) {
        if output == Output::Text {
            println!("{message}");
        }
        self.item(
            json!({ "id": id, "outcome": outcome, "state": state, "now": now, "message": message }),
        );
    }

    /// Notes an id no job has; any other error ends the command.
    pub fn not_found(&mut self, output: Output, err: FarmError) -> Result<()> {
        if err.kind() != ErrorKind::JobNotFound {
            return Err(err);
        }
        if output == Output::Text {
            eprintln!("farm: error: {err}");
        }
        self.errors.push(err);
        Ok(())
    }

    /// Prints the JSON document (in JSON) and returns the exit status.
    pub fn finish(self, output: Output) -> ExitCode {
        if output == Output::Json {
            let errors: Vec<_> = self
                .errors
                .iter()
                .map(|e| error_json(e)["error"].take())
                .collect();
            let mut doc = serde_json::Map::new();
            doc.insert(self.key.to_owned(), self.items.into());
            doc.insert("errors".to_owned(), errors.into());
            print_json(&doc);
        }
        match self.errors.first() {
            Some(err) => ExitCode::from(exit_code(err)),
            None => ExitCode::SUCCESS,
        }
    }
}

/// `1 problem`, `2 problems`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
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
