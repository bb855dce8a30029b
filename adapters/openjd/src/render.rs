//! `JobRequest` -> OpenJD job bundle (`template.yaml` + `parameter_values.yaml`). Pure and
//! deterministic; golden-tested and checked by the real `openjd check`.
//!
//! The shape (see `docs/openjd.md` for why):
//!
//! - **One step per command**, in order, each depending on the one before, so a failing
//!   command stops every later one. Each step's one action is `/usr/bin/env`, which sets the
//!   task's `FARM_*` variables, the request's environment and working directory (`--chdir`)
//!   and then `execvp`s the request's argv, element for element: no shell ever parses it.
//! - **Frames are an INT task parameter** (`Frame`, an OpenJD range expression). Chunks are
//!   one task per chunk (per-chunk requests) or visible through associated
//!   `ChunkIndex`/`ChunkFirst`/`ChunkLast` parameters (per-frame requests), exactly as
//!   `farm_core::plan` chunks them. `TASK_CHUNKING` is not used: its chunk boundaries differ.
//! - **Placeholders become format strings** (`{frame}` -> `{{Task.Param.Frame}}`).
//!   OpenJD format strings have no escape for `{{`/`}}`, so any user text that a format
//!   string cannot carry literally (braces pairs, control characters other than line
//!   breaks) travels as the default of a STRING job parameter (`FarmText<N>`) and is
//!   referenced as `{{Param.FarmText<N>}}`: a substituted value is never parsed again.
//! - **Priority** is a Deadline Cloud submission option, not template text: it is the
//!   `deadline:priority` entry of `parameter_values.yaml` (0-100, 50 by default).

use std::collections::BTreeMap;

use farm_core::command::Segment;
use farm_core::{
    Command, FarmError, JobRequest, Placeholder, RenderedFile, RenderedJob, Repeat, Result,
};
use serde::Serialize;
use serde_json::Value;

/// The spec revision every template names.
pub const SPECIFICATION_VERSION: &str = "jobtemplate-2023-09";
/// The program each action runs; it sets the environment and working directory.
pub const ENV_PROGRAM: &str = "/usr/bin/env";
/// Job parameters a template may declare without extensions.
pub const MAX_JOB_PARAMETERS: usize = 50;
/// Longest STRING job parameter value, in characters.
pub const MAX_PARAMETER_CHARS: usize = 1024;
/// Most values in a task parameter list.
pub const MAX_LIST_VALUES: usize = 1024;
/// Marks the template description as farm metadata.
pub const DESCRIPTION_PREFIX: &str = "farm-openjd ";

/// A rendered bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// `template.yaml`.
    pub template: String,
    /// `parameter_values.yaml`.
    pub parameter_values: String,
}

impl Bundle {
    /// The bundle as the files `render` returns, template first.
    pub fn into_rendered(self) -> RenderedJob {
        RenderedJob {
            files: vec![
                RenderedFile {
                    name: "template.yaml".into(),
                    contents: self.template,
                    executable: false,
                },
                RenderedFile {
                    name: "parameter_values.yaml".into(),
                    contents: self.parameter_values,
                    executable: false,
                },
            ],
        }
    }
}

/// What the template's description carries so jobs can be found again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Metadata {
    /// The request's render context.
    pub render_context: uuid::Uuid,
    /// The request's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Frames in the job (1 without frames).
    pub frames: usize,
}

impl Metadata {
    /// Reads the metadata back from a description.
    pub fn from_description(text: &str) -> Option<Metadata> {
        serde_json::from_str(text.strip_prefix(DESCRIPTION_PREFIX)?).ok()
    }
}

/// Deadline Cloud's 0-100 priority for a request priority of -1000..=1000 (0 -> 50).
pub fn deadline_priority(priority: i32) -> u32 {
    (priority.clamp(-1000, 1000) + 1000) as u32 / 20
}

/// Renders the bundle. Fails with `Unsupported` for dependencies (OpenJD jobs cannot wait
/// for other farm jobs) and `InvalidRequest` for what a template cannot hold.
pub fn render(request: &JobRequest) -> Result<Bundle> {
    request.validate()?;
    if !request.depends_on.is_empty() {
        return Err(FarmError::unsupported(
            "depends_on",
            "openjd (an OpenJD job cannot wait for another farm job; submit the dependency first and wait for it)",
        ));
    }
    refuse_crlf(request)?;
    let native = Native::read(request)?;
    let mut texts = Texts::default();
    let name = texts.name(&request.name);
    let (space, refs) = parameter_space(request)?;
    let farm_env = farm_env_args(request, &refs);
    let mut steps = Vec::with_capacity(request.commands.len());
    for (i, command) in request.commands.iter().enumerate() {
        let mut args: Vec<String> = Vec::new();
        if let Some(dir) = &request.working_directory {
            args.push(texts.literal_with_prefix("--chdir=", dir));
        }
        args.push("--".into());
        args.extend(farm_env.iter().cloned());
        for (k, v) in &request.environment {
            args.push(texts.literal_with_prefix(&format!("{k}="), v));
        }
        let templates = command
            .templates()
            .map_err(|e| FarmError::invalid(format!("commands[{i}]"), e.to_string()))?;
        if let Command::Argv(argv) = command
            && argv[0].contains('=')
        {
            return Err(FarmError::invalid(
                format!("commands[{i}][0]"),
                "a program name containing '=' cannot be run (env would read it as a variable)",
            ));
        }
        for segments in &templates {
            args.push(texts.segments(segments, &refs));
        }
        let mut step = serde_json::json!({
            "name": step_name(i),
        });
        let obj = step.as_object_mut().expect("an object");
        if let Some(space) = &space {
            obj.insert("parameterSpace".into(), space.clone());
        }
        if let Some(host) = host_requirements(request, &native) {
            obj.insert("hostRequirements".into(), host);
        }
        let mut action = serde_json::json!({"command": ENV_PROGRAM, "args": args});
        if let Some(limit) = request.resources.time_limit {
            action["timeout"] = Value::from(limit.as_secs().max(1));
        }
        obj.insert(
            "script".into(),
            serde_json::json!({"actions": {"onRun": action}}),
        );
        if i > 0 {
            obj.insert(
                "dependencies".into(),
                serde_json::json!([{"dependsOn": step_name(i - 1)}]),
            );
        }
        for (k, v) in &native.step {
            if obj.contains_key(k) {
                return Err(FarmError::invalid(
                    format!("native.openjd.step.{k}"),
                    "is set by the adapter",
                ));
            }
            obj.insert(k.clone(), v.clone());
        }
        steps.push(step);
    }
    if texts.params.len() > MAX_JOB_PARAMETERS {
        return Err(FarmError::invalid(
            "commands",
            format!(
                "needs {} job parameters to carry text with `{{{{`, `}}}}` or control characters \
                 (OpenJD allows {MAX_JOB_PARAMETERS})",
                texts.params.len()
            ),
        ));
    }
    let metadata = Metadata {
        render_context: request.render_context,
        tags: request.tags.clone(),
        frames: request.frame_count(),
    };
    let description = format!(
        "{DESCRIPTION_PREFIX}{}",
        serde_json::to_string(&metadata).expect("serialisable")
    );
    if description.chars().count() > 2048 {
        return Err(FarmError::invalid(
            "tags",
            "too long for an OpenJD description (2048 characters with the render context)",
        ));
    }
    let mut template = serde_json::Map::new();
    template.insert("specificationVersion".into(), SPECIFICATION_VERSION.into());
    template.insert("name".into(), name.into());
    template.insert("description".into(), description.into());
    if !texts.params.is_empty() {
        let defs: Vec<Value> = texts
            .params
            .iter()
            .map(|(n, v)| serde_json::json!({"name": n, "type": "STRING", "default": v}))
            .collect();
        template.insert("parameterDefinitions".into(), defs.into());
    }
    template.insert("steps".into(), steps.into());
    let parameter_values = serde_json::json!({"parameterValues": [
        {"name": "deadline:priority", "value": deadline_priority(request.priority)}
    ]});
    Ok(Bundle {
        template: to_yaml(&Value::Object(template)),
        parameter_values: to_yaml(&parameter_values),
    })
}

fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(&ordered(value)).expect("JSON values always serialise as YAML")
}

/// Keys in the order the specification lists them (others after, by name), so templates
/// read top-down like the hand-written ones in the OpenJD docs.
const KEY_ORDER: &[&str] = &[
    "specificationVersion",
    "name",
    "type",
    "description",
    "parameterDefinitions",
    "parameterValues",
    "default",
    "value",
    "range",
    "min",
    "max",
    "steps",
    "dependencies",
    "parameterSpace",
    "taskParameterDefinitions",
    "combination",
    "hostRequirements",
    "amounts",
    "attributes",
    "script",
    "actions",
    "onRun",
    "command",
    "args",
    "timeout",
];

fn ordered(value: &Value) -> serde_yaml::Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            let rank = |k: &str| {
                KEY_ORDER
                    .iter()
                    .position(|o| *o == k)
                    .unwrap_or(KEY_ORDER.len())
            };
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            let mut out = serde_yaml::Mapping::new();
            for k in keys {
                out.insert(serde_yaml::Value::String(k.clone()), ordered(&map[k]));
            }
            serde_yaml::Value::Mapping(out)
        }
        Value::Array(items) => serde_yaml::Value::Sequence(items.iter().map(ordered).collect()),
        other => serde_yaml::to_value(other).expect("a JSON scalar is a YAML scalar"),
    }
}

/// OpenJD runtimes (openjd-sessions, checked with `openjd run`) deliver CR LF in an
/// argument as LF: refused, so no value ever arrives altered.
fn refuse_crlf(request: &JobRequest) -> Result<()> {
    let problem = "contains CR LF, which OpenJD runtimes deliver as LF";
    for (i, command) in request.commands.iter().enumerate() {
        match command {
            Command::Argv(argv) => {
                if let Some(j) = argv.iter().position(|a| a.contains("\r\n")) {
                    return Err(FarmError::invalid(format!("commands[{i}][{j}]"), problem));
                }
            }
            Command::Shell(s) if s.contains("\r\n") => {
                return Err(FarmError::invalid(format!("commands[{i}].shell"), problem));
            }
            Command::Shell(_) => {}
        }
    }
    if let Some((k, _)) = request.environment.iter().find(|(_, v)| v.contains("\r\n")) {
        return Err(FarmError::invalid(format!("environment.{k}"), problem));
    }
    if request
        .working_directory
        .as_deref()
        .is_some_and(|d| d.contains("\r\n"))
    {
        return Err(FarmError::invalid("working_directory", problem));
    }
    Ok(())
}

/// `Command 1`, `Command 2`, ...
pub fn step_name(index: usize) -> String {
    format!("Command {}", index + 1)
}

/// How each placeholder is written in a format string, for this request's shape.
#[derive(Debug, Clone, Default)]
struct Refs {
    frame: Option<&'static str>,
    chunk_index: Option<&'static str>,
    chunk_first: Option<&'static str>,
    chunk_last: Option<&'static str>,
    render_context: String,
}

const FRAME: &str = "{{Task.Param.Frame}}";
const CHUNK_INDEX: &str = "{{Task.Param.ChunkIndex}}";
const CHUNK_FIRST: &str = "{{Task.Param.ChunkFirst}}";
const CHUNK_LAST: &str = "{{Task.Param.ChunkLast}}";

fn int_param(name: &str, values: &[u32], allow_expr: bool) -> Value {
    let range = if allow_expr {
        Value::from(range_expr(values))
    } else {
        Value::from(values.to_vec())
    };
    serde_json::json!({"name": name, "type": "INT", "range": range})
}

/// The task parameter space shared by every step, and how placeholders refer to it.
fn parameter_space(request: &JobRequest) -> Result<(Option<Value>, Refs)> {
    let render_context = request.render_context.to_string();
    let Some(frames) = &request.frames else {
        return Ok((
            None,
            Refs {
                render_context,
                ..Refs::default()
            },
        ));
    };
    let chunks = frames.chunks(request.chunk_size.max(1));
    let (params, names, refs) = match request.repeat {
        Repeat::PerChunk => {
            let index: Vec<u32> = chunks.iter().map(|c| c.index).collect();
            let first: Vec<u32> = chunks.iter().map(|c| c.frames.first()).collect();
            let last: Vec<u32> = chunks.iter().map(|c| c.frames.last()).collect();
            (
                vec![
                    int_param("ChunkIndex", &index, true),
                    int_param("ChunkFirst", &first, true),
                    int_param("ChunkLast", &last, true),
                ],
                "(ChunkIndex, ChunkFirst, ChunkLast)",
                Refs {
                    frame: None,
                    chunk_index: Some(CHUNK_INDEX),
                    chunk_first: Some(CHUNK_FIRST),
                    chunk_last: Some(CHUNK_LAST),
                    render_context: render_context.clone(),
                },
            )
        }
        Repeat::PerFrame if request.chunk_size <= 1 => {
            let all: Vec<u32> = frames.iter().collect();
            let index: Vec<u32> = (0..all.len() as u32).collect();
            (
                vec![
                    int_param("Frame", &all, true),
                    int_param("ChunkIndex", &index, true),
                ],
                "(Frame, ChunkIndex)",
                Refs {
                    frame: Some(FRAME),
                    chunk_index: Some(CHUNK_INDEX),
                    chunk_first: Some(FRAME),
                    chunk_last: Some(FRAME),
                    render_context: render_context.clone(),
                },
            )
        }
        Repeat::PerFrame => {
            if frames.len() > MAX_LIST_VALUES {
                return Err(FarmError::invalid(
                    "frames",
                    format!(
                        "{} frames in chunks of {} per frame: OpenJD lists hold at most \
                         {MAX_LIST_VALUES} values; use repeat: per_chunk or chunk_size: 1",
                        frames.len(),
                        request.chunk_size
                    ),
                ));
            }
            let (mut all, mut index, mut first, mut last) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for c in &chunks {
                for f in c.frames.iter() {
                    all.push(f);
                    index.push(c.index);
                    first.push(c.frames.first());
                    last.push(c.frames.last());
                }
            }
            (
                vec![
                    int_param("Frame", &all, true),
                    int_param("ChunkIndex", &index, false),
                    int_param("ChunkFirst", &first, false),
                    int_param("ChunkLast", &last, false),
                ],
                "(Frame, ChunkIndex, ChunkFirst, ChunkLast)",
                Refs {
                    frame: Some(FRAME),
                    chunk_index: Some(CHUNK_INDEX),
                    chunk_first: Some(CHUNK_FIRST),
                    chunk_last: Some(CHUNK_LAST),
                    render_context: render_context.clone(),
                },
            )
        }
    };
    let space = serde_json::json!({"taskParameterDefinitions": params, "combination": names});
    Ok((Some(space), refs))
}

/// An OpenJD range expression for ascending unique values: runs of three or more with
/// one step become `a-b` or `a-b:s`, the rest are listed.
pub fn range_expr(values: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        if i + 2 < values.len() {
            let step = values[i + 1] - values[i];
            while j + 1 < values.len() && values[j + 1] - values[j] == step {
                j += 1;
            }
            if j - i >= 2 {
                parts.push(if step == 1 {
                    format!("{}-{}", values[i], values[j])
                } else {
                    format!("{}-{}:{step}", values[i], values[j])
                });
                i = j + 1;
                continue;
            }
        }
        parts.push(values[i].to_string());
        i += 1;
    }
    parts.join(",")
}

fn farm_env_args(request: &JobRequest, refs: &Refs) -> Vec<String> {
    let mut out = vec![format!(
        "{}={}",
        Placeholder::RenderContext.env_var(),
        request.render_context
    )];
    out.push(format!(
        "{}={}",
        Placeholder::ChunkIndex.env_var(),
        refs.chunk_index.unwrap_or("0")
    ));
    if let (Some(first), Some(last)) = (refs.chunk_first, refs.chunk_last) {
        out.push(format!("{}={first}", Placeholder::ChunkFirst.env_var()));
        out.push(format!("{}={last}", Placeholder::ChunkLast.env_var()));
    }
    if let Some(frame) = refs.frame {
        out.push(format!("{}={frame}", Placeholder::Frame.env_var()));
    }
    out
}

/// Text a format string cannot carry literally: `{{` or `}}`, a brace at an edge (it
/// could join a neighbouring expression's braces), or a control character other than a
/// line break.
pub fn needs_parameter(text: &str) -> bool {
    text.contains("{{")
        || text.contains("}}")
        || text.ends_with('{')
        || text.starts_with('}')
        || text.chars().any(|c| is_cc(c) && c != '\n' && c != '\r')
}

fn is_cc(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Job parameters holding user text, by first use.
#[derive(Debug, Default)]
struct Texts {
    params: Vec<(String, String)>,
    by_value: BTreeMap<String, String>,
}

impl Texts {
    /// `{{Param.FarmTextN}}` references carrying `text` exactly (split into pieces of at
    /// most 1024 characters).
    fn reference(&mut self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        for piece in chars.chunks(MAX_PARAMETER_CHARS) {
            let piece: String = piece.iter().collect();
            let name = match self.by_value.get(&piece) {
                Some(n) => n.clone(),
                None => {
                    let n = format!("FarmText{}", self.params.len());
                    self.params.push((n.clone(), piece.clone()));
                    self.by_value.insert(piece, n.clone());
                    n
                }
            };
            out.push_str("{{Param.");
            out.push_str(&name);
            out.push_str("}}");
        }
        out
    }

    fn literal(&mut self, text: &str) -> String {
        if needs_parameter(text) {
            self.reference(text)
        } else {
            text.to_owned()
        }
    }

    fn literal_with_prefix(&mut self, prefix: &str, text: &str) -> String {
        let mut out = prefix.to_owned();
        out.push_str(&self.literal(text));
        out
    }

    fn segments(&mut self, segments: &[Segment], refs: &Refs) -> String {
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Literal(text) => out.push_str(&self.literal(text)),
                Segment::Placeholder(Placeholder::RenderContext) => {
                    // Constant for the job: written out, as `farm_core::plan` substitutes it.
                    out.push_str(&refs.render_context);
                }
                Segment::Placeholder(p) => {
                    let r = match p {
                        Placeholder::Frame => refs.frame,
                        Placeholder::ChunkIndex => refs.chunk_index.or(Some("0")),
                        Placeholder::ChunkFirst => refs.chunk_first,
                        Placeholder::ChunkLast => refs.chunk_last,
                        Placeholder::RenderContext => None,
                    };
                    // Validation refuses placeholders the request's shape lacks.
                    out.push_str(r.unwrap_or_default());
                }
            }
        }
        out
    }

    /// The job name, or a reference when it holds text a format string cannot carry. Names
    /// are single-line display text: control characters become spaces.
    fn name(&mut self, name: &str) -> String {
        if needs_parameter(name) || name.contains(['\n', '\r']) {
            let shown: String = name
                .chars()
                .map(|c| if is_cc(c) { ' ' } else { c })
                .collect();
            if needs_parameter(&shown) {
                return self.reference(&shown);
            }
            return shown;
        }
        name.to_owned()
    }
}

/// The `native.openjd` entry.
#[derive(Debug, Default)]
struct Native {
    attributes: Vec<Value>,
    amounts: Vec<Value>,
    step: serde_json::Map<String, Value>,
}

impl Native {
    fn read(request: &JobRequest) -> Result<Native> {
        let mut native = Native::default();
        let Some(Value::Object(map)) = request.native.get("openjd") else {
            return Ok(native);
        };
        for (key, value) in map {
            match (key.as_str(), value) {
                ("host_requirements", Value::Object(h)) => {
                    for (k, v) in h {
                        match (k.as_str(), v) {
                            ("attributes", Value::Array(a)) => native.attributes.extend(a.clone()),
                            ("amounts", Value::Array(a)) => native.amounts.extend(a.clone()),
                            _ => {
                                return Err(FarmError::invalid(
                                    format!("native.openjd.host_requirements.{k}"),
                                    "expected `attributes` or `amounts`, a list of OpenJD requirements",
                                ));
                            }
                        }
                    }
                }
                ("step", Value::Object(s)) => native.step = s.clone(),
                _ => {
                    return Err(FarmError::invalid(
                        format!("native.openjd.{key}"),
                        "unknown: the openjd entries are host_requirements {attributes, amounts} and step (extra step fields)",
                    ));
                }
            }
        }
        Ok(native)
    }
}

fn host_requirements(request: &JobRequest, native: &Native) -> Option<Value> {
    let r = &request.resources;
    let mut amounts: Vec<Value> = Vec::new();
    if let Some(cpus) = r.cpus {
        amounts.push(serde_json::json!({"name": "amount.worker.vcpu", "min": cpus}));
    }
    if let Some(memory) = r.memory {
        amounts.push(serde_json::json!({"name": "amount.worker.memory", "min": memory.mib()}));
    }
    if let Some(gpus) = r.gpus {
        amounts.push(serde_json::json!({"name": "amount.worker.gpu", "min": gpus}));
    }
    amounts.extend(native.amounts.iter().cloned());
    if amounts.is_empty() && native.attributes.is_empty() {
        return None;
    }
    let mut host = serde_json::Map::new();
    if !amounts.is_empty() {
        host.insert("amounts".into(), amounts.into());
    }
    if !native.attributes.is_empty() {
        host.insert("attributes".into(), native.attributes.clone().into());
    }
    Some(Value::Object(host))
}
