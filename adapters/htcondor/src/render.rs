//! JobRequest -> HTCondor submit description (plus wrapper script and DAG): pure and
//! deterministic, golden-tested and checked by HTCondor's own parser.
//!
//! One request is one cluster; task (chunk) `i` is proc `i`. Two shapes, chosen per request:
//!
//! - **Direct**: when every task runs exactly one command (one command, and no frames, or
//!   `per_chunk`, or one frame per chunk), the environment sets none of
//!   [`BASH_STARTUP_VARIABLES`], and the `arguments` and `environment` lines come out exactly
//!   ([`syntax::new_syntax`] proves each line), the command's argv travels in `arguments` and
//!   the environment in `environment`, both in the new syntax, so `condor_q` shows the real
//!   command line. A fixed `bash -c` launcher in front of it appends stdout
//!   and stderr to the render log, enters the working directory, and `exec`s the program
//!   (its exit status is the job's). Frames come from a `queue farm_first,farm_last from (...)`
//!   table, one row per chunk.
//! - **Wrapper**: otherwise (several commands, several frames per proc, values holding line
//!   breaks, `$$(`, `$(DOLLAR)` or `$` patterns the `$(DOLLAR)` pass would mangle), the
//!   executable is a generated bash script made by
//!   [`farm_core::script::render_task_body`], run as `task.sh <proc> <render log>` with
//!   `queue <tasks>`.
//!
//! Every job has a directory `<log_directory>/<render context>/` holding the submit file, the
//! wrapper, HTCondor's user log (`condor.log`, read back when a job has left the queue) and
//! one render log per attempt (`render.<cluster>.log`). The request's name, tags, render
//! context and attempt ride along as custom attributes (`+FarmName`, ...), which is how
//! `list_jobs`, idempotent submit and re-attaching find jobs again.

use std::fmt::Write as _;

use farm_core::command::Segment;
use farm_core::{FarmError, JobRequest, Placeholder, RenderedFile, RenderedJob, Repeat, Result};

use crate::config::CondorSettings;
use crate::syntax::{self, Piece};
pub use crate::vocabulary::{
    JobLayout, SUBMIT_FILE, USER_LOG_FILE, WRAPPER_FILE, attr, check_directory,
};

/// The DAGMan description written for requests with dependencies.
pub const DAG_FILE: &str = "farm.dag";
/// The DAGMan PRE script that waits for dependencies.
pub const DEPENDENCY_SCRIPT: &str = "wait-for-dependencies.sh";
/// Exit status of the launcher or wrapper when the render log cannot be opened.
pub const EXIT_NO_RENDER_LOG: i32 = 122;
/// Exit status of the dependency script that makes DAGMan run it again later.
pub const DEFER_STATUS: i32 = 75;
/// Seconds DAGMan waits before running the dependency script again.
pub const DEFER_SECONDS: u32 = 60;

/// Direct mode lists one queue row per task; beyond this many the wrapper's `queue N` keeps
/// the submit file small.
pub const DIRECT_MAX_TASKS: usize = 5_000;

/// Variables the direct-mode launcher (bash) reads or rewrites when it starts, so a value
/// given to it through `environment` would not reach the command as is: `BASH_ENV` is
/// sourced, `PS1`/`PS2` are unset in a non-interactive shell, `SHLVL` is counted, `IFS`,
/// `OPTIND`, `OPTERR`, `PS4`, `BASH`, `BASH_EXECUTION_STRING` and `COMP_WORDBREAKS` are
/// reset. (Names that request validation already refuses, such as `PWD`, are not listed.)
/// Requests setting one take the wrapper route, which exports them after bash started.
pub const BASH_STARTUP_VARIABLES: &[&str] = &[
    "BASH",
    "BASH_ENV",
    "BASH_EXECUTION_STRING",
    "COMP_WORDBREAKS",
    "IFS",
    "OPTERR",
    "OPTIND",
    "PS1",
    "PS2",
    "PS4",
    "SHLVL",
];

/// The launcher of direct mode: `bash -c LAUNCHER farm-task LOG [DIR] ARGV...`.
const LAUNCHER: &str = "command exec >>\"${1}\" 2>&1 || exit 122; shift; exec -- \"$@\"";
const LAUNCHER_IN_DIR: &str =
    "command exec >>\"${1}\" 2>&1 || exit 122; cd -- \"${2}\" || exit 121; shift 2; exec -- \"$@\"";
/// `$0` of the launcher.
pub const LAUNCHER_NAME: &str = "farm-task";

/// How the request's commands reach the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// argv in `arguments`, environment in `environment`.
    Direct,
    /// A generated bash script.
    Wrapper,
}

/// Which [`Mode`] a valid request is rendered in.
pub fn mode(request: &JobRequest, settings: &CondorSettings) -> Mode {
    let layout = JobLayout::for_request(request, &settings.log_directory);
    if direct_lines(request, &layout).is_some() {
        Mode::Direct
    } else {
        Mode::Wrapper
    }
}

/// The argv of the single command as pieces, when every task runs exactly that command.
fn direct_argv(request: &JobRequest) -> Option<Vec<Vec<Piece>>> {
    let [command] = request.commands.as_slice() else {
        return None;
    };
    let one_step_per_task =
        request.frames.is_none() || request.repeat == Repeat::PerChunk || request.chunk_size == 1;
    if !one_step_per_task || request.task_count() > DIRECT_MAX_TASKS {
        return None;
    }
    if BASH_STARTUP_VARIABLES
        .iter()
        .any(|name| request.environment.contains_key(*name))
    {
        return None;
    }
    let templates = command.templates().ok()?;
    Some(
        templates
            .into_iter()
            .map(|template| {
                template
                    .into_iter()
                    .map(|segment| match segment {
                        Segment::Literal(text) => Piece::Text(text),
                        Segment::Placeholder(p) => placeholder_piece(request, p),
                    })
                    .collect()
            })
            .collect(),
    )
}

/// The `arguments` and `environment` values of direct mode, when the request takes that
/// route and HTCondor reads both lines back exactly.
fn direct_lines(request: &JobRequest, layout: &JobLayout) -> Option<(String, String)> {
    let argv = direct_argv(request)?;
    let mut items = launcher_items(request, render_log_pieces(layout));
    items.extend(argv);
    let arguments = syntax::new_syntax(&items).ok()?;
    let environment = syntax::new_syntax(&direct_environment(request)).ok()?;
    Some((arguments, environment))
}

fn render_log_pieces(layout: &JobLayout) -> Vec<Piece> {
    vec![
        Piece::text(format!("{}/render.", layout.dir())),
        Piece::Macro("ClusterId"),
        Piece::text(".log"),
    ]
}

fn placeholder_piece(request: &JobRequest, placeholder: Placeholder) -> Piece {
    match placeholder {
        // Direct mode runs one frame per proc when commands repeat per frame.
        Placeholder::Frame | Placeholder::ChunkFirst => Piece::Macro("farm_first"),
        Placeholder::ChunkLast => Piece::Macro("farm_last"),
        Placeholder::ChunkIndex => Piece::Macro("Process"),
        Placeholder::RenderContext => Piece::Text(request.render_context.to_string()),
    }
}

/// `-c LAUNCHER farm-task LOG [DIR]`: what direct mode passes to bash before the command.
fn launcher_items(request: &JobRequest, render_log: Vec<Piece>) -> Vec<Vec<Piece>> {
    let script = if request.working_directory.is_some() {
        LAUNCHER_IN_DIR
    } else {
        LAUNCHER
    };
    let mut items = vec![
        vec![Piece::text("-c")],
        vec![Piece::text(script)],
        vec![Piece::text(LAUNCHER_NAME)],
        render_log,
    ];
    if let Some(dir) = &request.working_directory {
        items.push(vec![Piece::text(dir.clone())]);
    }
    items
}

/// The arguments direct mode gives `/bin/bash` before the command's argv, for a job whose
/// render log is `render_log` (tests compare the arguments a job receives with this
/// followed by the command's argv from [`JobRequest::steps`]).
pub fn launcher_argv(request: &JobRequest, render_log: &str) -> Vec<String> {
    launcher_items(request, vec![Piece::text(render_log)])
        .into_iter()
        .map(|item| {
            item.into_iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t,
                    Piece::Macro(m) => format!("$({m})"),
                })
                .collect()
        })
        .collect()
}

/// Renders the job files: the submit description first, then the wrapper script (wrapper
/// mode) and, for a request with dependencies, a DAGMan description and its PRE script.
pub fn render(request: &JobRequest, settings: &CondorSettings) -> Result<RenderedJob> {
    request.validate()?;
    let layout = JobLayout::for_request(request, &settings.log_directory);
    let field = if request.log_directory.is_some() {
        "log_directory"
    } else {
        "settings.log_directory"
    };
    let refuse = |problem: &str| {
        FarmError::invalid(field, format!("job directory {:?} {problem}", layout.dir()))
    };
    check_directory(layout.dir()).map_err(refuse)?;
    let dependencies = dependency_clusters(request)?;
    let native = native_lines(request)?;
    let paths = PathLines {
        executable: syntax::plain_text(&layout.file(WRAPPER_FILE)).map_err(refuse)?,
        log: syntax::plain_text(&layout.user_log()).map_err(refuse)?,
        wrapper_arguments: syntax::new_syntax(&[
            vec![Piece::Macro("Process")],
            render_log_pieces(&layout),
        ])
        .map_err(refuse)?,
    };

    let direct = direct_lines(request, &layout);
    let mut files = Vec::new();
    let submit = submit_description(request, settings, &paths, direct.as_ref(), &native);
    files.push(RenderedFile {
        name: SUBMIT_FILE.into(),
        contents: submit,
        executable: false,
    });
    if direct.is_none() {
        files.push(RenderedFile {
            name: WRAPPER_FILE.into(),
            contents: wrapper_script(request),
            executable: true,
        });
    }
    if !dependencies.is_empty() {
        files.push(RenderedFile {
            name: DAG_FILE.into(),
            contents: dag_file(request, &dependencies),
            executable: false,
        });
        files.push(RenderedFile {
            name: DEPENDENCY_SCRIPT.into(),
            contents: dependency_script(),
            executable: true,
        });
    }
    Ok(RenderedJob { files })
}

/// Submit-file values derived from the job directory, checked once.
struct PathLines {
    executable: String,
    log: String,
    wrapper_arguments: String,
}

fn submit_description(
    request: &JobRequest,
    settings: &CondorSettings,
    paths: &PathLines,
    direct: Option<&(String, String)>,
    native: &[String],
) -> String {
    let mut s = String::new();
    s.push_str(
        "# HTCondor submit description written by farm-htcondor; `farm render` writes it again.\n",
    );
    let _ = writeln!(
        s,
        "# Render context {}: one proc per task.",
        request.render_context
    );
    let _ = writeln!(s, "universe = {}", settings.universe);
    match direct {
        Some((arguments, environment)) => {
            s.push_str("executable = /bin/bash\ntransfer_executable = false\n");
            let _ = writeln!(s, "arguments = {arguments}");
            let _ = writeln!(s, "environment = {environment}");
        }
        None => {
            let _ = writeln!(s, "executable = {}", paths.executable);
            let _ = writeln!(s, "arguments = {}", paths.wrapper_arguments);
        }
    }
    let _ = writeln!(s, "log = {}", paths.log);
    s.push_str("notification = never\n");
    let _ = writeln!(s, "batch_name = {}", syntax::batch_name(&request.name));
    if request.priority != 0 {
        let _ = writeln!(s, "priority = {}", request.priority);
    }
    let r = &request.resources;
    if let Some(cpus) = r.cpus {
        let _ = writeln!(s, "request_cpus = {cpus}");
    }
    if let Some(memory) = r.memory {
        let _ = writeln!(s, "request_memory = {}", memory.mib());
    }
    if let Some(gpus) = r.gpus {
        let _ = writeln!(s, "request_gpus = {gpus}");
    }
    if let Some(limit) = r.time_limit {
        let _ = writeln!(s, "allowed_execute_duration = {}", limit.as_secs());
    }
    if let Some(retries) = settings.max_retries {
        let _ = writeln!(s, "max_retries = {retries}");
    }
    let _ = writeln!(
        s,
        "+{} = \"{}\"",
        attr::NAME,
        syntax::percent_encode(&request.name)
    );
    let _ = writeln!(
        s,
        "+{} = \"{}\"",
        attr::RENDER_CONTEXT,
        request.render_context
    );
    let _ = writeln!(s, "+{} = \"{}\"", attr::TAGS, request.tags.join(","));
    let _ = writeln!(s, "+{} = 1", attr::ATTEMPT);
    let _ = writeln!(s, "+{} = {}", attr::TASKS, request.task_count());
    let _ = writeln!(
        s,
        "+{} = {}",
        attr::FRAMES,
        request.frames.as_ref().map_or(0, |f| f.len())
    );
    let _ = writeln!(s, "+{} = {}", attr::CHUNK_SIZE, request.chunk_size);
    for line in native {
        s.push_str(line);
        s.push('\n');
    }
    match (direct, &request.frames) {
        (Some(_), Some(_)) => {
            s.push_str("queue farm_first,farm_last from (\n");
            for task in request.tasks() {
                let frames = task
                    .frames
                    .expect("tasks of a request with frames have frames");
                let _ = writeln!(s, "  {} {}", frames.first(), frames.last());
            }
            s.push_str(")\n");
        }
        (Some(_), None) => s.push_str("queue 1\n"),
        (None, _) => {
            let _ = writeln!(s, "queue {}", request.task_count());
        }
    }
    s
}

/// The request's environment plus the `FARM_*` variables, per proc.
fn direct_environment(request: &JobRequest) -> Vec<Vec<Piece>> {
    let mut items: Vec<Vec<Piece>> = request
        .environment
        .iter()
        .map(|(k, v)| vec![Piece::text(format!("{k}={v}"))])
        .collect();
    let var = |p: Placeholder| format!("{}=", p.env_var());
    items.push(vec![Piece::text(format!(
        "{}{}",
        var(Placeholder::RenderContext),
        request.render_context
    ))]);
    items.push(vec![
        Piece::text(var(Placeholder::ChunkIndex)),
        Piece::Macro("Process"),
    ]);
    if request.frames.is_some() {
        items.push(vec![
            Piece::text(var(Placeholder::ChunkFirst)),
            Piece::Macro("farm_first"),
        ]);
        items.push(vec![
            Piece::text(var(Placeholder::ChunkLast)),
            Piece::Macro("farm_last"),
        ]);
        if request.repeat == Repeat::PerFrame {
            items.push(vec![
                Piece::text(var(Placeholder::Frame)),
                Piece::Macro("farm_first"),
            ]);
        }
    }
    items
}

fn wrapper_script(request: &JobRequest) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# Task program written by farm-htcondor for render context {}.\n\
         # HTCondor runs one copy per proc with two arguments: the proc number (the chunk\n\
         # index) and the render log to append to.",
        request.render_context
    );
    let _ = writeln!(
        s,
        "command exec >>\"${{2:?no render log given}}\" 2>&1 || exit {EXIT_NO_RENDER_LOG}"
    );
    s.push_str(&farm_core::script::render_task_body(request, "\"${1:-}\""));
    s
}

/// The request's dependencies as cluster ids.
fn dependency_clusters(request: &JobRequest) -> Result<Vec<u32>> {
    request
        .depends_on
        .iter()
        .enumerate()
        .map(|(i, dep)| {
            crate::vocabulary::cluster_id(dep).ok_or_else(|| {
                FarmError::invalid(
                    format!("depends_on[{i}]"),
                    format!("{dep:?} is not an HTCondor cluster id"),
                )
            })
        })
        .collect()
}

fn dag_file(request: &JobRequest, dependencies: &[u32]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# DAGMan description written by farm-htcondor for render context {}.\n\
         # Submit it from the job directory: condor_submit_dag {DAG_FILE}\n\
         # The PRE script holds the render until every dependency completed successfully;\n\
         # it fails the node (so the render never runs) when a dependency failed.",
        request.render_context
    );
    let _ = writeln!(s, "JOB render {SUBMIT_FILE}");
    let deps: Vec<String> = dependencies.iter().map(u32::to_string).collect();
    let _ = writeln!(
        s,
        "SCRIPT DEFER {DEFER_STATUS} {DEFER_SECONDS} PRE render {DEPENDENCY_SCRIPT} {}",
        deps.join(" ")
    );
    s
}

fn dependency_script() -> String {
    format!(
        r#"#!/bin/sh
# DAGMan PRE script written by farm-htcondor. Arguments: HTCondor cluster ids.
# Exit 0 once every cluster completed successfully (all procs Completed, exit code 0),
# {DEFER_STATUS} while one is still in the queue (DAGMan runs this again {DEFER_SECONDS} s later),
# 1 when one failed, was removed or is unknown: the render node then fails without running.
for cluster in "$@"; do
  case "$cluster" in ''|*[!0-9]*) echo "not a cluster id: $cluster" >&2; exit 1 ;; esac
  queued=$(condor_q -af ClusterId -constraint "ClusterId == $cluster") || exit {DEFER_STATUS}
  if [ -n "$queued" ]; then exit {DEFER_STATUS}; fi
  ended=$(condor_history -af JobStatus ExitBySignal ExitCode -constraint "ClusterId == $cluster") || exit {DEFER_STATUS}
  if [ -z "$ended" ]; then
    echo "dependency $cluster is in neither condor_q nor condor_history" >&2
    exit 1
  fi
  if printf '%s\n' "$ended" | grep -qv '^4 false 0$'; then
    echo "dependency $cluster did not complete successfully: $ended" >&2
    exit 1
  fi
done
exit 0
"#
    )
}

/// Keys the adapter writes itself; `native.htcondor` may not set them.
const RESERVED_KEYS: &[&str] = &[
    "executable",
    "arguments",
    "args",
    "environment",
    "env",
    "log",
    "output",
    "error",
    "input",
    "transfer_executable",
    "batch_name",
    "queue",
];

/// `native.htcondor` entries as submit lines. Values are submit language, written as given
/// (so `$(...)` in them expands, as the user intends); keys and line structure are checked.
fn native_lines(request: &JobRequest) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (key, value) in request.native_for("htcondor") {
        let field = format!("native.htcondor.{key}");
        let bare = key.strip_prefix('+').or_else(|| {
            key.get(..3)
                .filter(|p| p.eq_ignore_ascii_case("my."))
                .map(|_| &key[3..])
        });
        let name = bare.unwrap_or(&key);
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_name {
            return Err(FarmError::invalid(
                field,
                "is not a submit command or +Attribute name",
            ));
        }
        if bare.is_some() && name.len() >= 4 && name[..4].eq_ignore_ascii_case("farm") {
            return Err(FarmError::invalid(
                field,
                "Farm* attributes are written by the adapter",
            ));
        }
        if bare.is_none() && RESERVED_KEYS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(FarmError::invalid(
                field,
                format!("{key} is written by the adapter from the request"),
            ));
        }
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(FarmError::invalid(
                    field,
                    "must be a string, number or boolean",
                ));
            }
        };
        if text.contains(['\n', '\r', '\0']) {
            return Err(FarmError::invalid(
                field,
                "contains a line break or NUL, which would start a new submit command",
            ));
        }
        if text.trim_end().ends_with('\\') {
            return Err(FarmError::invalid(
                field,
                "ends with a backslash, which continues the line in a submit file",
            ));
        }
        lines.push(format!("{key} = {text}"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(yaml: &str) -> JobRequest {
        let r = JobRequest::from_yaml_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    fn main_file(yaml: &str) -> String {
        render(&req(yaml), &CondorSettings::default())
            .unwrap()
            .main()
            .contents
            .clone()
    }

    #[test]
    fn one_command_without_frames_goes_direct() {
        let r = req(
            "name: x\nrender_context: 00000000-0000-4000-8000-000000000001\ncommands: [[/bin/echo, a b, \"it's\"]]\n",
        );
        assert_eq!(mode(&r, &CondorSettings::default()), Mode::Direct);
        let text = main_file(
            "name: x\nrender_context: 00000000-0000-4000-8000-000000000001\ncommands: [[/bin/echo, a b, \"it's\"]]\n",
        );
        assert!(text.contains("executable = /bin/bash\n"), "{text}");
        assert!(text.contains(" /bin/echo 'a b' 'it''s'\"\n"), "{text}");
        assert!(text.contains("environment = \"FARM_RENDER_CONTEXT=00000000-0000-4000-8000-000000000001 FARM_CHUNK_INDEX=$(Process)\"\n"), "{text}");
        assert!(text.ends_with("queue 1\n"), "{text}");
    }

    #[test]
    fn several_commands_or_frames_per_chunk_use_the_wrapper() {
        for yaml in [
            "name: x\ncommands: [[a], [b]]\n",
            "name: x\ncommands: [[a, '{frame}']]\nframes: 1-4\nchunk_size: 2\n",
            "name: x\ncommands: [[a, \"line\\nbreak\"]]\n",
            "name: x\ncommands: [[a, '$$(Memory)']]\n",
            "name: x\ncommands: [[a, '$(DOLLAR)']]\n",
            "name: x\ncommands: [[a]]\nenvironment: {BASH_ENV: /x}\n",
            "name: x\ncommands: [[a]]\nenvironment: {V: \"a\\nb\"}\n",
        ] {
            let r = req(yaml);
            assert_eq!(
                mode(&r, &CondorSettings::default()),
                Mode::Wrapper,
                "{yaml}"
            );
            let job = render(&r, &CondorSettings::default()).unwrap();
            assert_eq!(job.files[1].name, WRAPPER_FILE);
            assert!(job.files[1].executable);
            assert!(
                job.main()
                    .contents
                    .contains(&format!("queue {}\n", r.task_count())),
                "{yaml}"
            );
        }
    }

    #[test]
    fn per_frame_single_chunks_and_per_chunk_ranges_go_direct_with_a_table() {
        let text = main_file("name: x\ncommands: [[r, '{frame}']]\nframes: 1001-1003\n");
        assert!(
            text.contains(
                "queue farm_first,farm_last from (\n  1001 1001\n  1002 1002\n  1003 1003\n)\n"
            ),
            "{text}"
        );
        assert!(text.contains("FARM_FRAME=$(farm_first)"), "{text}");
        let text = main_file(
            "name: x\ncommands: [[r, '{chunk_first}-{chunk_last}']]\nframes: 1-10\nchunk_size: 4\nrepeat: per_chunk\n",
        );
        assert!(text.contains(" r $(farm_first)-$(farm_last)\"\n"), "{text}");
        assert!(text.contains("  9 10\n)\n"), "{text}");
        assert!(!text.contains("FARM_FRAME"), "{text}");
    }

    #[test]
    fn huge_frame_lists_use_the_compact_wrapper() {
        let small = req("name: x\ncommands: [[r, '{frame}']]\nframes: 1-5000\n");
        assert_eq!(mode(&small, &CondorSettings::default()), Mode::Direct);
        let big = req("name: x\ncommands: [[r, '{frame}']]\nframes: 1-5001\n");
        assert_eq!(mode(&big, &CondorSettings::default()), Mode::Wrapper);
        assert!(
            render(&big, &CondorSettings::default())
                .unwrap()
                .main()
                .contents
                .ends_with("queue 5001\n")
        );
    }

    #[test]
    fn dependencies_add_a_dag_and_must_be_cluster_ids() {
        let job = render(
            &req("name: x\ncommands: [[a]]\ndepends_on: ['4711', '12']\n"),
            &CondorSettings::default(),
        )
        .unwrap();
        let names: Vec<_> = job.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [SUBMIT_FILE, DAG_FILE, DEPENDENCY_SCRIPT]);
        assert!(
            job.files[1]
                .contents
                .contains("SCRIPT DEFER 75 60 PRE render wait-for-dependencies.sh 4711 12\n")
        );
        let err = render(
            &req("name: x\ncommands: [[a]]\ndepends_on: ['abc']\n"),
            &CondorSettings::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, FarmError::InvalidRequest { field, .. } if field == "depends_on[0]"),
            "{err}"
        );
    }

    #[test]
    fn native_directives_are_checked() {
        let ok = main_file(
            "name: x\ncommands: [[a]]\nnative: {htcondor: {'+AccountingGroup': '\"vfx\"', requirements: 'Memory > 10', max_retries: 2, hold: true}}\n",
        );
        assert!(ok.contains("+AccountingGroup = \"vfx\"\nhold = true\nmax_retries = 2\nrequirements = Memory > 10\nqueue 1\n"), "{ok}");
        for (native, needle) in [
            ("{executable: /bin/x}", "written by the adapter"),
            ("{Arguments: x}", "written by the adapter"),
            ("{'+FarmName': '\"x\"'}", "Farm*"),
            ("{'MY.FarmTags': '\"x\"'}", "Farm*"),
            ("{'bad key': x}", "not a submit command"),
            ("{requirements: \"a\\nqueue\"}", "line break"),
            ("{requirements: 'x \\'}", "backslash"),
            ("{requirements: [1]}", "string, number or boolean"),
        ] {
            let r = req(&format!(
                "name: x\ncommands: [[a]]\nnative: {{htcondor: {native}}}\n"
            ));
            let err = render(&r, &CondorSettings::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("native.htcondor.") && err.contains(needle),
                "{native}: {err}"
            );
        }
    }

    #[test]
    fn log_directories_the_submit_language_cannot_carry_are_refused() {
        let err = render(
            &req("name: x\ncommands: [[a]]\nlog_directory: '/a/$$(b)'\n"),
            &CondorSettings::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, FarmError::InvalidRequest { field, .. } if field == "log_directory"),
            "{err}"
        );
        let text = main_file(
            "name: x\ncommands: [[a]]\nlog_directory: '/logs/$x/'\nrender_context: 00000000-0000-4000-8000-000000000001\n",
        );
        assert!(
            text.contains(
                "log = /logs/$(DOLLAR)x/00000000-0000-4000-8000-000000000001/condor.log\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn layouts_come_back_from_the_user_log() {
        let layout = JobLayout::from_user_log("/mnt/logs/abc/condor.log").unwrap();
        assert_eq!(layout.dir(), "/mnt/logs/abc");
        assert_eq!(layout.render_log(42), "/mnt/logs/abc/render.42.log");
        assert!(JobLayout::from_user_log("/elsewhere/job.log").is_none());
    }
}
