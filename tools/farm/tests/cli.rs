//! The `farm` binary end to end: help, exit codes, output formats, offline rendering and the
//! built-in simulator farm.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn farm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farm"))
        .args(args)
        .current_dir(repo())
        // Never pick up a developer's own farms file.
        .env(
            "FARM_CONFIG",
            repo().join("tools/farm/tests/no-such-farms.yaml"),
        )
        .env_remove("FARM")
        .output()
        .expect("run farm")
}

fn farm_with_config(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farm"))
        .args(args)
        .current_dir(repo())
        .env("FARM_CONFIG", config)
        .env_remove("FARM")
        .output()
        .expect("run farm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary `.yaml` file holding `text`.
fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn empty_config() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "farms: {}\n").unwrap();
    file
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let out = farm(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for sub in [
        "render",
        "submit",
        "validate",
        "status",
        "list",
        "log",
        "stop",
        "start",
        "farms",
        "conformance",
    ] {
        assert!(text.contains(&format!("  {sub} ")), "--help lacks {sub}");
    }
    assert!(text.contains("10  job finished Failed"));
    for sub in ["render", "submit", "list", "log", "conformance"] {
        let out = farm(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        assert!(stdout(&out).contains("Usage: farm"), "{sub} --help");
    }
}

#[test]
fn a_missing_farms_file_named_explicitly_is_a_config_error() {
    let out = farm(&["farms"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read farms file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_lists_every_problem_and_exits_4() {
    let out = farm(&[
        "validate",
        "fixtures/requests/minimal.yaml",
        "fixtures/requests/invalid/zero-cpus.yaml",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let text = stdout(&out);
    assert!(text.contains("minimal.yaml: valid"), "{text}");
    assert!(
        text.contains("resources.cpus: must be at least 1"),
        "{text}"
    );
    let out = farm(&[
        "--output",
        "json",
        "validate",
        "fixtures/requests/invalid/unknown-field.yaml",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["valid"], false);
    assert_eq!(json[0]["problems"][0]["field"], "colour");
}

#[test]
fn render_prints_the_job_file_and_json_errors_name_the_field() {
    let config = empty_config();
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/minimal.yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["name"], "hello");
    let again = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/minimal.yaml",
        ],
    );
    assert_eq!(out.stdout, again.stdout, "render is deterministic");

    let out = farm_with_config(
        config.path(),
        &[
            "-o",
            "json",
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/invalid/empty-argv.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "invalid_request");
    assert_eq!(err["error"]["field"], "commands[0]");
}

#[test]
fn render_out_writes_the_file_atomically() {
    let config = empty_config();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("job.json");
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/render-demo.yaml",
            "--out",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.contains("render-demo"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    // A failed render leaves no file behind.
    let bad = dir.path().join("bad.json");
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/invalid/empty-argv.yaml",
            "--out",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(!bad.exists());
}

#[test]
fn submit_wait_reports_the_final_state_and_exit_status() {
    let config = empty_config();
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "submit",
            "--wait",
            "fixtures/requests/minimal.yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Completed"), "{text}");
    let log = text.split("log: ").nth(1).unwrap().trim();
    assert_eq!(
        std::fs::read_to_string(log).unwrap(),
        "hello from the farm\n"
    );

    let failing = yaml_file("name: fails\ncommands: [[/bin/sh, -c, 'exit 3']]\n");
    let out = farm_with_config(
        config.path(),
        &[
            "-o",
            "json",
            "--farm",
            "simulator",
            "submit",
            "--wait",
            failing.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = &doc["jobs"];
    assert_eq!(jobs[0]["state"], "Failed");
    assert!(jobs[0]["reason"].as_str().unwrap().contains("exit code 3"));
}

#[test]
fn unknown_farms_and_jobs_have_their_own_exit_codes() {
    let config = empty_config();
    let out = farm_with_config(config.path(), &["--farm", "nope", "list"]);
    assert_eq!(out.status.code(), Some(9));
    assert!(
        stderr(&out).contains("no farm named \"nope\""),
        "{}",
        stderr(&out)
    );
    let out = farm_with_config(config.path(), &["--farm", "simulator", "status", "42"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out).trim(), "farm: error: job 42 not found");
}

#[test]
fn farms_lists_built_in_and_configured_farms() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "default: sim2\nfarms:\n  sim2:\n    adapter: simulator\n    description: a second simulator\n    settings: {slots: 1}\n").unwrap();
    let out = farm_with_config(config.path(), &["-o", "json", "farms"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let farms: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = farms
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"sim2") && names.contains(&"simulator") && names.contains(&"local"),
        "{names:?}"
    );
    let sim2 = farms
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "sim2")
        .unwrap();
    assert_eq!(sim2["default"], true);
    assert_eq!(sim2["capabilities"]["stop"], true);

    std::fs::write(
        config.path(),
        "farms:\n  bad:\n    adapter: simulator\n    settings: {slotz: 1}\n",
    )
    .unwrap();
    let out = farm_with_config(config.path(), &["--farm", "bad", "list"]);
    assert_eq!(out.status.code(), Some(9));
    assert!(
        stderr(&out).contains("unknown field `slotz`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn conformance_list_markdown_is_the_checked_in_reference() {
    let out = farm(&["conformance", "--list", "--markdown"]);
    assert!(out.status.success());
    let docs = std::fs::read_to_string(repo().join("docs/conformance.md")).unwrap();
    assert_eq!(stdout(&out), docs);
}

#[test]
fn conformance_runs_selected_checks_and_writes_junit() {
    let config = empty_config();
    let junit = tempfile::NamedTempFile::new().unwrap();
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "conformance",
            "--only",
            "a_successful_job_completes",
            "--only",
            "commands_stop_at_the_first_failure",
            "--junit",
            junit.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("2 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(
        xml.contains("testcase name=\"a_successful_job_completes\""),
        "{xml}"
    );
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "conformance",
            "--only",
            "no_such_check",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("unknown check \"no_such_check\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_lists_several_problems_of_one_request() {
    let file = yaml_file(
        "name: ''\ncommands: [[a, '{frame}']]\nenvironment: {'1X': a, FARM_Y: b}\nresources: {cpus: 0}\npriority: 5000\n",
    );
    let out = farm(&["-o", "json", "validate", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fields: Vec<&str> = json[0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for field in [
        "name",
        "commands[0][1]",
        "environment.1X",
        "environment.FARM_Y",
        "resources.cpus",
        "priority",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
}

#[test]
fn a_second_failing_submit_still_reports_the_first_job() {
    let config = empty_config();
    let out = farm_with_config(
        config.path(),
        &[
            "-o",
            "json",
            "--farm",
            "simulator",
            "submit",
            "fixtures/requests/minimal.yaml",
            "fixtures/requests/invalid/bad-env-name.yaml",
        ],
    );
    // The bad request is refused while loading, before anything is submitted...
    assert_eq!(out.status.code(), Some(4));
    // ...so pass a request that loads but that the farm refuses: a dependency on a job the
    // simulator never issued.
    let dep = yaml_file("name: dep\ncommands: [[true]]\ndepends_on: ['424242']\n");
    let out = farm_with_config(
        config.path(),
        &[
            "-o",
            "json",
            "--farm",
            "simulator",
            "submit",
            "fixtures/requests/minimal.yaml",
            dep.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["field"], "depends_on[0]");
    assert_eq!(doc["submitted"], serde_json::json!(["1"]));
}

#[test]
fn rendered_files_are_readable_by_schedulers() {
    use std::os::unix::fs::PermissionsExt;
    let config = empty_config();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("job.json");
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "simulator",
            "render",
            "fixtures/requests/minimal.yaml",
            "--out",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn rendered_file_names_cannot_escape_the_output_directory() {
    // An external adapter that names its file `../escaped.txt`.
    let program = r#"
import json, sys
caps = {k: False for k in ["stage_files","list_jobs","render_log","read_log","stop","start","dependencies","idempotent_submit"]}
for line in sys.stdin:
    c = json.loads(line)
    if c["method"] == "hello":
        r = {"protocol": 1, "adapter": "hostile", "capabilities": caps}
    else:
        r = {"files": [{"name": "job.txt", "contents": "ok"}, {"name": "../escaped.txt", "contents": "x", "executable": True}]}
    print(json.dumps({"id": c["id"], "result": r}), flush=True)
"#;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!("farms:\n  hostile:\n    adapter: external\n    settings:\n      command: [python3, -c, {}]\n", serde_json::to_string(program).unwrap()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = farm_with_config(
        config.path(),
        &[
            "--farm",
            "hostile",
            "render",
            "fixtures/requests/minimal.yaml",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("one plain name"), "{}", stderr(&out));
    assert!(!dir.path().join("escaped.txt").exists());
    assert!(
        !out_dir.exists(),
        "nothing is written when a name is refused"
    );
}

#[test]
fn validate_reports_every_problem_of_a_file_in_one_run_in_plain_words() {
    // Seven problems, four of them values of the wrong type (serde alone stops at the first).
    let file = yaml_file(
        "name: [a, b]\ncommands: [[echo, 1], [ok]]\nchunk_size: many\nresources: {cpus: lots, gpus: 0}\n\
         priority: 5000\ncolour: red\ntags: [ok, [nested]]\n",
    );
    let out = farm(&["validate", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    let text = stdout(&out);
    assert!(text.contains(": 8 problems\n"), "{text}");
    for line in [
        "  name: invalid type: sequence, expected a string",
        "  commands[0][1]: invalid type: integer `1`, expected a string",
        "  chunk_size: invalid type: string \"many\", expected u32",
        "  resources.cpus: invalid type: string \"lots\", expected u32",
        "  resources.gpus: must be at least 1 (leave it out for none)",
        "  priority: 5000 is not between -1000 and 1000",
        "  colour: unknown field `colour`",
        "  tags[1]: invalid type: sequence, expected a string",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    let one = yaml_file("name: a\ncommands: [[a]]\npriority: -1001\n");
    let text = stdout(&farm(&["validate", one.path().to_str().unwrap()]));
    assert!(text.contains(": 1 problem\n"), "{text}");
    assert!(!text.contains("(s)") && !text.contains("..="), "{text}");
}

#[test]
fn a_missing_file_is_the_same_error_in_validate_and_submit() {
    let config = empty_config();
    let validate = farm_with_config(config.path(), &["validate", "no-such-request.yaml"]);
    let submit = farm_with_config(
        config.path(),
        &["--farm", "simulator", "submit", "no-such-request.yaml"],
    );
    assert_eq!(validate.status.code(), Some(1));
    assert_eq!(validate.status.code(), submit.status.code());
    assert_eq!(stderr(&validate), stderr(&submit));
    assert!(
        stderr(&validate).starts_with("farm: error: cannot read job request no-such-request.yaml"),
        "{}",
        stderr(&validate)
    );
}

#[test]
fn usage_errors_are_json_when_json_is_asked_for() {
    for args in [
        &["-o", "json", "status"][..],
        &["--output=json", "lst"],
        &["list", "--limit", "many", "--output", "json"],
    ] {
        let out = farm(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)));
        assert_eq!(doc["error"]["kind"], "usage", "{doc}");
        assert!(!doc["error"]["message"].as_str().unwrap().is_empty());
    }
    let out = farm(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Usage: farm status"),
        "text stays text"
    );
    assert!(farm(&["-o", "json", "--help"]).status.success());
}

#[test]
fn submit_wait_prints_the_same_json_shape_as_submit() {
    let config = empty_config();
    for wait in [false, true] {
        let mut args = vec!["-o", "json", "--farm", "simulator", "submit"];
        if wait {
            args.push("--wait");
        }
        args.push("fixtures/requests/minimal.yaml");
        let out = farm_with_config(config.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["jobs"][0]["id"], "1", "--wait {wait}: {doc}");
    }
}

#[test]
fn validate_asks_the_named_farm_and_submit_check_refuses_what_it_refuses() {
    let big = yaml_file("name: big\ncommands: [[/bin/true]]\nresources: {cpus: 100000}\n");
    let small = yaml_file("name: small\ncommands: [[/bin/true]]\nresources: {cpus: 1}\n");
    let (big, small) = (big.path().to_str().unwrap(), small.path().to_str().unwrap());
    let config = empty_config();
    let with_farms = |args: &[&str]| farm_with_config(config.path(), args);

    let local = farm(&["validate", big]);
    assert_eq!(local.status.code(), Some(0), "{}", stderr(&local));
    assert!(
        stdout(&local).contains("checked locally only"),
        "{}",
        stdout(&local)
    );

    let asked = with_farms(&["-o", "json", "--farm", "simulator", "validate", big, small]);
    assert_eq!(asked.status.code(), Some(4), "{}", stderr(&asked));
    let json: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(json[0]["valid"], false);
    assert_eq!(json[0]["checked_by"], "farm");
    assert_eq!(json[0]["farm"]["accepted"], false);
    assert_eq!(json[0]["farm"]["field"], "resources.cpus");
    assert!(
        json[0]["farm"]["problem"]
            .as_str()
            .unwrap()
            .contains("UNSATISFIABLE")
    );
    assert_eq!(json[1]["valid"], true);
    assert_eq!(json[1]["farm"]["accepted"], true);
    assert!(json[1]["farm"]["estimated_start"].is_i64(), "{json}");
    assert!(json[1]["farm"]["placement"].is_string(), "{json}");

    let text = with_farms(&["--farm", "simulator", "validate", small]);
    assert!(
        stdout(&text).contains("estimated start:"),
        "{}",
        stdout(&text)
    );

    let refused = with_farms(&["--farm", "simulator", "submit", "--check", big]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stdout(&refused).is_empty(), "no id: {}", stdout(&refused));
    assert!(
        stderr(&refused).contains("nothing was submitted"),
        "{}",
        stderr(&refused)
    );
}
