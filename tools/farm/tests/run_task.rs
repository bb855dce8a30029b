//! `farm run-task` end to end: the real binary, a request file or stdin, the step's own exit
//! status and the final `farm:` line.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn farm(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_farm"))
        .args(args)
        .env_remove("FARM")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run farm");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn request_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn a_chunk_runs_and_the_last_line_says_it_succeeded() {
    let file = request_file(
        "name: x\nframes: 1-4\nchunk_size: 2\ncommands: [[sh, -c, 'echo \"frame $0\"', '{frame}']]\n",
    );
    let path = file.path().to_str().unwrap();
    let out = farm(&["run-task", path, "--task", "1", "--frames", "3-4"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "frame 3\nframe 4\nfarm: task 1 succeeded\n"
    );
}

#[test]
fn a_failing_step_from_stdin_exits_with_its_status_and_names_it_last() {
    let out = farm(
        &["run-task", "-", "--task", "0"],
        Some(r#"{"name": "x", "commands": [["sh", "-c", "echo out; exit 3"], ["echo", "never"]]}"#),
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("never"), "{text}");
    assert_eq!(
        text.lines().last(),
        Some("farm: task 0 failed: step 0 (`sh`): exit code 3")
    );
}

#[test]
fn a_task_outside_the_request_is_an_invalid_request() {
    let file = request_file("name: x\ncommands: [['true']]\n");
    let path = file.path().to_str().unwrap();
    let out = farm(&["run-task", path, "--task", "5"], None);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("it has 1 task(s)"));
}
