//! Quoting of the whole sbatch script, property-tested: for arbitrary Unicode names, tags,
//! argv elements, environment values and directories, sbatch's directive parser (ported in
//! `support/sbatch.rs`) reads every directive value back exactly, no value starts a new
//! `#SBATCH` line, and running the complete script under a real bash reproduces the exact
//! argv, environment and working directory of every step of every array task.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use farm_core::{Command, JobRequest};
use farm_slurm::Transport;
use farm_slurm::parse::{parse_comment, resolve_output};
use farm_slurm::render::{self, CHUNK_INDEX_EXPR, FarmComment, RenderOptions};
use proptest::prelude::*;
use support::sbatch;

/// Appends its argv, environment and cwd to `$RECORD_OUT`, NUL-separated.
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

fn records(bytes: &[u8]) -> Vec<Record> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut fields = text.split('\0');
    let mut out = Vec::new();
    while let Some("ARGV") = fields.next() {
        let argv = fields
            .by_ref()
            .take_while(|f| *f != "ENV")
            .map(str::to_owned)
            .collect();
        let env = fields
            .by_ref()
            .take_while(|f| *f != "PWD")
            .filter_map(|f| f.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let pwd = fields.next().unwrap().to_owned();
        assert_eq!(fields.next(), Some("END"));
        out.push(Record { argv, env, pwd });
    }
    out
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| s.replace('\0', "")),
        prop::collection::vec(
            prop_oneof![
                Just("'".to_owned()),
                Just("\"".to_owned()),
                Just("\\".to_owned()),
                Just("\\\"".to_owned()),
                Just("#".to_owned()),
                Just("#SBATCH --wrap=x".to_owned()),
                Just("\n#SBATCH --mem=1\n".to_owned()),
                Just("$(touch /tmp/farm-slurm-pwned)".to_owned()),
                Just("`id`".to_owned()),
                Just("${HOME}".to_owned()),
                Just("%j %A %%".to_owned()),
                Just(" ".to_owned()),
                Just("\t".to_owned()),
                Just("\r".to_owned()),
                Just("é漢🎬".to_owned()),
                Just("hetjob".to_owned()),
                "[a-z]{0,4}",
            ],
            0..6
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// A one-line value (names, directories): no line breaks, no NUL.
fn line() -> impl Strategy<Value = String> {
    hostile().prop_map(|s| s.replace(['\n', '\r'], " "))
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:=@+/-]{1,20}"
}

/// A directory name usable on disk: no `/`, no backslash (refused for logs), not `.`/`..`.
fn dir_name() -> impl Strategy<Value = String> {
    line().prop_map(|s| {
        let s: String = s
            .chars()
            .filter(|c| *c != '/' && *c != '\\')
            .take(30)
            .collect();
        if s.is_empty() || s == "." || s == ".." {
            "d".to_owned()
        } else {
            s
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_whole_sbatch_script_is_inert_and_exact(
        name in line().prop_filter("names are not blank", |s| !s.trim().is_empty()),
        tags in prop::collection::vec(tag(), 0..4),
        args in prop::collection::vec(hostile(), 0..4),
        values in prop::collection::vec(hostile(), 1..3),
        wd in dir_name(),
        logs in dir_name(),
        frames in prop_oneof![Just(None), Just(Some("1-3")), Just(Some("5,9,12-13"))],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path());
        let mut argv = vec![rec.display().to_string(), "{frame}".to_owned()];
        if frames.is_none() {
            argv.pop();
        }
        argv.extend(args.iter().map(|a| a.replace('{', "{{")));
        let mut request = JobRequest::new(name.chars().take(200).collect::<String>(), vec![Command::Argv(argv)]);
        request.tags = tags.clone();
        request.frames = frames.map(|f| f.parse().unwrap());
        for (i, v) in values.iter().enumerate() {
            request.environment.insert(format!("V_{i}"), v.clone());
        }
        let wd_path = dir.path().join(&wd);
        std::fs::create_dir_all(&wd_path).unwrap();
        request.working_directory = Some(wd_path.display().to_string());
        let log_dir = dir.path().join(format!("logs-{logs}"));
        request.log_directory = Some(log_dir.display().to_string());
        request.validate().unwrap();

        let options = RenderOptions { array_limit: Some(2), ..RenderOptions::default() };
        let script = render::sbatch_script(&request, &options, 1).unwrap();

        // sbatch reads back exactly what the request says.
        let opts: BTreeMap<String, String> = sbatch::options(&sbatch::directives(&script)).unwrap().into_iter().collect();
        prop_assert_eq!(&opts["job-name"], &request.name);
        prop_assert_eq!(parse_comment(&opts["comment"]), Some(FarmComment::for_request(&request, 1)));
        let log = render::log_path(&request, &options).unwrap();
        prop_assert_eq!(resolve_output(&opts["output"], "", 7, 7, None, "x"), Some(log.clone()));
        prop_assert!(log.starts_with(&request.log_directory.clone().unwrap()));
        prop_assert_eq!(&opts["chdir"], request.working_directory.as_ref().unwrap());
        // Only the header holds directive lines; nothing a value holds starts one.
        let header = script.lines().skip(1).take_while(|l| l.starts_with("#SBATCH")).count();
        prop_assert_eq!(script.lines().filter(|l| l.starts_with("#SBATCH")).count(), header);

        // The REST body carries the same values and the same task program.
        let rest = render::rest_body(&request, &RenderOptions { transport: Transport::Rest, ..options.clone() }, 1).unwrap();
        let body: serde_json::Value = serde_json::from_str(&rest).unwrap();
        prop_assert_eq!(body["job"]["name"].as_str(), Some(request.name.as_str()));
        let task_body = farm_core::script::render_task_body(&request, CHUNK_INDEX_EXPR);
        prop_assert_eq!(body["script"].as_str().unwrap(), format!("#!/bin/bash\n{task_body}"));
        prop_assert!(script.ends_with(&task_body));

        // bash runs every task exactly as the plan says.
        let script_path = dir.path().join("job.sbatch");
        std::fs::write(&script_path, &script).unwrap();
        let out_file = dir.path().join("out");
        for task in request.tasks() {
            let _ = std::fs::remove_file(&out_file);
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(&script_path).env("RECORD_OUT", &out_file).env_remove("FARM_FRAME");
            if request.task_count() > 1 {
                cmd.env("SLURM_ARRAY_TASK_ID", task.index.to_string());
            } else {
                cmd.env_remove("SLURM_ARRAY_TASK_ID");
            }
            let output = cmd.output().unwrap();
            prop_assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
            let got = records(&std::fs::read(&out_file).unwrap_or_default());
            let steps = request.steps(&task);
            prop_assert_eq!(got.len(), steps.len());
            for (step, record) in steps.iter().zip(&got) {
                prop_assert_eq!(&record.argv, &step.argv[1..].to_vec());
                for (k, v) in &request.environment {
                    prop_assert_eq!(record.env.get(k), Some(v));
                }
                for (k, v) in &step.farm_env {
                    prop_assert_eq!(record.env.get(*k), Some(v));
                }
                prop_assert_eq!(&record.pwd, request.working_directory.as_ref().unwrap());
            }
        }
        prop_assert!(!Path::new("/tmp/farm-slurm-pwned").exists());
    }
}

#[test]
fn the_directive_parser_port_follows_sbatch() {
    let script = "#!/bin/bash\n#SBATCH --job-name=\"a \\\"b\\\" c # d\" --comment=x#ignored\n#SBATCH   --output='/x y'\n# plain comment\n\n#SBATCH --requeue\necho hi\n#SBATCH --late=1\n";
    assert_eq!(
        sbatch::directives(script),
        [
            "--job-name=a \"b\" c # d",
            "--comment=x",
            "--output=/x y",
            "--requeue"
        ]
    );
}
