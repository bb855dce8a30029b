//! The bash program that runs one task of a request, shared by every adapter whose
//! scheduler runs a script (Slurm's batch script, HTCondor's wrapper executable).
//!
//! This is a security boundary. Every value that comes from a request — argv elements,
//! environment values, paths — is written with `shell-quote`'s Bash quoting (`$'...'` with
//! escapes), so it is one inert word: no expansion, no globbing, no word splitting, and no
//! raw line break that could start a `#SBATCH` line. Programs are started with
//! `exec -- "$@"` in a subshell, so a program named like a builtin, a function or a `%job`
//! spec is still looked up as a file. The output is deterministic: the same request gives
//! the same bytes. Its behaviour is property-tested against [`plan`](crate::plan) under a
//! real bash.

use std::fmt::Write as _;

use shell_quote::Bash;

use crate::command::{Command, Placeholder, Segment};
use crate::frames::FrameSet;
use crate::request::{JobRequest, Repeat};

/// Exit status when the chunk index is missing or out of range.
pub const EXIT_BAD_CHUNK: i32 = 120;
/// Exit status when the working directory cannot be entered.
pub const EXIT_BAD_WORKDIR: i32 = 121;

/// Quotes one value as a single inert bash word.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_quoted(&mut out, value);
    out
}

/// Appends `value` to `out` as one inert bash word, exactly as `shell-quote`'s Bash quoting
/// writes it. Words made only of the characters that crate itself leaves bare are appended
/// directly (the crate would copy them unchanged, after allocating a classification of every
/// character); everything else goes through the crate.
pub fn push_quoted(out: &mut String, value: &str) {
    if !value.is_empty() && value.bytes().all(is_inert) {
        out.push_str(value);
    } else {
        <Bash as shell_quote::QuoteInto<String>>::quote_into(value, out);
    }
}

/// The bytes `shell-quote` classifies as inert for Bash (`PrintableInert`): safe unquoted in
/// any position of a word.
fn is_inert(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b',' | b'.' | b'/' | b'_' | b'-' | b':' | b'@' | b'+')
}

/// Renders the task program, without a shebang or scheduler directives (adapters add
/// those above it).
///
/// `chunk_index_expr` is the bash expression that yields the task's chunk index at run
/// time, e.g. `"${SLURM_ARRAY_TASK_ID:-0}"` or `"${1:-}"`. It comes from adapter code,
/// never from a request, and is inserted verbatim. The request must be valid.
pub fn render_task_body(request: &JobRequest, chunk_index_expr: &str) -> String {
    let mut s = String::with_capacity(task_body_capacity(request));
    push_task_body(&mut s, request, chunk_index_expr);
    s
}

/// A capacity that holds the task program of `request` without reallocating.
pub fn task_body_capacity(request: &JobRequest) -> usize {
    let words: usize = request
        .commands
        .iter()
        .map(|c| match c {
            Command::Argv(argv) => argv.iter().map(|a| a.len() + 3).sum::<usize>(),
            Command::Shell(script) => script.len() + 16,
        })
        .sum();
    let env: usize = request
        .environment
        .iter()
        .map(|(k, v)| k.len() + v.len() + 12)
        .sum();
    1024 + words + env
}

/// Appends the task program of [`render_task_body`] to `s`, for renderers that write a job
/// file in one buffer.
pub fn push_task_body(s: &mut String, request: &JobRequest, chunk_index_expr: &str) {
    s.push_str("set -u\n");
    match &request.frames {
        None => s.push_str("farm_frames=()\nexport FARM_CHUNK_INDEX=0\n"),
        Some(frames) => {
            render_chunk_selection(s, frames, request.chunk_size.max(1), chunk_index_expr)
        }
    }
    s.push_str("export ");
    s.push_str(Placeholder::RenderContext.env_var());
    s.push('=');
    s.push_str(
        request
            .render_context
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    s.push('\n');
    for (name, value) in &request.environment {
        s.push_str("export ");
        s.push_str(name);
        s.push('=');
        push_quoted(s, value);
        s.push('\n');
    }
    if let Some(dir) = &request.working_directory {
        let q = quote(dir);
        let _ = writeln!(
            s,
            "cd -- {q} || {{ printf 'farm: cannot enter working directory %s\\n' {q} >&2; exit {EXIT_BAD_WORKDIR}; }}"
        );
    }
    s.push_str(FARM_RUN);
    let per_frame = request.frames.is_some() && request.repeat == Repeat::PerFrame;
    let indent = if per_frame {
        s.push_str("for FARM_FRAME in \"${farm_frames[@]}\"; do\n  export FARM_FRAME\n");
        "  "
    } else {
        ""
    };
    for (i, command) in request.commands.iter().enumerate() {
        s.push_str(indent);
        s.push_str("farm_run ");
        let _ = write!(s, "{i}");
        match command {
            Command::Argv(argv) => {
                for arg in argv {
                    s.push(' ');
                    push_word(s, arg);
                }
            }
            Command::Shell(script) => {
                s.push_str(" /bin/sh -c ");
                push_quoted(s, script);
            }
        }
        s.push('\n');
    }
    if per_frame {
        s.push_str("done\n");
    }
    s.push_str("exit 0\n");
}

/// Runs one command as a file (`exec --`, in a subshell), and on failure reports it and
/// exits with its status.
const FARM_RUN: &str = "farm_run() {
  local farm_command=\"$1\"; shift
  ( exec -- \"$@\" )
  local farm_status=$?
  if [ \"$farm_status\" -ne 0 ]; then
    printf 'farm: command %s%s exited with status %s\\n' \"$farm_command\" \"${FARM_FRAME:+ (frame $FARM_FRAME)}\" \"$farm_status\" >&2
    exit \"$farm_status\"
  fi
}
";

/// One argv element as one bash word: quoted literals glued to double-quoted variables.
fn push_word(s: &mut String, arg: &str) {
    if !arg.contains('{') {
        // No brace, no placeholder: the whole element is one literal.
        push_quoted(s, arg);
        return;
    }
    for segment in crate::command::parse_template(arg).expect("validated request") {
        match segment {
            Segment::Literal(text) => push_quoted(s, &text),
            Segment::Placeholder(p) => {
                s.push_str("\"$");
                s.push_str(p.env_var());
                s.push('"');
            }
        }
    }
}

/// Emits code that reads the chunk index, checks it, and fills `farm_frames` and the
/// `FARM_CHUNK_*` variables. A frame set that is one arithmetic run is computed; any other
/// is a lookup table with bash brace ranges, so scripts stay small either way.
fn render_chunk_selection(s: &mut String, frames: &FrameSet, size: u32, chunk_index_expr: &str) {
    let count = frames.chunk_count(size);
    let _ = writeln!(s, "farm_chunk={chunk_index_expr}");
    let _ = writeln!(
        s,
        "case \"$farm_chunk\" in ''|*[!0-9]*) printf 'farm: bad chunk index %s\\n' \"$farm_chunk\" >&2; exit {EXIT_BAD_CHUNK} ;; esac\n\
         farm_chunk=$((10#$farm_chunk))\n\
         if (( farm_chunk >= {count} )); then printf 'farm: chunk %s is not in this job (it has {count})\\n' \"$farm_chunk\" >&2; exit {EXIT_BAD_CHUNK}; fi"
    );
    if let [run] = frames.runs() {
        let _ = writeln!(
            s,
            "farm_frames=()\n\
             for (( farm_f = {start} + farm_chunk * {span}, farm_n = 0; farm_n < {size} && farm_f <= {end}; farm_f += {step}, farm_n++ )); do farm_frames+=(\"$farm_f\"); done",
            start = run.start,
            span = u64::from(size) * u64::from(run.step),
            end = run.end,
            step = run.step,
        );
    } else {
        s.push_str("case \"$farm_chunk\" in\n");
        for chunk in frames.chunks(size) {
            let _ = write!(s, "  {}) farm_frames=(", chunk.index);
            for (i, run) in chunk.frames.runs().iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                if run.start == run.end {
                    let _ = write!(s, "{}", run.start);
                } else if run.step == 1 {
                    let _ = write!(s, "{{{}..{}}}", run.start, run.end);
                } else {
                    let _ = write!(s, "{{{}..{}..{}}}", run.start, run.end, run.step);
                }
            }
            s.push_str(") ;;\n");
        }
        s.push_str("esac\n");
    }
    let _ = writeln!(
        s,
        "export FARM_CHUNK_INDEX=\"$farm_chunk\"\n\
         export FARM_CHUNK_FIRST=\"${{farm_frames[0]}}\"\n\
         export FARM_CHUNK_LAST=\"${{farm_frames[${{#farm_frames[@]}}-1]}}\""
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    /// A recorder program: appends its argv and chosen environment to a file, NUL-separated,
    /// one record per invocation.
    fn recorder(dir: &Path) -> PathBuf {
        let path = dir.join("record");
        std::fs::write(
            &path,
            "#!/bin/bash\n{ printf 'ARGV\\0'; for a in \"$@\"; do printf '%s\\0' \"$a\"; done; printf 'ENV\\0'; env -0; printf 'PWD\\0%s\\0END\\0' \"$PWD\"; } >> \"$RECORD_OUT\"\n",
        )
        .unwrap();
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
        path
    }

    struct Record {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        pwd: String,
    }

    fn run_script(
        body: &str,
        dir: &Path,
        chunk: Option<&str>,
    ) -> (std::process::Output, Vec<Record>) {
        let out_file = dir.join("out");
        let _ = std::fs::remove_file(&out_file);
        let script = dir.join("task.sh");
        std::fs::write(&script, format!("#!/bin/bash\n{body}")).unwrap();
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script)
            .env("RECORD_OUT", &out_file)
            .env_remove("FARM_FRAME");
        if let Some(c) = chunk {
            cmd.env("TASK", c);
        }
        let output = cmd.output().unwrap();
        let bytes = std::fs::read(&out_file).unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap();
        let mut records = Vec::new();
        let mut fields = text.split('\0');
        while let Some(tag) = fields.next() {
            if tag != "ARGV" {
                break;
            }
            let mut argv = Vec::new();
            for f in fields.by_ref() {
                if f == "ENV" {
                    break;
                }
                argv.push(f.to_owned());
            }
            let mut env = BTreeMap::new();
            for f in fields.by_ref() {
                if f == "PWD" {
                    break;
                }
                if let Some((k, v)) = f.split_once('=') {
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
            let pwd = fields.next().unwrap().to_owned();
            assert_eq!(fields.next(), Some("END"));
            records.push(Record { argv, env, pwd });
        }
        (output, records)
    }

    /// Runs every task of `request` under bash and checks each recorded invocation matches
    /// the reference plan exactly: argv, the request's environment, FARM_* and the cwd.
    fn assert_script_matches_plan(request: &JobRequest, dir: &Path) {
        let body = render_task_body(request, "${TASK:-}");
        for task in request.tasks() {
            let chunk = task.index.to_string();
            let (output, records) = run_script(&body, dir, Some(&chunk));
            assert!(
                output.status.success(),
                "stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let steps = request.steps(&task);
            assert_eq!(records.len(), steps.len());
            for (step, record) in steps.iter().zip(&records) {
                assert_eq!(record.argv, step.argv[1..], "argv of {:?}", step);
                for (k, v) in &request.environment {
                    assert_eq!(record.env.get(k), Some(v), "env {k}");
                }
                for (k, v) in &step.farm_env {
                    assert_eq!(record.env.get(*k), Some(v), "{k}");
                }
                if let Some(wd) = &request.working_directory {
                    assert_eq!(&record.pwd, wd);
                }
            }
        }
    }

    fn base_request(recorder: &Path, args: Vec<String>) -> JobRequest {
        let mut argv = vec![recorder.display().to_string()];
        argv.extend(args);
        JobRequest::new("t", vec![Command::Argv(argv)])
    }

    #[test]
    fn frames_chunks_and_placeholders_match_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        for (frames, size, repeat) in [
            ("1001-1010", 3, Repeat::PerFrame),
            ("1-20x4", 2, Repeat::PerFrame),
            ("1,3,7-9,20-30x5", 2, Repeat::PerFrame),
            ("5-9", 2, Repeat::PerChunk),
            ("1,4,100", 1, Repeat::PerChunk),
        ] {
            let args = if repeat == Repeat::PerFrame {
                vec![
                    "--frame".into(),
                    "out.{frame}.exr".into(),
                    "{chunk_first}:{chunk_last}".into(),
                ]
            } else {
                vec!["{chunk_first}-{chunk_last}".into(), "#{chunk_index}".into()]
            };
            let mut r = base_request(&rec, args);
            r.frames = Some(frames.parse().unwrap());
            r.chunk_size = size;
            r.repeat = repeat;
            r.validate().unwrap();
            assert_script_matches_plan(&r, dir.path());
        }
    }

    #[test]
    fn the_first_failing_command_ends_the_task_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        let mut r = JobRequest::new(
            "t",
            vec![
                Command::Argv(vec![rec.display().to_string(), "first".into()]),
                Command::Argv(vec!["bash".into(), "-c".into(), "exit 7".into()]),
                Command::Argv(vec![rec.display().to_string(), "never".into()]),
            ],
        );
        r.frames = Some("1-3".parse().unwrap());
        r.chunk_size = 3;
        let (output, records) =
            run_script(&render_task_body(&r, "${TASK:-}"), dir.path(), Some("0"));
        assert_eq!(output.status.code(), Some(7));
        assert_eq!(records.len(), 1, "stops at frame 1");
        assert_eq!(records[0].argv, ["first"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("farm: command 1 (frame 1) exited with status 7"),
            "{stderr}"
        );
    }

    #[test]
    fn bad_chunk_indexes_and_missing_directories_fail_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        let mut r = base_request(&rec, vec![]);
        r.frames = Some("1-4".parse().unwrap());
        let body = render_task_body(&r, "${TASK:-}");
        for bad in ["", "x", "4", "-1"] {
            let (output, records) = run_script(&body, dir.path(), Some(bad));
            assert_eq!(output.status.code(), Some(EXIT_BAD_CHUNK), "chunk {bad:?}");
            assert!(records.is_empty());
        }
        let (output, _) = run_script(&body, dir.path(), Some("03"));
        assert!(output.status.success(), "leading zeros are decimal");
        r.working_directory = Some("/nonexistent/'dir'".into());
        let (output, records) = run_script(&render_task_body(&r, "0"), dir.path(), None);
        assert_eq!(output.status.code(), Some(EXIT_BAD_WORKDIR));
        assert!(records.is_empty());
    }

    #[test]
    fn program_names_that_look_like_builtins_or_job_specs_run_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        for name in ["cd", "farm_run", "%1", "exit"] {
            let link = dir.path().join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&rec, &link).unwrap();
        }
        let mut r = JobRequest::new(
            "t",
            ["cd", "farm_run", "%1", "exit"]
                .iter()
                .map(|n| Command::Argv(vec![(*n).into(), format!("ran {n}")]))
                .collect(),
        );
        r.environment.insert(
            "PATH".into(),
            format!("{}:/usr/bin:/bin", dir.path().display()),
        );
        let (output, records) = run_script(&render_task_body(&r, "0"), dir.path(), None);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let argvs: Vec<_> = records.iter().map(|r| r.argv.join(" ")).collect();
        assert_eq!(argvs, ["ran cd", "ran farm_run", "ran %1", "ran exit"]);
    }

    fn adversarial() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>().prop_map(|s| s.replace('\0', "")),
            prop::collection::vec(
                prop_oneof![
                    Just("'".to_string()),
                    Just("\"".to_string()),
                    Just("$(touch /tmp/farm-pwned)".to_string()),
                    Just("`id`".to_string()),
                    Just("\n#SBATCH --wrap=x\n".to_string()),
                    Just("\\".to_string()),
                    Just("${HOME}".to_string()),
                    Just("*".to_string()),
                    Just(" ".to_string()),
                    Just("\t".to_string()),
                    Just("!".to_string()),
                    Just("{a,b}".to_string()),
                    Just("%1".to_string()),
                    Just("é漢🎬".to_string()),
                    Just("\r".to_string()),
                    Just("\x1b".to_string()),
                    "[a-z]{0,3}".prop_map(|s| s),
                ],
                0..6
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        /// The fast path never changes a byte of what shell-quote writes.
        #[test]
        fn quoting_is_exactly_shell_quotes_bash_quoting(value in prop_oneof![any::<String>(), "[A-Za-z0-9,./_:@+=%~-]{0,12}"]) {
            let crate_quoted: String = <Bash as shell_quote::Quote<String>>::quote(value.as_str());
            prop_assert_eq!(quote(&value), crate_quoted);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

        /// Whatever the argv elements, environment values and directory hold, bash receives
        /// them exactly and nothing in them is executed.
        #[test]
        fn arbitrary_strings_reach_the_program_exactly(
            args in prop::collection::vec(adversarial(), 0..5),
            values in prop::collection::vec(adversarial(), 1..4),
            subdir in adversarial(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let rec = recorder(dir.path());
            // Brace-escape so arbitrary text is literal, not a placeholder.
            let mut r = base_request(&rec, args.iter().map(|a| a.replace('{', "{{")).collect());
            for (i, v) in values.iter().enumerate() {
                r.environment.insert(format!("FARM_TEST_VALUE_{i}").replace("FARM_", "V_"), v.clone());
            }
            let wd_name: String = subdir.chars().filter(|c| *c != '/' && *c != '\n' && *c != '\r').take(40).collect();
            if !wd_name.is_empty() && wd_name != "." && wd_name != ".." {
                let wd = dir.path().join(&wd_name);
                std::fs::create_dir_all(&wd).unwrap();
                r.working_directory = Some(wd.display().to_string());
            }
            r.validate().unwrap();
            let body = render_task_body(&r, "0");
            prop_assert!(!body.lines().any(|l| l.starts_with("#SBATCH")));
            let (output, records) = run_script(&body, dir.path(), None);
            prop_assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
            prop_assert_eq!(records.len(), 1);
            prop_assert_eq!(&records[0].argv, &args);
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(records[0].env.get(&format!("V_TEST_VALUE_{i}")), Some(v));
            }
            if let Some(wd) = &r.working_directory {
                prop_assert_eq!(&records[0].pwd, wd);
            }
            prop_assert!(!Path::new("/tmp/farm-pwned").exists());
        }
    }
}
