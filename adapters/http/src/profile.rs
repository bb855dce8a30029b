//! Profiles: how one HTTP scheduler API is spoken, as data.
//!
//! A profile names each operation's method, path, query, headers and body template, where
//! the job id, state, times and log are in responses (JSON pointers), and the table from the
//! scheduler's native states onto the five. Our own protocol is simply the built-in profile
//! (`fixtures/profiles/farm-v1.yaml`). Profiles are checked completely when loaded, with the
//! line of every mistake, so a typo fails `farm farms`, not a render at 3 a.m.

use std::collections::BTreeMap;
use std::path::Path;

use farm_core::{Capabilities, FarmError, JobState, Result};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::template::{BodyTemplate, TextTemplate, VarPath};

/// The built-in profile: the protocol in `docs/http-scheduler.openapi.yaml`.
pub const BUILTIN_YAML: &str = include_str!("../../../fixtures/profiles/farm-v1.yaml");

/// The shipped profile for Deadline's Web Service.
pub const DEADLINE_YAML: &str =
    include_str!("../../../fixtures/profiles/deadline-web-service.yaml");

/// The shipped profile for Ray's Jobs REST API.
pub const RAY_YAML: &str = include_str!("../../../fixtures/profiles/ray-jobs.yaml");

/// Profiles shipped with the adapter: `(name, yaml)`.
pub const SHIPPED: &[(&str, &str)] = &[
    ("builtin", BUILTIN_YAML),
    ("deadline-web-service", DEADLINE_YAML),
    ("ray-jobs", RAY_YAML),
];

/// A JSON pointer (RFC 6901), checked when the profile loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(pub String);

impl Pointer {
    /// Checks the syntax: empty, or `/` followed by segments where `~` is `~0` or `~1`.
    pub fn parse(text: &str) -> std::result::Result<Pointer, String> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(format!(
                "{text:?} is not a JSON pointer: it must be empty or start with `/`"
            ));
        }
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')) {
                return Err(format!(
                    "{text:?} is not a JSON pointer: `~` must be followed by 0 or 1"
                ));
            }
        }
        Ok(Pointer(text.to_owned()))
    }

    /// The value it points at.
    pub fn find<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        value.pointer(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Pointer::parse(&text).map_err(de::Error::custom)
    }
}

/// A native state mapped onto one of the five; `~` (unmapped) is refused with its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped(pub JobState);

impl<'de> Deserialize<'de> for Mapped {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Err(de::Error::custom(
                "this native state is unmapped: map it to Waiting, Running, Completed, Cancelled or Failed",
            )),
            Some(word) => word.parse().map(Mapped).map_err(de::Error::custom),
        }
    }
}

/// HTTP methods a profile may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub enum Method {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
}

impl Method {
    /// As reqwest's method.
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::GET => reqwest::Method::GET,
            Method::POST => reqwest::Method::POST,
            Method::PUT => reqwest::Method::PUT,
            Method::PATCH => reqwest::Method::PATCH,
            Method::DELETE => reqwest::Method::DELETE,
        }
    }
}

/// How the token is sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>`.
    #[default]
    Bearer,
    /// The token as the value of the header named in `auth.header`.
    Header,
    /// No credentials.
    None,
}

/// Authentication.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The scheme.
    #[serde(default)]
    pub scheme: AuthScheme,
    /// Header name for the `header` scheme (`X-Api-Key`).
    #[serde(default)]
    pub header: Option<String>,
}

/// What job ids look like. An id of another shape names no job: the adapter answers
/// `JobNotFound` without asking (servers often answer a malformed id with 400 or 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// Anything non-empty.
    #[default]
    Any,
    /// A UUID.
    Uuid,
    /// 24 hexadecimal digits (a MongoDB ObjectId, as Deadline uses).
    Hex24,
    /// Decimal digits.
    Digits,
}

impl IdFormat {
    /// Whether `id` has this shape.
    pub fn accepts(self, id: &str) -> bool {
        !id.is_empty()
            && match self {
                IdFormat::Any => true,
                IdFormat::Uuid => uuid::Uuid::parse_str(id).is_ok(),
                IdFormat::Hex24 => id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                IdFormat::Digits => id.bytes().all(|b| b.is_ascii_digit()),
            }
    }
}

/// How a submit is made safe to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idempotency {
    /// The server deduplicates by a header the request carries (`Idempotency-Key`).
    Key,
    /// The adapter looks for a job with the request's render context before (re)submitting.
    Lookup,
    /// Neither: a submit is never retried.
    None,
}

/// Where a value comes from in a response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A response header.
    #[serde(default)]
    pub header: Option<String>,
    /// A pointer into the JSON body.
    #[serde(default)]
    pub pointer: Option<Pointer>,
    /// log text: the server sends the whole log every time; the adapter returns what
    /// follows the offset (and the next offset is the whole log's length).
    #[serde(default)]
    pub whole: bool,
}

/// One HTTP call and where its answer is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// HTTP method.
    pub method: Method,
    /// Path template, relative to the base URL.
    pub path: TextTemplate,
    /// Query parameters; a list value repeats the parameter, `null` leaves it out.
    #[serde(default)]
    pub query: BTreeMap<String, TextTemplate>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, TextTemplate>,
    /// The JSON body; `${request}` alone sends the request's canonical JSON.
    #[serde(default)]
    pub body: Option<BodyTemplate>,
    /// submit/start: the job id in the response.
    #[serde(default)]
    pub id: Option<Pointer>,
    /// get: the job record in the response (an empty list or `null` there is not found).
    #[serde(default)]
    pub record: Option<Pointer>,
    /// list: the array of records.
    #[serde(default)]
    pub items: Option<Pointer>,
    /// list: the next page's cursor (`null` or absent on the last page).
    #[serde(default)]
    pub next_cursor: Option<Pointer>,
    /// list: five states -> native words for `${filter.native_states}`.
    #[serde(default)]
    pub state_filter: BTreeMap<JobState, Vec<String>>,
    /// submit: how retries are made safe.
    #[serde(default)]
    pub idempotency: Option<Idempotency>,
    /// log: the text (default: the whole body).
    #[serde(default)]
    pub text: Option<Source>,
    /// log: the next offset.
    #[serde(default)]
    pub next_offset: Option<Source>,
    /// log: whether the log is complete (`true`).
    #[serde(default)]
    pub complete: Option<Source>,
    /// failure_reason: the reason text in the response.
    #[serde(default)]
    pub reason: Option<Pointer>,
}

/// The operations a profile defines. Missing optional ones turn their capability off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    /// Submit a job (required).
    pub submit: Operation,
    /// Fetch one job (required).
    pub get: Operation,
    /// List jobs.
    #[serde(default)]
    pub list: Option<Operation>,
    /// Stop a job.
    #[serde(default)]
    pub stop: Option<Operation>,
    /// Run a finished job again.
    #[serde(default)]
    pub start: Option<Operation>,
    /// Run again only a job's failed and cancelled tasks.
    #[serde(default)]
    pub retry_failed: Option<Operation>,
    /// Read the render log from an offset.
    #[serde(default)]
    pub log: Option<Operation>,
    /// Validate a request without storing it.
    #[serde(default)]
    pub check: Option<Operation>,
    /// The server's capabilities (cross-checked once, with a warning on mismatch).
    #[serde(default)]
    pub capabilities: Option<Operation>,
    /// Fetched for a Failed job whose record carries no reason.
    #[serde(default)]
    pub failure_reason: Option<Operation>,
}

/// How times are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Milliseconds since the epoch.
    #[default]
    EpochMs,
    /// Seconds since the epoch.
    EpochS,
    /// RFC 3339 text; times before 1971 (Deadline's `0001-01-01`) mean "not yet".
    Rfc3339,
}

/// Where each `Job` field is in a record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMapping {
    /// The id.
    pub id: Pointer,
    /// The name.
    pub name: Pointer,
    /// The native state (text or number), looked up in `states`.
    pub state: Pointer,
    /// The scheduler's own word, when it differs from what `state` holds.
    #[serde(default)]
    pub native_state: Option<Pointer>,
    /// Why it is in this state.
    #[serde(default)]
    pub reason: Option<Pointer>,
    /// The attempt number.
    #[serde(default)]
    pub attempt: Option<Pointer>,
    /// Submit time.
    #[serde(default)]
    pub submit_time: Option<Pointer>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<Pointer>,
    /// End time.
    #[serde(default)]
    pub end_time: Option<Pointer>,
    /// The states in which `start_time` is reported (default: all). For schedulers that
    /// stamp a start time on jobs that are still queued (Ray sets it while PENDING).
    #[serde(default)]
    pub start_time_in: Option<Vec<JobState>>,
    /// How the three times are written.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// The render log path.
    #[serde(default)]
    pub render_log_filename: Option<Pointer>,
    /// The render context.
    #[serde(default)]
    pub render_context: Option<Pointer>,
    /// The tags: a list, or text split by `tags_separator`.
    #[serde(default)]
    pub tags: Option<Pointer>,
    /// Separator when tags are one string.
    #[serde(default)]
    pub tags_separator: Option<String>,
    /// Frames done.
    #[serde(default)]
    pub frames_done: Option<Pointer>,
    /// Frames in the job.
    #[serde(default)]
    pub frames_total: Option<Pointer>,
}

/// A state that depends on more than the native state word (Deadline's `Active` is
/// Running once a chunk renders).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refinement {
    /// The native state this refines.
    pub native: String,
    /// Applies when the number here is above zero.
    pub when_positive: Pointer,
    /// The state then.
    pub state: Mapped,
    /// The native word shown then.
    #[serde(default)]
    pub label: Option<String>,
}

/// The native-state table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateTable {
    /// Native state (as text) -> one of the five.
    pub table: BTreeMap<String, Mapped>,
    /// Native state -> the word shown as `native_state` (for numeric codes).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Native state -> reason, when the record has none.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// Refinements, first match wins.
    #[serde(default)]
    pub refine: Vec<Refinement>,
}

/// Where an error response keeps its message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorMapping {
    /// The message (RFC 9457 `detail`).
    #[serde(default = "detail_pointer")]
    pub message: Pointer,
    /// A short title, used when there is no message.
    #[serde(default = "title_pointer")]
    pub title: Pointer,
    /// The offending request field (for 422).
    #[serde(default = "field_pointer")]
    pub field: Pointer,
}

fn detail_pointer() -> Pointer {
    Pointer("/detail".into())
}
fn title_pointer() -> Pointer {
    Pointer("/title".into())
}
fn field_pointer() -> Pointer {
    Pointer("/field".into())
}

impl Default for ErrorMapping {
    fn default() -> Self {
        ErrorMapping {
            message: detail_pointer(),
            title: title_pointer(),
            field: field_pointer(),
        }
    }
}

/// A whole profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name, used in messages and as the key of `native` entries in requests.
    pub name: String,
    /// One line about the API.
    #[serde(default)]
    pub description: Option<String>,
    /// Prefix added to every path (`/api`).
    #[serde(default)]
    pub base_path: String,
    /// Authentication.
    #[serde(default)]
    pub auth: Auth,
    /// What ids look like.
    #[serde(default)]
    pub ids: IdFormat,
    /// What a conforming server supports (`stage_files` is decided by the farm's staging
    /// configuration instead).
    pub capabilities: Capabilities,
    /// The calls.
    pub operations: Operations,
    /// Where job fields are in a record.
    pub job: JobMapping,
    /// The native-state table.
    pub states: StateTable,
    /// Where error messages are.
    #[serde(default)]
    pub errors: ErrorMapping,
    /// Files `render` writes beside the submit body (Deadline's `.job` pair).
    #[serde(default)]
    pub files: Vec<crate::files::ExtraFile>,
}

/// Which variables each operation provides.
fn provided(op: &str) -> &'static [&'static str] {
    match op {
        "submit" | "check" => &["request", "derived", "native"],
        "get" | "stop" | "start" | "retry_failed" | "failure_reason" => &["id"],
        "log" => &["id", "offset"],
        "list" => &["filter", "cursor"],
        _ => &[],
    }
}

impl Profile {
    /// The built-in profile.
    pub fn builtin() -> Profile {
        Profile::from_yaml_str(BUILTIN_YAML, "builtin profile")
            .expect("the built-in profile is valid")
    }

    /// A shipped profile by name, or a profile file by path.
    pub fn load(choice: &str) -> Result<Profile> {
        if let Some((name, yaml)) = SHIPPED.iter().find(|(n, _)| *n == choice) {
            return Profile::from_yaml_str(yaml, &format!("{name} profile"));
        }
        let path = Path::new(choice);
        let text = std::fs::read_to_string(path).map_err(|e| FarmError::Config {
            message: format!(
                "cannot read HTTP profile {}: {e} (shipped profiles: {})",
                path.display(),
                SHIPPED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            source: Some(Box::new(e)),
        })?;
        Profile::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses and checks a profile; every error names `origin` and the line.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Profile> {
        let de = serde_yaml::Deserializer::from_str(text);
        let profile: Profile = serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let message = core_message(&err.inner().to_string());
            let needle = message.find("${").and_then(|at| {
                message[at..]
                    .find('}')
                    .map(|end| &message[at..at + end + 1])
            });
            let at = locate(text, &path, needle)
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            FarmError::config(format!("{origin}{at}: {path}: {message}"))
        })?;
        profile.check().map_err(|(path, needle, message)| {
            let at = locate(text, &path, needle.as_deref())
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            FarmError::config(format!("{origin}{at}: {message}"))
        })?;
        Ok(profile)
    }

    /// Checks what deserialization cannot: variables available to each operation, state
    /// names used outside the table. Errors are `(path, text to find below it, message)`.
    fn check(&self) -> std::result::Result<(), (String, Option<String>, String)> {
        let ops = &self.operations;
        let all: [(&str, Option<&Operation>); 10] = [
            ("submit", Some(&ops.submit)),
            ("get", Some(&ops.get)),
            ("list", ops.list.as_ref()),
            ("stop", ops.stop.as_ref()),
            ("start", ops.start.as_ref()),
            ("retry_failed", ops.retry_failed.as_ref()),
            ("log", ops.log.as_ref()),
            ("check", ops.check.as_ref()),
            ("capabilities", ops.capabilities.as_ref()),
            ("failure_reason", ops.failure_reason.as_ref()),
        ];
        for (name, op) in all {
            let Some(op) = op else { continue };
            let mut vars: Vec<&VarPath> = op.path.0.vars();
            vars.extend(op.query.values().flat_map(|t| t.0.vars()));
            vars.extend(op.headers.values().flat_map(|t| t.0.vars()));
            if let Some(body) = &op.body {
                vars.extend(body.0.vars());
            }
            for var in vars {
                if !provided(name).contains(&var.root()) {
                    return Err((
                        format!("operations.{name}"),
                        Some(var.to_string()),
                        format!(
                            "operations.{name} uses {var}, but {name} provides only {}",
                            if provided(name).is_empty() {
                                "no variables".to_owned()
                            } else {
                                provided(name).join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        for (i, file) in self.files.iter().enumerate() {
            for var in file.body.0.vars() {
                if !provided("submit").contains(&var.root()) {
                    return Err((
                        format!("files[{i}]"),
                        Some(var.to_string()),
                        format!(
                            "files: {} uses {var}, but files provide only {}",
                            file.name,
                            provided("submit").join(", ")
                        ),
                    ));
                }
            }
        }
        crate::files::check(&self.files)?;
        if ops.submit.id.is_none() {
            return Err((
                "operations.submit".into(),
                None,
                "operations.submit needs `id`: where the new job's id is in the response".into(),
            ));
        }
        if let Some(list) = &ops.list
            && list.items.is_none()
        {
            return Err((
                "operations.list".into(),
                None,
                "operations.list needs `items`: where the records are in the response".into(),
            ));
        }
        let st = &self.states;
        let known = |word: &str| st.table.contains_key(word);
        for word in st.labels.keys().chain(st.reasons.keys()) {
            if !known(word) {
                return Err((
                    "states".into(),
                    Some(word.clone()),
                    format!("states: {word:?} has a label or reason but no entry in states.table"),
                ));
            }
        }
        for r in &st.refine {
            if !known(&r.native) {
                return Err((
                    "states.refine".into(),
                    Some(format!("{:?}", r.native)),
                    format!(
                        "states.refine: native state {:?} is not in states.table",
                        r.native
                    ),
                ));
            }
        }
        if let Some(list) = &ops.list {
            for words in list.state_filter.values() {
                for word in words {
                    if !known(word) && !st.labels.values().any(|l| l == word) {
                        return Err((
                            "operations.list.state_filter".into(),
                            Some(word.clone()),
                            format!(
                                "operations.list.state_filter: {word:?} is not a native state of states.table"
                            ),
                        ));
                    }
                }
            }
        }
        let caps = &self.capabilities;
        for (flag, op, name) in [
            (caps.list_jobs, ops.list.is_some(), "list"),
            (caps.stop, ops.stop.is_some(), "stop"),
            (caps.start, ops.start.is_some(), "start"),
            (
                caps.retry_failed,
                ops.retry_failed.is_some(),
                "retry_failed",
            ),
            (caps.check, ops.check.is_some(), "check"),
            (caps.read_log, ops.log.is_some(), "log"),
            (
                caps.render_log,
                self.job.render_log_filename.is_some(),
                "job.render_log_filename",
            ),
        ] {
            if flag && !op {
                return Err((
                    "capabilities".into(),
                    None,
                    format!("capabilities claim what operations lack: define {name}"),
                ));
            }
        }
        if caps.job_times && (self.job.start_time.is_none() || self.job.end_time.is_none()) {
            return Err((
                "capabilities".into(),
                None,
                "capabilities.job_times is on (the default), but job.start_time or job.end_time is not mapped: map both, or say job_times: false for a scheduler that reports no times".into(),
            ));
        }
        if caps.idempotent_submit
            && ops.submit.idempotency.unwrap_or(Idempotency::None) == Idempotency::None
        {
            return Err((
                "capabilities.idempotent_submit".into(),
                None,
                "capabilities.idempotent_submit needs operations.submit.idempotency: key or lookup"
                    .into(),
            ));
        }
        if ops.submit.idempotency == Some(Idempotency::Key) && ops.submit.headers.is_empty() {
            return Err((
                "operations.submit.idempotency".into(),
                None,
                "submit idempotency `key` needs the key header in operations.submit.headers (Idempotency-Key: ${request.render_context})".into(),
            ));
        }
        if ops.submit.idempotency == Some(Idempotency::Lookup)
            && (ops.list.is_none() || self.job.render_context.is_none())
        {
            return Err((
                "operations.submit.idempotency".into(),
                None,
                "submit idempotency `lookup` needs operations.list and job.render_context".into(),
            ));
        }
        if self.auth.scheme == AuthScheme::Header && self.auth.header.is_none() {
            return Err((
                "auth".into(),
                None,
                "auth scheme `header` needs auth.header (the header's name)".into(),
            ));
        }
        Ok(())
    }

    /// Looks a native state up: `(state, word to show, default reason)`. An unknown word is
    /// Failed with the raw word in the reason, never a silent success.
    pub fn map_state(
        &self,
        native: &str,
        record: &serde_json::Value,
    ) -> (JobState, String, Option<String>) {
        let st = &self.states;
        for r in &st.refine {
            if r.native == native
                && r.when_positive
                    .find(record)
                    .and_then(serde_json::Value::as_f64)
                    .is_some_and(|n| n > 0.0)
            {
                let label = r.label.clone().unwrap_or_else(|| native.to_owned());
                return (r.state.0, label, st.reasons.get(native).cloned());
            }
        }
        match st.table.get(native) {
            Some(Mapped(state)) => (
                *state,
                st.labels
                    .get(native)
                    .cloned()
                    .unwrap_or_else(|| native.to_owned()),
                st.reasons.get(native).cloned(),
            ),
            None => (
                JobState::Failed,
                native.to_owned(),
                Some(format!("unknown native state {native}")),
            ),
        }
    }

    /// The capabilities this profile declares.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// serde_yaml's message without its own path prefix and imprecise location suffix.
fn core_message(full: &str) -> String {
    let mut text = full;
    if let Some(at) = text.rfind(" at line ")
        && text[at + 9..]
            .split(" column ")
            .all(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        text = &text[..at];
    }
    if let Some((head, rest)) = text.split_once(": ")
        && !head.is_empty()
        && !head.contains(' ')
        && !head.contains('"')
    {
        text = rest;
    }
    text.to_owned()
}

/// The 1-based line of the key at dotted `path` (each key searched below the previous one,
/// more indented), then of `needle` at or after it.
pub fn locate(text: &str, path: &str, needle: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut indent: Option<usize> = None;
    let mut found_any = false;
    for raw in path.split('.') {
        let key = raw.split('[').next().unwrap_or(raw);
        if key.is_empty() {
            continue;
        }
        let hit = (start..lines.len()).find(|&i| {
            let line = lines[i];
            let body = line.trim_start();
            let depth = line.len() - body.len();
            let body = body.strip_prefix("- ").unwrap_or(body);
            let keyed = body.starts_with(&format!("{key}:"))
                || body.starts_with(&format!("\"{key}\":"))
                || body.starts_with(&format!("'{key}':"));
            keyed && indent.is_none_or(|d| depth > d)
        });
        match hit {
            Some(i) => {
                indent = Some(lines[i].len() - lines[i].trim_start().len());
                start = i;
                found_any = true;
            }
            None => break,
        }
    }
    if let Some(needle) = needle
        && let Some(i) = (start..lines.len()).find(|&i| lines[i].contains(needle))
    {
        return Some(i + 1);
    }
    found_any.then_some(start + 1)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle)
        .map(|pos| text[..pos].lines().count().max(1) + usize::from(text[..pos].ends_with('\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_load() {
        for (name, yaml) in SHIPPED {
            Profile::from_yaml_str(yaml, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_state_the_builtin_table_maps_reaches_all_five() {
        let p = Profile::builtin();
        for state in JobState::ALL {
            assert!(
                p.states.table.values().any(|m| m.0 == state),
                "{state} unreachable"
            );
        }
    }

    #[test]
    fn every_deadline_status_code_is_mapped_as_documented() {
        let p = Profile::load("deadline-web-service").unwrap();
        let record = serde_json::json!({"RenderingChunks": 0, "CompletedChunks": 0});
        let rendering = serde_json::json!({"RenderingChunks": 1, "CompletedChunks": 0});
        let expect = [
            ("0", JobState::Failed, "Unknown"),
            ("1", JobState::Waiting, "Active"),
            ("2", JobState::Cancelled, "Suspended"),
            ("3", JobState::Completed, "Completed"),
            ("4", JobState::Failed, "Failed"),
            ("6", JobState::Waiting, "Pending"),
        ];
        assert_eq!(
            p.states.table.len(),
            expect.len(),
            "every code in the table is checked here"
        );
        for (code, state, label) in expect {
            let (s, l, _) = p.map_state(code, &record);
            assert_eq!((s, l.as_str()), (state, label), "Stat {code}");
        }
        assert_eq!(p.map_state("1", &rendering).0, JobState::Running);
        let (s, _, reason) = p.map_state("5", &record);
        assert_eq!(s, JobState::Failed);
        assert!(reason.unwrap().contains("unknown native state 5"));
    }

    #[test]
    fn pointers_are_checked() {
        assert!(Pointer::parse("").is_ok());
        assert!(Pointer::parse("/a~0b/~1/0").is_ok());
        assert!(
            Pointer::parse("a/b")
                .unwrap_err()
                .contains("start with `/`")
        );
        assert!(Pointer::parse("/a~2").unwrap_err().contains("`~`"));
    }

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("a\nb\nc", "a"), Some(1));
        assert_eq!(line_of("a\nb\nc", "c"), Some(3));
        assert_eq!(line_of("a\nbc", "c"), Some(2));
        assert_eq!(line_of("a\n\nc", "c"), Some(3));
        assert_eq!(line_of("a", "z"), None);
    }
}
