//! Job requests: what to run, where, with which frames and resources.
//!
//! The format is documented for users in `docs/job-request.md`; examples live in
//! `fixtures/requests/`. Requests are loaded from YAML or JSON with unknown fields refused,
//! then [validated](JobRequest::validate) before anything reaches a scheduler.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{Command, Placeholder, Segment};
use crate::error::{FarmError, Result};
use crate::frames::{FrameSet, MAX_FRAMES};
use crate::job::JobId;
use crate::resources::Resources;

mod text;

/// Which of Katana's render types the job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderType {
    /// Preview render: pixels stream back to the artist's Catalog.
    Preview,
    /// Live render: an interactive session.
    Live,
    /// Disk render: images written by RenderOutputDefine nodes.
    #[default]
    Disk,
}

/// Whether the command list runs once per frame or once per chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repeat {
    /// For each frame of the chunk, run every command in order (`{frame}` is set).
    #[default]
    PerFrame,
    /// Run every command once for the whole chunk (use `{chunk_first}`/`{chunk_last}`).
    PerChunk,
}

/// A render job to submit: Katana's `FarmPluginManager.JobRequest`, made explicit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Job name shown by the scheduler (one line).
    pub name: String,
    /// Katana's globally unique render context; generated (UUID v4) when absent. Adapters
    /// use it as the idempotency key: submitting the same context twice yields one job.
    #[serde(default = "Uuid::new_v4")]
    pub render_context: Uuid,
    /// Preview, live or disk render.
    #[serde(default)]
    pub render_type: RenderType,
    /// The ordered commands. The first one that fails ends the task with its exit code.
    pub commands: Vec<Command>,
    /// Frames to render; absent means the commands run once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<FrameSet>,
    /// Frames per task (per array element); 1 by default.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub chunk_size: u32,
    /// Run the commands once per frame (default) or once per chunk.
    #[serde(default, skip_serializing_if = "is_default")]
    pub repeat: Repeat,
    /// Variables set for every command, on top of the node's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Absolute directory the commands start in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// CPUs, memory, GPUs and time limit per task.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: Resources,
    /// Higher runs sooner; -1000..=1000, 0 by default. Adapters scale it to the native range.
    #[serde(default, skip_serializing_if = "is_default")]
    pub priority: i32,
    /// Labels for finding jobs again (`show:abc`, `conformance-run:<uuid>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Jobs on the same farm that must complete successfully before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<JobId>,
    /// Absolute directory for render logs; the adapter's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_directory: Option<String>,
    /// Extra native directives per adapter (`native: {slurm: {partition: gpu}}`); each
    /// adapter reads only its own entry and validates it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Priorities outside this range are refused.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;

/// Longest accepted job name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

impl JobRequest {
    /// A request named `name` running `commands` once, everything else default.
    pub fn new(name: impl Into<String>, commands: Vec<Command>) -> JobRequest {
        JobRequest {
            name: name.into(),
            render_context: Uuid::new_v4(),
            render_type: RenderType::Disk,
            commands,
            frames: None,
            chunk_size: 1,
            repeat: Repeat::PerFrame,
            environment: BTreeMap::new(),
            working_directory: None,
            resources: Resources::default(),
            priority: 0,
            tags: Vec::new(),
            depends_on: Vec::new(),
            log_directory: None,
            native: BTreeMap::new(),
        }
    }

    /// Parses YAML (or JSON, which YAML accepts), naming the field of any error. Does not
    /// [validate](Self::validate).
    pub fn from_yaml_str(text: &str) -> Result<JobRequest> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|err| deserialize_error(&err))
    }

    /// Parses JSON, naming the field of any error. Does not validate.
    pub fn from_json_str(text: &str) -> Result<JobRequest> {
        let mut de = serde_json::Deserializer::from_str(text);
        let request =
            serde_path_to_error::deserialize(&mut de).map_err(|err| deserialize_error(&err))?;
        de.end()
            .map_err(|e| FarmError::invalid("(document)", e.to_string()))?;
        Ok(request)
    }

    /// Parses a request given as text, without validating it: JSON when it starts with `{`,
    /// YAML otherwise (YAML would also read most JSON, but with YAML's error messages).
    pub fn from_text(text: &str) -> Result<JobRequest> {
        if text.trim_start().starts_with('{') {
            JobRequest::from_json_str(text)
        } else {
            JobRequest::from_yaml_str(text)
        }
    }

    /// Reads a `.json`, `.yaml` or `.yml` file and validates it.
    pub fn from_path(path: &Path) -> Result<JobRequest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FarmError::io(format!("cannot read job request {}", path.display()), e))?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => JobRequest::from_json_str(&text),
            _ => JobRequest::from_yaml_str(&text),
        };
        let request = parsed.map_err(|e| match e {
            FarmError::InvalidRequest { field, problem } => FarmError::InvalidRequest {
                field,
                problem: format!("{problem} (in {})", path.display()),
            },
            other => other,
        })?;
        request.validate()?;
        Ok(request)
    }

    /// The request as canonical JSON: the exact body HTTP adapters send.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a JobRequest always serialises")
    }

    /// Checks everything a scheduler would otherwise choke on, or worse, misinterpret.
    /// The error names the first offending field; [`problems`](Self::problems) lists all.
    pub fn validate(&self) -> Result<()> {
        match self.problems().into_iter().next() {
            Some((field, problem)) => Err(FarmError::InvalidRequest { field, problem }),
            None => Ok(()),
        }
    }

    /// Every validation problem as `(field, problem)`, in field order.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |field: String, problem: String| out.push((field, problem));

        check_line("name", &self.name, &mut bad);
        if self.name.trim().is_empty() {
            bad("name".into(), "must not be empty".into());
        } else if self.name.chars().count() > MAX_NAME_CHARS {
            bad(
                "name".into(),
                format!("is longer than {MAX_NAME_CHARS} characters"),
            );
        }

        if self.commands.is_empty() {
            bad("commands".into(), "must list at least one command".into());
        }
        // Field names are formatted only when there is a problem: valid requests (the
        // common case, validated on every render and submit) allocate nothing here.
        for (i, command) in self.commands.iter().enumerate() {
            match command {
                Command::Argv(argv) if argv.is_empty() => {
                    bad(
                        format!("commands[{i}]"),
                        "is an empty argv: name a program to run".into(),
                    );
                }
                Command::Argv(argv) => {
                    if argv[0].is_empty() {
                        bad(
                            format!("commands[{i}][0]"),
                            "the program name is empty".into(),
                        );
                    }
                    for (j, arg) in argv.iter().enumerate() {
                        if arg.contains('\0') {
                            bad(
                                format!("commands[{i}][{j}]"),
                                "contains a NUL byte, which no program can receive".into(),
                            );
                            continue;
                        }
                        if !arg.contains('{') {
                            continue; // no brace, no placeholder
                        }
                        match crate::command::parse_template(arg) {
                            Err(e) => bad(format!("commands[{i}][{j}]"), e.to_string()),
                            Ok(segments) => self.check_placeholders(
                                &|| format!("commands[{i}][{j}]"),
                                &segments,
                                &mut bad,
                            ),
                        }
                    }
                }
                Command::Shell(script) => {
                    if script.trim().is_empty() {
                        bad(format!("commands[{i}].shell"), "is an empty script".into());
                    }
                    if script.contains('\0') {
                        bad(format!("commands[{i}].shell"), "contains a NUL byte".into());
                    }
                }
            }
        }

        if self.chunk_size == 0 {
            bad("chunk_size".into(), "must be at least 1".into());
        } else if self.chunk_size as usize > MAX_FRAMES {
            bad("chunk_size".into(), format!("must be at most {MAX_FRAMES}"));
        } else if self.frames.is_none() && self.chunk_size != 1 {
            bad(
                "chunk_size".into(),
                "is set but the request has no frames".into(),
            );
        }
        if self.frames.is_none() && self.repeat != Repeat::PerFrame {
            bad(
                "repeat".into(),
                "is set but the request has no frames".into(),
            );
        }

        for (name, value) in &self.environment {
            if let Err(problem) = check_env_name(name) {
                bad(format!("environment.{name}"), problem);
            }
            if value.contains('\0') {
                bad(
                    format!("environment.{name}"),
                    "the value contains a NUL byte, which environments cannot hold".into(),
                );
            }
        }

        for (field, dir) in [
            ("working_directory", &self.working_directory),
            ("log_directory", &self.log_directory),
        ] {
            if let Some(dir) = dir {
                check_line(field, dir, &mut bad);
                if !dir.starts_with('/') {
                    bad(
                        field.into(),
                        format!(
                            "{dir:?} is not absolute; a render node cannot resolve a relative path"
                        ),
                    );
                }
            }
        }

        let r = &self.resources;
        for (field, value) in [("resources.cpus", r.cpus), ("resources.gpus", r.gpus)] {
            match value {
                Some(0) => bad(
                    field.into(),
                    "must be at least 1 (leave it out for none)".into(),
                ),
                Some(n) if n > 100_000 => {
                    bad(field.into(), format!("{n} is more than any node has"))
                }
                _ => {}
            }
        }

        if !PRIORITY_RANGE.contains(&self.priority) {
            bad(
                "priority".into(),
                format!(
                    "{} is not between {} and {}",
                    self.priority,
                    PRIORITY_RANGE.start(),
                    PRIORITY_RANGE.end()
                ),
            );
        }

        if self.tags.len() > 64 {
            bad("tags".into(), "more than 64 tags".into());
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if let Err(problem) = check_tag(tag) {
                bad(format!("tags[{i}]"), problem);
            }
        }

        for (i, dep) in self.depends_on.iter().enumerate() {
            let s = dep.as_str();
            if s.is_empty()
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
            {
                bad(
                    format!("depends_on[{i}]"),
                    format!(
                        "{s:?} is not a job id (empty, or has whitespace, commas or control characters)"
                    ),
                );
            }
        }

        for (adapter, value) in &self.native {
            if adapter.is_empty()
                || !adapter
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                bad(
                    format!("native.{adapter}"),
                    "adapter names are lower-case words such as slurm".into(),
                );
            }
            if !value.is_object() {
                bad(
                    format!("native.{adapter}"),
                    "must be a map of directives".into(),
                );
            }
        }
        out
    }

    fn check_placeholders(
        &self,
        field: &dyn Fn() -> String,
        segments: &[Segment],
        bad: &mut impl FnMut(String, String),
    ) {
        for segment in segments {
            if let Segment::Placeholder(p) = segment {
                if p.needs_frames() && self.frames.is_none() {
                    bad(
                        field(),
                        format!("uses {{{}}} but the request has no frames", p.name()),
                    );
                } else if *p == Placeholder::Frame && self.repeat == Repeat::PerChunk {
                    bad(
                        field(),
                        "uses {frame} but commands repeat per chunk; use {chunk_first} and {chunk_last}".into(),
                    );
                }
            }
        }
    }

    /// The request's own entry in `native`, or an empty map.
    pub fn native_for(&self, adapter: &str) -> serde_json::Map<String, serde_json::Value> {
        self.native
            .get(adapter)
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }
}

fn check_line(field: &str, value: &str, bad: &mut impl FnMut(String, String)) {
    if value.contains('\0') {
        bad(field.into(), "contains a NUL byte".into());
    }
    if value.contains(['\n', '\r']) {
        bad(
            field.into(),
            "contains a line break, which would let it spill into a new directive line".into(),
        );
    }
}

/// Environment names are what POSIX shells accept; `FARM_*` is reserved for the variables
/// executors set themselves.
pub fn check_env_name(name: &str) -> std::result::Result<(), String> {
    let mut bytes = name.bytes();
    let valid = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!(
            "{name:?} is not a valid variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    if name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"FARM_") {
        return Err(format!("{name:?} uses the reserved FARM_ prefix"));
    }
    if SHELL_MANAGED_ENV_NAMES.contains(&name) {
        return Err(format!(
            "{name:?} is managed by the shell that runs the job (read-only or recomputed), \
             so it cannot be passed through exactly"
        ));
    }
    Ok(())
}

/// Variables bash refuses to set or recomputes on every use. Scripts generated for Slurm and
/// HTCondor run under bash, so a request setting one of these would not see its value arrive.
pub const SHELL_MANAGED_ENV_NAMES: &[&str] = &[
    "_",
    "BASHOPTS",
    "BASHPID",
    "BASH_ALIASES",
    "BASH_ARGC",
    "BASH_ARGV",
    "BASH_ARGV0",
    "BASH_CMDS",
    "BASH_COMMAND",
    "BASH_COMPAT",
    "BASH_LINENO",
    "BASH_SOURCE",
    "BASH_SUBSHELL",
    "BASH_VERSINFO",
    "BASH_VERSION",
    "DIRSTACK",
    "EPOCHREALTIME",
    "EPOCHSECONDS",
    "EUID",
    "FUNCNAME",
    "GROUPS",
    "HISTCMD",
    "LINENO",
    "OLDPWD",
    "PPID",
    "PWD",
    "RANDOM",
    "SECONDS",
    "SHELLOPTS",
    "SRANDOM",
    "UID",
];

/// Tags travel through scheduler comments and attributes, so keep them to a safe alphabet.
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() || tag.len() > 128 {
        return Err("tags are 1 to 128 characters".into());
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:=@+/-".contains(*c)))
    {
        return Err(format!(
            "{tag:?} has {c:?}; tags use letters, digits and . _ : = @ + / -"
        ));
    }
    Ok(())
}

fn deserialize_error<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> FarmError {
    let path = err.path().to_string();
    let field = if path == "." {
        "(document)".to_owned()
    } else {
        path
    };
    let message = err.inner().to_string();
    let problem = crate::error::without_path_prefix(&message, &field).to_owned();
    FarmError::invalid(field, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(yaml: &str) -> JobRequest {
        JobRequest::from_yaml_str(yaml).unwrap()
    }

    fn first_problem(yaml: &str) -> (String, String) {
        let req = request(yaml);
        req.problems()
            .into_iter()
            .next()
            .expect("expected a problem")
    }

    #[test]
    fn minimal_request_gets_defaults_and_a_v4_render_context() {
        let r = request("name: beauty\ncommands: [[echo, hi]]\n");
        assert_eq!(r.render_type, RenderType::Disk);
        assert_eq!(r.chunk_size, 1);
        assert_eq!(r.render_context.get_version_num(), 4);
        r.validate().unwrap();
        let again = request("name: beauty\ncommands: [[echo, hi]]\n");
        assert_ne!(r.render_context, again.render_context);
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let r = request(
            "name: x\nrender_type: preview\ncommands: [[render, '{frame}'], {shell: 'echo $A'}]\n\
             frames: 1-10x2\nchunk_size: 2\nenvironment: {A: 'q\"$(x)'}\n\
             working_directory: /tmp\nresources: {cpus: 2, memory: 4G, gpus: 1, time_limit: 90m}\n\
             priority: 5\ntags: [a]\ndepends_on: ['12']\nlog_directory: /logs\n\
             native: {slurm: {partition: gpu}}\n",
        );
        let json = r.to_json();
        assert_eq!(JobRequest::from_json_str(&json).unwrap(), r);
        assert!(json.contains("\"memory\": \"4G\""));
        assert!(json.contains("\"time_limit\": \"01:30:00\""));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let err = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\ncolour: red\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let err = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\nresources: {cpu: 2}\n")
            .unwrap_err();
        match err {
            FarmError::InvalidRequest { field, problem } => {
                assert_eq!(field, "resources.cpu");
                assert!(problem.contains("unknown field `cpu`"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        let err = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\nresources: {cpus: -1}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("resources.cpus"), "{err}");
        let err = JobRequest::from_yaml_str("name: x\ncommands: [[a]]\nframes: 10-1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err.matches("frames").count(),
            1,
            "the field is named once: {err}"
        );
        assert!(err.contains("frames") && err.contains("reversed"), "{err}");
    }

    #[test]
    fn each_validation_rule_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("name: ''\ncommands: [[a]]", "name", "empty"),
            ("name: \"a\\nb\"\ncommands: [[a]]", "name", "line break"),
            ("name: x\ncommands: []", "commands", "at least one"),
            ("name: x\ncommands: [[]]", "commands[0]", "empty argv"),
            (
                "name: x\ncommands: [['']]",
                "commands[0][0]",
                "program name is empty",
            ),
            (
                "name: x\ncommands: [[a, \"b\\0c\"]]",
                "commands[0][1]",
                "NUL",
            ),
            (
                "name: x\ncommands: [[a, '{fram}']]",
                "commands[0][1]",
                "unknown placeholder {fram}",
            ),
            (
                "name: x\ncommands: [[a, '{frame}']]",
                "commands[0][1]",
                "no frames",
            ),
            (
                "name: x\ncommands: [[a, '{frame}']]\nframes: 1-3\nrepeat: per_chunk",
                "commands[0][1]",
                "per chunk",
            ),
            (
                "name: x\ncommands: [{shell: ' '}]",
                "commands[0].shell",
                "empty script",
            ),
            (
                "name: x\ncommands: [[a]]\nchunk_size: 0\nframes: 1",
                "chunk_size",
                "at least 1",
            ),
            (
                "name: x\ncommands: [[a]]\nchunk_size: 4",
                "chunk_size",
                "no frames",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {'1X': a}",
                "environment.1X",
                "not a valid",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {'A-B': a}",
                "environment.A-B",
                "not a valid",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {FARM_X: a}",
                "environment.FARM_X",
                "reserved",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {farm_frames: a}",
                "environment.farm_frames",
                "reserved",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {PWD: /x}",
                "environment.PWD",
                "managed by the shell",
            ),
            (
                "name: x\ncommands: [[a]]\nenvironment: {A: \"\\0\"}",
                "environment.A",
                "NUL",
            ),
            (
                "name: x\ncommands: [[a]]\nworking_directory: rel/dir",
                "working_directory",
                "not absolute",
            ),
            (
                "name: x\ncommands: [[a]]\nlog_directory: \"/a\\n#SBATCH\"",
                "log_directory",
                "line break",
            ),
            (
                "name: x\ncommands: [[a]]\nresources: {cpus: 0}",
                "resources.cpus",
                "at least 1",
            ),
            (
                "name: x\ncommands: [[a]]\nresources: {gpus: 0}",
                "resources.gpus",
                "at least 1",
            ),
            (
                "name: x\ncommands: [[a]]\npriority: 5000",
                "priority",
                "not between -1000 and 1000",
            ),
            (
                "name: x\ncommands: [[a]]\ntags: ['a b']",
                "tags[0]",
                "has ' '",
            ),
            (
                "name: x\ncommands: [[a]]\ndepends_on: ['1 2']",
                "depends_on[0]",
                "not a job id",
            ),
            (
                "name: x\ncommands: [[a]]\nnative: {slurm: 3}",
                "native.slurm",
                "map",
            ),
        ];
        for (yaml, field, needle) in cases {
            let (f, problem) = first_problem(yaml);
            assert_eq!(&f, field, "{yaml}: {problem}");
            assert!(problem.contains(needle), "{yaml}: {problem}");
            let err = request(yaml).validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn zero_and_negative_resources_fail_at_parse_time_with_their_field() {
        for (yaml, field) in [
            ("resources: {memory: 0}", "resources.memory"),
            ("resources: {memory: -2G}", "resources.memory"),
            ("resources: {time_limit: 0s}", "resources.time_limit"),
            ("resources: {time_limit: 60}", "resources.time_limit"),
            ("frames: 1-10x0", "frames"),
        ] {
            let doc = format!("name: x\ncommands: [[a]]\n{yaml}\n");
            let err = JobRequest::from_yaml_str(&doc).unwrap_err();
            assert!(
                matches!(&err, FarmError::InvalidRequest { field: f, .. } if f == field),
                "{yaml}: {err}"
            );
        }
    }

    #[test]
    fn native_entries_are_per_adapter() {
        let r = request(
            "name: x\ncommands: [[a]]\nnative: {slurm: {partition: gpu}, htcondor: {'+Foo': 1}}",
        );
        assert_eq!(r.native_for("slurm")["partition"], "gpu");
        assert!(r.native_for("local").is_empty());
    }
}
