//! Golden files: `farm render` output for every example request, byte for byte
//! (`fixtures/htcondor/golden/`, reviewed with `cargo insta review`).

use std::path::{Path, PathBuf};

use farm_core::{FarmError, JobRequest};
use farm_htcondor::CondorSettings;
use farm_htcondor::render::{self, Mode};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn requests(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    paths.sort();
    paths
}

/// Every file of a rendered job, one after the other with its name and mode.
fn rendered_text(request: &JobRequest) -> String {
    let job = render::render(request, &CondorSettings::default()).unwrap();
    let mut out = format!(
        "mode: {:?}\n",
        render::mode(request, &CondorSettings::default())
    );
    for file in &job.files {
        out.push_str(&format!(
            "===== {}{} =====\n{}",
            file.name,
            if file.executable { " (executable)" } else { "" },
            file.contents
        ));
    }
    out
}

#[test]
fn every_example_request_renders_to_its_golden_file() {
    let paths = requests(&fixtures().join("requests"));
    assert!(
        paths.len() >= 7,
        "expected the example requests, found {paths:?}"
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(fixtures().join("htcondor/golden"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for path in &paths {
            let request = JobRequest::from_path(path).unwrap();
            let name = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "_");
            insta::assert_snapshot!(name, rendered_text(&request));
        }
    });
}

#[test]
fn rendering_is_byte_stable() {
    for path in requests(&fixtures().join("requests")) {
        let request = JobRequest::from_path(&path).unwrap();
        assert_eq!(
            rendered_text(&request),
            rendered_text(&request.clone()),
            "{}",
            path.display()
        );
    }
}

#[test]
fn the_examples_cover_both_modes() {
    let modes: Vec<Mode> = requests(&fixtures().join("requests"))
        .iter()
        .map(|p| {
            render::mode(
                &JobRequest::from_path(p).unwrap(),
                &CondorSettings::default(),
            )
        })
        .collect();
    assert!(
        modes.contains(&Mode::Direct) && modes.contains(&Mode::Wrapper),
        "{modes:?}"
    );
}

/// Each invalid example and the field its error must name (as `farm-core` validates them).
const INVALID: [(&str, &str); 8] = [
    ("empty-argv.yaml", "commands[0]"),
    ("reversed-frames.yaml", "frames"),
    ("bad-env-name.yaml", "environment.BAD NAME"),
    ("zero-cpus.yaml", "resources.cpus"),
    ("unknown-field.yaml", "colour"),
    ("newline-in-name.yaml", "name"),
    ("shell-string-command.yaml", "commands[0]"),
    ("frame-without-frames.yaml", "commands[0][1]"),
];

#[test]
fn every_invalid_example_is_refused_naming_its_field() {
    let dir = fixtures().join("requests/invalid");
    assert_eq!(
        requests(&dir).len(),
        INVALID.len(),
        "every invalid example has an expected field here"
    );
    for (file, expected) in INVALID {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let err = match JobRequest::from_yaml_str(&text) {
            Err(e) => e,
            Ok(request) => render::render(&request, &CondorSettings::default()).unwrap_err(),
        };
        match &err {
            FarmError::InvalidRequest { field, problem } => {
                assert_eq!(field, expected, "{file}: {problem}")
            }
            other => panic!("{file}: expected InvalidRequest for {expected}, got {other:?}"),
        }
    }
}
