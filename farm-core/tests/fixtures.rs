//! The example requests in fixtures/requests load and validate; the invalid ones fail with
//! an error naming the offending field.

use std::path::{Path, PathBuf};

use farm_core::{FarmError, JobRequest};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/requests")
}

#[test]
fn every_example_request_is_valid_and_round_trips_through_json() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let request =
            JobRequest::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = JobRequest::from_json_str(&request.to_json()).unwrap();
        assert_eq!(again, request, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} example requests");
}

#[test]
fn every_invalid_request_names_its_field() {
    let expected = [
        ("empty-argv.yaml", "commands[0]"),
        ("reversed-frames.yaml", "frames"),
        ("bad-env-name.yaml", "environment.BAD NAME"),
        ("zero-cpus.yaml", "resources.cpus"),
        ("unknown-field.yaml", "colour"),
        ("newline-in-name.yaml", "name"),
        ("shell-string-command.yaml", "commands[0]"),
        ("frame-without-frames.yaml", "commands[0][1]"),
    ];
    let dir = fixtures().join("invalid");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        expected.len(),
        "every invalid fixture has an expectation"
    );
    for (file, field) in expected {
        match JobRequest::from_path(&dir.join(file)) {
            Err(FarmError::InvalidRequest { field: f, problem }) => {
                assert_eq!(f, field, "{file}: {problem}");
            }
            other => panic!("{file}: expected InvalidRequest for {field}, got {other:?}"),
        }
    }
}
