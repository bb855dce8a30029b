//! `JobRequest` -> the sbatch script (CLI) or the slurmrestd submission body (REST).
//!
//! Pure and deterministic: what [`render`] returns is byte for byte what `submit` sends.
//!
//! Two parsers read what we write, and each gets its own quoting:
//! - bash runs the task body, written by [`farm_core::script::render_task_body`] (every
//!   value a single inert `$'...'` word);
//! - sbatch's directive parser reads `#SBATCH` lines. It splits on blanks, treats `#` as a
//!   comment, strips `"`/`'` quotes and lets `\` escape the next character; it does no
//!   variable expansion. [`directive_value`] therefore writes every free-text value as
//!   `"..."` with `\` and `"` escaped, which round-trips any text without a line break
//!   (validation refuses those). This was verified against the real sbatch/slurmctld 22.05:
//!   names with quotes, `#`, `$`, backslashes, tabs, control characters, leading blanks and
//!   300 characters come back unchanged from `squeue --json`.
//!
//! Output paths pass a third parser: slurmd expands `%` patterns, and when the path holds a
//! backslash it strips every backslash instead. Paths are written with `%` doubled, and a
//! log directory with a backslash is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use farm_core::{FarmError, JobRequest, RenderedJob, Result, TimeLimit};
use uuid::Uuid;

use crate::config::{SlurmSettings, Transport};

/// The bash expression a task reads its chunk index from: Slurm's array index (array
/// indices are chunk indices, 0..n-1), or 0 for a job with one task (no array).
pub const CHUNK_INDEX_EXPR: &str = "${SLURM_ARRAY_TASK_ID:-0}";

/// Log directory when neither the request, the settings nor a working directory names one.
pub const FALLBACK_LOG_DIRECTORY: &str = "/tmp";

/// Request keys of `native.slurm`: `(key, sbatch option, slurmrestd field)`.
pub const NATIVE_DIRECTIVES: &[(&str, &str, &str)] = &[
    ("partition", "--partition", "partition"),
    ("account", "--account", "account"),
    ("qos", "--qos", "qos"),
    ("constraint", "--constraint", "constraints"),
    ("reservation", "--reservation", "reservation"),
    ("licenses", "--licenses", "licenses"),
    ("wckey", "--wckey", "wckey"),
];

/// What rendering needs from the farm's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// CLI (sbatch script) or REST (JSON body).
    pub transport: Transport,
    /// Default partition.
    pub partition: Option<String>,
    /// Default account.
    pub account: Option<String>,
    /// Default QOS.
    pub qos: Option<String>,
    /// The `%N` cap of arrays.
    pub array_limit: Option<u32>,
    /// Default log directory.
    pub log_directory: Option<String>,
    /// Nice is `nice_offset - priority`.
    pub nice_offset: i32,
    /// REST: the job's starting environment.
    pub environment: BTreeMap<String, String>,
}

impl From<&SlurmSettings> for RenderOptions {
    fn from(s: &SlurmSettings) -> RenderOptions {
        RenderOptions {
            transport: s.transport,
            partition: s.partition.clone(),
            account: s.account.clone(),
            qos: s.qos.clone(),
            array_limit: s.array_limit,
            log_directory: s.log_directory.clone(),
            nice_offset: s.nice_offset,
            environment: s.environment.clone(),
        }
    }
}

/// What the job's `--comment` carries, so a job can be recognised and re-attached from
/// Slurm alone: the render context (idempotent submit), tags (listing by tag), the attempt
/// it started as, and its shape (progress, and knowing how many array tasks to expect).
///
/// Encoded as `farm=1;ctx=<uuid>;attempt=N;tasks=N;chunk=N;frames=N;tags=a,b`: tags are
/// restricted to `[A-Za-z0-9._:=@+/-]` by validation, so `;` and `,` separate safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmComment {
    /// The request's render context.
    pub render_context: Uuid,
    /// The attempt the job was submitted as (1, or more for a re-submission by `start`).
    pub attempt: u32,
    /// Array tasks (chunks).
    pub tasks: u32,
    /// Frames per chunk.
    pub chunk_size: u32,
    /// Frames in the job (1 without frames).
    pub frames: u64,
    /// The request's tags.
    pub tags: Vec<String>,
}

impl FarmComment {
    /// The comment for `request` submitted as `attempt`.
    pub fn for_request(request: &JobRequest, attempt: u32) -> FarmComment {
        FarmComment {
            render_context: request.render_context,
            attempt,
            tasks: request.task_count() as u32,
            chunk_size: request.chunk_size.max(1),
            frames: request.frame_count() as u64,
            tags: request.tags.clone(),
        }
    }

    /// The comment text (parsed back by [`crate::parse::parse_comment`]).
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(96);
        push_comment(
            &mut s,
            self.render_context,
            self.attempt,
            self.tasks,
            self.chunk_size,
            self.frames,
            &self.tags,
        );
        s
    }
}

/// Writes a [`FarmComment`] without building one (rendering is a hot path).
fn push_comment(
    out: &mut String,
    ctx: Uuid,
    attempt: u32,
    tasks: u32,
    chunk: u32,
    frames: u64,
    tags: &[String],
) {
    let mut uuid = Uuid::encode_buffer();
    out.push_str("farm=1;ctx=");
    out.push_str(ctx.as_hyphenated().encode_lower(&mut uuid));
    let _ = write!(
        out,
        ";attempt={attempt};tasks={tasks};chunk={chunk};frames={frames}"
    );
    for (i, tag) in tags.iter().enumerate() {
        out.push_str(if i == 0 { ";tags=" } else { "," });
        out.push_str(tag);
    }
}

/// Everything both renderers write, computed once.
#[derive(Debug, Clone)]
struct Plan<'a> {
    name: &'a str,
    comment: String,
    /// slurmd output pattern (`%` doubled).
    output: String,
    array: Option<String>,
    chdir: Option<&'a str>,
    cpus: Option<u32>,
    mem_mib: Option<u64>,
    gpus: Option<u32>,
    time: Option<TimeLimit>,
    /// `(native key, value)` in [`NATIVE_DIRECTIVES`] order.
    selectors: Vec<(&'static str, std::borrow::Cow<'a, str>)>,
    nice: i32,
    dependency: Option<String>,
    /// REST working directory.
    cwd: std::borrow::Cow<'a, str>,
}

/// Renders the job for the configured transport: `job.sbatch` for the CLI, `job.json`
/// (the `POST .../job/submit` body, script inside) for REST.
pub fn render(request: &JobRequest, options: &RenderOptions, attempt: u32) -> Result<RenderedJob> {
    Ok(match options.transport {
        Transport::Cli => {
            RenderedJob::single("job.sbatch", sbatch_script(request, options, attempt)?)
        }
        Transport::Rest => RenderedJob::single("job.json", rest_body(request, options, attempt)?),
    })
}

/// The complete sbatch script: directives, then the task body.
pub fn sbatch_script(
    request: &JobRequest,
    options: &RenderOptions,
    attempt: u32,
) -> Result<String> {
    let plan = plan(request, options, attempt)?;
    let mut s = String::with_capacity(
        farm_core::script::task_body_capacity(request) + 512 + plan.name.len() + plan.output.len(),
    );
    s.push_str("#!/bin/bash\n");
    let d = &mut s;
    quoted_directive(d, "--job-name", plan.name);
    quoted_directive(d, "--comment", &plan.comment);
    quoted_directive(d, "--output", &plan.output);
    d.push_str("#SBATCH --open-mode=append\n#SBATCH --requeue\n");
    if let Some(array) = &plan.array {
        directive(d, "--array", array);
    }
    if let Some(dir) = plan.chdir {
        quoted_directive(d, "--chdir", dir);
    }
    if let Some(cpus) = plan.cpus {
        let _ = writeln!(d, "#SBATCH --cpus-per-task={cpus}");
    }
    if let Some(mib) = plan.mem_mib {
        let _ = writeln!(d, "#SBATCH --mem={mib}M");
    }
    if let Some(gpus) = plan.gpus {
        let _ = writeln!(d, "#SBATCH --gres=gpu:{gpus}");
    }
    if let Some(time) = plan.time {
        let _ = writeln!(d, "#SBATCH --time={time}");
    }
    for (key, value) in &plan.selectors {
        let option = NATIVE_DIRECTIVES
            .iter()
            .find(|(k, _, _)| k == key)
            .expect("known key")
            .1;
        quoted_directive(d, option, value);
    }
    if plan.nice != 0 {
        let _ = writeln!(d, "#SBATCH --nice={}", plan.nice);
    }
    if let Some(dep) = &plan.dependency {
        directive(d, "--dependency", dep);
        directive(d, "--kill-on-invalid-dep", "yes");
    }
    farm_core::script::push_task_body(&mut s, request, CHUNK_INDEX_EXPR);
    Ok(s)
}

/// `#SBATCH OPTION="VALUE"` with the value quoted by [`directive_value`]'s rules.
fn quoted_directive(s: &mut String, option: &str, value: &str) {
    s.push_str("#SBATCH ");
    s.push_str(option);
    s.push('=');
    push_directive_value(s, value);
    s.push('\n');
}

fn directive(s: &mut String, option: &str, value: &str) {
    s.push_str("#SBATCH ");
    s.push_str(option);
    s.push('=');
    s.push_str(value);
    s.push('\n');
}

/// The slurmrestd `job/submit` body: job properties and the script (without directives,
/// which slurmrestd does not read).
pub fn rest_body(request: &JobRequest, options: &RenderOptions, attempt: u32) -> Result<String> {
    let plan = plan(request, options, attempt)?;
    let mut job = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        job.insert(k.to_owned(), v);
    };
    put("name", plan.name.into());
    put("comment", plan.comment.clone().into());
    put("standard_output", plan.output.clone().into());
    put("open_mode", "append".into());
    put("requeue", true.into());
    put("current_working_directory", plan.cwd.clone().into());
    put(
        "environment",
        serde_json::to_value(&options.environment).expect("a map of strings"),
    );
    if let Some(array) = &plan.array {
        put("array", array.clone().into());
    }
    if let Some(cpus) = plan.cpus {
        put("cpus_per_task", cpus.into());
    }
    if let Some(mib) = plan.mem_mib {
        put("memory_per_node", mib.into());
    }
    if let Some(gpus) = plan.gpus {
        put("gres", format!("gpu:{gpus}").into());
    }
    if let Some(time) = plan.time {
        put("time_limit", time.minutes_ceil().into());
    }
    for (key, value) in &plan.selectors {
        let field = NATIVE_DIRECTIVES
            .iter()
            .find(|(k, _, _)| k == key)
            .expect("known key")
            .2;
        put(field, value.as_ref().into());
    }
    if plan.nice != 0 {
        put("nice", plan.nice.into());
    }
    if let Some(dep) = &plan.dependency {
        put("dependency", dep.clone().into());
        put("kill_on_invalid_dependency", true.into());
    }
    let mut script = String::from("#!/bin/bash\n");
    farm_core::script::push_task_body(&mut script, request, CHUNK_INDEX_EXPR);
    let body = serde_json::json!({ "job": job, "script": script });
    Ok(serde_json::to_string_pretty(&body).expect("JSON values serialise") + "\n")
}

fn plan<'a>(request: &'a JobRequest, options: &'a RenderOptions, attempt: u32) -> Result<Plan<'a>> {
    request.validate()?;
    let log_dir = log_directory(request, options)?;
    let log_path = log_path_in(&log_dir, request);
    let tasks = request.task_count();
    let array = (tasks > 1).then(|| match options.array_limit {
        Some(limit) => format!("0-{}%{limit}", tasks - 1),
        None => format!("0-{}", tasks - 1),
    });
    let mut dependency = Vec::with_capacity(request.depends_on.len());
    for (i, dep) in request.depends_on.iter().enumerate() {
        if dep.as_str().is_empty() || !dep.as_str().bytes().all(|b| b.is_ascii_digit()) {
            return Err(FarmError::invalid(
                format!("depends_on[{i}]"),
                format!(
                    "{:?} is not a Slurm job id (digits, as submit returned)",
                    dep.as_str()
                ),
            ));
        }
        dependency.push(dep.as_str());
    }
    let native = request.native.get("slurm").and_then(|v| v.as_object());
    let mut selectors = Vec::new();
    for key in native.into_iter().flat_map(|m| m.keys()) {
        if !NATIVE_DIRECTIVES.iter().any(|(k, _, _)| k == key) {
            let known: Vec<&str> = NATIVE_DIRECTIVES.iter().map(|(k, _, _)| *k).collect();
            return Err(FarmError::invalid(
                format!("native.slurm.{key}"),
                format!(
                    "is not a Slurm directive this adapter knows; use one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    for (key, _, _) in NATIVE_DIRECTIVES {
        let from_request = match native.and_then(|m| m.get(*key)) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            Some(serde_json::Value::Number(n)) => Some(std::borrow::Cow::Owned(n.to_string())),
            Some(other) => {
                return Err(FarmError::invalid(
                    format!("native.slurm.{key}"),
                    format!("{other} is not a string"),
                ));
            }
        };
        if let Some(v) = &from_request
            && (v.is_empty() || v.contains(['\n', '\r', '\0']))
        {
            return Err(FarmError::invalid(
                format!("native.slurm.{key}"),
                "is empty or has a line break",
            ));
        }
        let from_settings = match *key {
            "partition" => options.partition.as_deref(),
            "account" => options.account.as_deref(),
            "qos" => options.qos.as_deref(),
            _ => None,
        };
        if let Some(value) = from_request.or(from_settings.map(std::borrow::Cow::Borrowed)) {
            selectors.push((*key, value));
        }
    }
    Ok(Plan {
        name: &request.name,
        comment: {
            let mut c =
                String::with_capacity(96 + request.tags.iter().map(|t| t.len() + 1).sum::<usize>());
            push_comment(
                &mut c,
                request.render_context,
                attempt,
                request.task_count() as u32,
                request.chunk_size.max(1),
                request.frame_count() as u64,
                &request.tags,
            );
            c
        },
        output: if log_path.contains('%') {
            log_path.replace('%', "%%")
        } else {
            log_path
        },
        array,
        chdir: request.working_directory.as_deref(),
        cpus: request.resources.cpus,
        mem_mib: request.resources.memory.map(|m| m.mib()),
        gpus: request.resources.gpus,
        time: request.resources.time_limit,
        selectors,
        nice: options.nice_offset.saturating_sub(request.priority),
        dependency: (!dependency.is_empty()).then(|| format!("afterok:{}", dependency.join(":"))),
        cwd: match request.working_directory.as_deref() {
            Some(wd) => std::borrow::Cow::Borrowed(wd),
            None => log_dir,
        },
    })
}

/// The directory the job's log goes to: the request's, the farm's, the working directory,
/// else `/tmp`.
pub fn log_directory<'a>(
    request: &'a JobRequest,
    options: &'a RenderOptions,
) -> Result<std::borrow::Cow<'a, str>> {
    let (field, dir): (&str, &str) = match (
        &request.log_directory,
        &options.log_directory,
        &request.working_directory,
    ) {
        (Some(d), _, _) => ("log_directory", d),
        (None, Some(d), _) => ("log_directory", d),
        (None, None, Some(d)) => ("working_directory", d),
        (None, None, None) => ("log_directory", FALLBACK_LOG_DIRECTORY),
    };
    if dir.contains('\\') {
        return Err(FarmError::invalid(
            field,
            format!(
                "{dir:?} holds a backslash, which slurmd strips from output paths; \
                 name a log_directory without one"
            ),
        ));
    }
    Ok(std::borrow::Cow::Borrowed(dir))
}

/// The render log of `request`: one file for all tasks and attempts, named after the job and
/// its render context so it is known before submission.
pub fn log_path(request: &JobRequest, options: &RenderOptions) -> Result<String> {
    Ok(log_path_in(&log_directory(request, options)?, request))
}

fn log_path_in(dir: &str, request: &JobRequest) -> String {
    let dir = dir.trim_end_matches('/');
    let mut out = String::with_capacity(dir.len() + 64 + 42);
    out.push_str(dir);
    out.push('/');
    out.extend(request.name.chars().take(64).map(|c| {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            c
        } else {
            '_'
        }
    }));
    out.push('.');
    out.push_str(
        request
            .render_context
            .as_hyphenated()
            .encode_lower(&mut Uuid::encode_buffer()),
    );
    out.push_str(".log");
    out
}

/// A path as a slurmd output pattern: `%` doubled so nothing is substituted.
pub fn output_pattern(path: &str) -> String {
    if path.contains('%') {
        path.replace('%', "%%")
    } else {
        path.to_owned()
    }
}

/// One `#SBATCH` option value that sbatch's directive parser reads back as exactly `value`
/// (which holds no line break).
pub fn directive_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_directive_value(&mut out, value);
    out
}

fn push_directive_value(out: &mut String, value: &str) {
    out.push('"');
    let mut rest = value;
    while let Some(i) = rest.find(['"', '\\']) {
        out.push_str(&rest[..i]);
        out.push('\\');
        out.push_str(&rest[i..=i]);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_core::Command;

    fn request(yaml: &str) -> JobRequest {
        let r = JobRequest::from_yaml_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    #[test]
    fn directive_values_escape_only_quotes_and_backslashes() {
        assert_eq!(directive_value("plain"), "\"plain\"");
        assert_eq!(directive_value(r#"a "b" \c # $d"#), r#""a \"b\" \\c # $d""#);
        assert_eq!(directive_value(""), "\"\"");
    }

    #[test]
    fn arrays_are_chunk_indices_capped_by_the_limit() {
        let r = request("name: x\ncommands: [[r, '{frame}']]\nframes: 1001-1100\nchunk_size: 10\n");
        let opts = RenderOptions {
            array_limit: Some(4),
            ..Default::default()
        };
        let s = sbatch_script(&r, &opts, 1).unwrap();
        assert!(s.contains("#SBATCH --array=0-9%4\n"), "{s}");
        assert!(s.contains("farm_chunk=${SLURM_ARRAY_TASK_ID:-0}\n"));
        let single = request("name: x\ncommands: [[r]]\n");
        assert!(
            !sbatch_script(&single, &opts, 1)
                .unwrap()
                .contains("--array")
        );
    }

    #[test]
    fn the_comment_carries_context_attempt_shape_and_tags() {
        let r = request(
            "name: x\nrender_context: 6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91\ncommands: [[r]]\nframes: 1-7\nchunk_size: 3\ntags: [show:abc, 'k=v']\n",
        );
        assert_eq!(
            FarmComment::for_request(&r, 2).encode(),
            "farm=1;ctx=6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91;attempt=2;tasks=3;chunk=3;frames=7;tags=show:abc,k=v"
        );
    }

    #[test]
    fn logs_go_to_the_first_named_directory_with_percent_doubled() {
        let mut r = request(
            "name: \"a b/c%d\"\nrender_context: 00000000-0000-4000-8000-000000000001\ncommands: [[r]]\n",
        );
        let opts = RenderOptions::default();
        assert_eq!(
            log_path(&r, &opts).unwrap(),
            "/tmp/a_b_c_d.00000000-0000-4000-8000-000000000001.log"
        );
        r.working_directory = Some("/show dir".into());
        assert!(log_path(&r, &opts).unwrap().starts_with("/show dir/"));
        let opts = RenderOptions {
            log_directory: Some("/logs/50%".into()),
            ..Default::default()
        };
        assert!(log_path(&r, &opts).unwrap().starts_with("/logs/50%/"));
        assert!(
            sbatch_script(&r, &opts, 1)
                .unwrap()
                .contains("#SBATCH --output=\"/logs/50%%/a_b_c_d.")
        );
        r.log_directory = Some("/x\\y".into());
        let err = sbatch_script(&r, &opts, 1).unwrap_err();
        assert!(
            matches!(&err, FarmError::InvalidRequest { field, .. } if field == "log_directory"),
            "{err}"
        );
    }

    #[test]
    fn native_directives_are_checked_and_override_settings() {
        let opts = RenderOptions {
            partition: Some("batch".into()),
            qos: Some("low".into()),
            ..Default::default()
        };
        let r = request(
            "name: x\ncommands: [[r]]\nnative: {slurm: {partition: gpu, constraint: 'a100&nvlink'}}\n",
        );
        let s = sbatch_script(&r, &opts, 1).unwrap();
        assert!(s.contains("#SBATCH --partition=\"gpu\"\n#SBATCH --qos=\"low\"\n#SBATCH --constraint=\"a100&nvlink\"\n"), "{s}");
        let body: serde_json::Value = serde_json::from_str(
            &rest_body(
                &r,
                &RenderOptions {
                    transport: Transport::Rest,
                    ..opts.clone()
                },
                1,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(body["job"]["partition"], "gpu");
        assert_eq!(body["job"]["constraints"], "a100&nvlink");
        let bad = request("name: x\ncommands: [[r]]\nnative: {slurm: {partiton: gpu}}\n");
        let err = sbatch_script(&bad, &opts, 1).unwrap_err();
        assert!(
            matches!(&err, FarmError::InvalidRequest { field, .. } if field == "native.slurm.partiton"),
            "{err}"
        );
        let list = request("name: x\ncommands: [[r]]\nnative: {slurm: {qos: [a]}}\n");
        assert!(sbatch_script(&list, &opts, 1).is_err());
    }

    #[test]
    fn dependencies_must_be_slurm_ids_and_priority_becomes_nice() {
        let mut r = JobRequest::new("x", vec![Command::Argv(vec!["r".into()])]);
        r.depends_on = vec!["12".into(), "34".into()];
        r.priority = 50;
        let opts = RenderOptions {
            nice_offset: 1000,
            ..Default::default()
        };
        let s = sbatch_script(&r, &opts, 1).unwrap();
        assert!(s.contains("#SBATCH --nice=950\n#SBATCH --dependency=afterok:12:34\n#SBATCH --kill-on-invalid-dep=yes\n"), "{s}");
        r.depends_on = vec!["12_3".into()];
        let err = sbatch_script(&r, &opts, 1).unwrap_err();
        assert!(
            matches!(&err, FarmError::InvalidRequest { field, .. } if field == "depends_on[0]"),
            "{err}"
        );
    }

    #[test]
    fn rest_bodies_always_carry_environment_and_a_working_directory() {
        let r = request(
            "name: x\ncommands: [[r]]\nresources: {cpus: 2, memory: 1536M, gpus: 1, time_limit: 61s}\n",
        );
        let opts = RenderOptions {
            transport: Transport::Rest,
            environment: crate::config::SlurmSettings::default().environment,
            ..Default::default()
        };
        let body: serde_json::Value =
            serde_json::from_str(&rest_body(&r, &opts, 1).unwrap()).unwrap();
        let job = &body["job"];
        assert_eq!(job["environment"]["PATH"], crate::config::DEFAULT_PATH);
        assert_eq!(job["current_working_directory"], "/tmp");
        assert_eq!(job["memory_per_node"], 1536);
        assert_eq!(job["time_limit"], 2);
        assert_eq!(job["gres"], "gpu:1");
        let script = body["script"].as_str().unwrap();
        assert!(
            script.starts_with("#!/bin/bash\nset -u\n") && !script.contains("#SBATCH"),
            "{script}"
        );
    }
}
