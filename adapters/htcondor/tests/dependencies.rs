//! The DAGMan route for requests with dependencies: the rendered PRE script under a real
//! shell, with stand-in `condor_q` and `condor_history` answering for the dependencies.

use std::path::Path;

use farm_core::JobRequest;
use farm_htcondor::CondorSettings;
use farm_htcondor::render::{self, DEFER_STATUS, DEPENDENCY_SCRIPT};

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(path, perm).unwrap();
}

/// Runs the script for `deps` with `condor_q` printing `queued` and `condor_history`
/// printing `history` (per cluster, `-af` style).
fn run(deps: &[&str], queued: &[(&str, &str)], history: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let request = JobRequest::from_yaml_str(&format!(
        "name: x\ncommands: [[/bin/true]]\ndepends_on: [{}]\n",
        deps.iter()
            .map(|d| format!("'{d}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .unwrap();
    let rendered = render::render(&request, &CondorSettings::default()).unwrap();
    let script = rendered
        .files
        .iter()
        .find(|f| f.name == DEPENDENCY_SCRIPT)
        .unwrap();
    assert!(script.executable);
    let path = dir.path().join(DEPENDENCY_SCRIPT);
    write_exe(&path, &script.contents);
    let table = |rows: &[(&str, &str)]| {
        rows.iter()
            .map(|(c, out)| format!("  *\"ClusterId == {c}\"*) printf '{out}' ;;\n"))
            .collect::<String>()
    };
    for (tool, rows) in [("condor_q", queued), ("condor_history", history)] {
        write_exe(
            &dir.path().join(tool),
            &format!("#!/bin/sh\ncase \"$*\" in\n{}esac\n", table(rows)),
        );
    }
    let deps = dag_args(&rendered);
    let out = std::process::Command::new(&path)
        .args(&deps)
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The dependency ids as the DAG passes them to the script.
fn dag_args(rendered: &farm_core::RenderedJob) -> Vec<String> {
    let dag = rendered
        .files
        .iter()
        .find(|f| f.name == render::DAG_FILE)
        .unwrap();
    let line = dag
        .contents
        .lines()
        .find(|l| l.starts_with("SCRIPT DEFER"))
        .unwrap();
    let after = line.split(DEPENDENCY_SCRIPT).nth(1).unwrap();
    after.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_render_waits_while_a_dependency_is_queued() {
    let (code, _) = run(&["4711"], &[("4711", "4711\\n")], &[]);
    assert_eq!(code, DEFER_STATUS);
}

#[test]
fn the_render_runs_once_every_dependency_completed_successfully() {
    let (code, err) = run(
        &["4711", "12"],
        &[],
        &[("4711", "4 false 0\\n4 false 0\\n"), ("12", "4 false 0\\n")],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_failed_removed_or_unknown_dependency_fails_the_node() {
    for (history, needle) in [
        ("4 false 0\\n4 false 3\\n", "did not complete successfully"),
        ("4 true undefined\\n", "did not complete successfully"),
        ("3 false undefined\\n", "did not complete successfully"),
        ("", "neither condor_q nor condor_history"),
    ] {
        let (code, err) = run(&["4711"], &[], &[("4711", history)]);
        assert_eq!(code, 1, "{history}");
        assert!(err.contains(needle), "{history}: {err}");
    }
}
