//! Golden files: every example request rendered with every shipped profile, byte for byte,
//! and every invalid example refused with its field. `render` needs no server.

use std::path::{Path, PathBuf};

use farm_core::{FarmError, FarmPlugin, FarmSpec, JobRequest};
use farm_http::{HttpFarm, HttpSettings};

fn requests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/requests")
}

fn examples(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// A farm pointing nowhere: rendering must not need the server.
fn offline(profile: &str) -> HttpFarm {
    HttpFarm::new(HttpSettings::new("http://127.0.0.1:9").with_profile(profile)).unwrap()
}

#[tokio::test]
async fn every_example_request_renders_byte_stable_for_every_shipped_profile() {
    for profile in ["builtin", "deadline-web-service", "ray-jobs"] {
        let farm = offline(profile);
        for path in examples(&requests_dir()) {
            let request = JobRequest::from_path(&path).unwrap();
            let rendered = farm.render(&request).await.unwrap();
            let names: Vec<&str> = rendered.files.iter().map(|f| f.name.as_str()).collect();
            match profile {
                "builtin" | "ray-jobs" => assert_eq!(names, ["request.json"]),
                _ => assert_eq!(names, ["request.json", "job_info.job", "plugin_info.job"]),
            }
            let body = &rendered.main().contents;
            serde_json::from_str::<serde_json::Value>(body).expect("the body is JSON");
            let stem = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "_");
            insta::assert_snapshot!(format!("{profile}__{stem}"), body);
            for file in &rendered.files[1..] {
                let name = file.name.replace('.', "_");
                insta::assert_snapshot!(format!("{profile}__{stem}__{name}"), file.contents);
            }
        }
    }
}

#[tokio::test]
async fn the_builtin_body_is_the_request_json_and_round_trips() {
    let farm = offline("builtin");
    for path in examples(&requests_dir()) {
        let request = JobRequest::from_path(&path).unwrap();
        let body = farm.render(&request).await.unwrap().main().contents.clone();
        assert_eq!(body, request.to_json());
        assert_eq!(
            JobRequest::from_json_str(&body).unwrap(),
            request,
            "{}",
            path.display()
        );
    }
}

#[tokio::test]
async fn invalid_examples_are_refused_with_their_field() {
    let farm = offline("builtin");
    for path in examples(&requests_dir().join("invalid")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = JobRequest::from_yaml_str(&text);
        let err = match parsed {
            Err(e) => e,
            Ok(request) => farm
                .render(&request)
                .await
                .expect_err(&format!("{} rendered", path.display())),
        };
        match err {
            FarmError::InvalidRequest { field, .. } => {
                assert!(!field.is_empty(), "{}", path.display())
            }
            other => panic!("{}: {other}", path.display()),
        }
    }
}

#[test]
fn the_adapter_registers_and_builds_from_a_farms_file() {
    let mut registry = farm_core::AdapterRegistry::new();
    farm_http::register(&mut registry);
    assert!(registry.has("http"));
    let spec: FarmSpec = serde_yaml::from_str(
        "adapter: http\nstaging_root: /tmp/farm-http-staging\nsettings: {url: 'http://queue:7575', timeout: 5s, profile: deadline-web-service}\n",
    )
    .unwrap();
    let farm = registry.build("studio", &spec).unwrap();
    assert_eq!(farm.adapter(), "http");
    assert!(
        farm.capabilities().stage_files,
        "staging_root turns stage_files on"
    );
    assert!(
        !farm.capabilities().start,
        "the Deadline profile's capabilities"
    );
    let bad: FarmSpec = serde_yaml::from_str(
        "adapter: http\nsettings: {url: 'http://q', profile: /nonexistent.yaml}\n",
    )
    .unwrap();
    let err = registry.build("studio", &bad).unwrap_err().to_string();
    assert!(err.contains("/nonexistent.yaml"), "{err}");
    let typo: FarmSpec =
        serde_yaml::from_str("adapter: http\nsettings: {url: 'http://q', tokn: x}\n").unwrap();
    let err = registry.build("studio", &typo).unwrap_err().to_string();
    assert!(
        err.contains("farm studio: settings") && err.contains("tokn"),
        "{err}"
    );
}

/// The `.job` pair for `deadlinecommand -SubmitJob`: one `Key=Value` per line whatever the
/// request holds, and `plugin_info.job`'s `Request` is the request, losslessly.
#[tokio::test]
async fn the_deadline_job_files_carry_the_request_one_line_per_key() {
    let farm = offline("deadline-web-service");
    for path in examples(&requests_dir()) {
        let mut request = JobRequest::from_path(&path).unwrap();
        // Names cannot hold line breaks (validation); environment values can.
        request.environment.insert(
            "INJECT".into(),
            format!("a\nPlugin=Evil\r\n{}é", "\u{2028}"),
        );
        let rendered = farm.render(&request).await.unwrap();
        let job_info = &rendered.files[1].contents;
        let keys: Vec<&str> = job_info
            .lines()
            .map(|l| l.split_once('=').expect("key=value").0)
            .collect();
        assert_eq!(
            keys.iter().filter(|k| **k == "Plugin").count(),
            1,
            "{job_info}"
        );
        assert!(keys.iter().all(|k| {
            [
                "Plugin",
                "Name",
                "Frames",
                "ChunkSize",
                "Priority",
                "Pool",
                "Group",
                "ExtraInfo0",
                "ExtraInfo1",
            ]
            .contains(k)
        }));
        let plugin_info = &rendered.files[2].contents;
        assert_eq!(plugin_info.lines().count(), 1, "{plugin_info}");
        let carried = plugin_info
            .strip_prefix("Request=")
            .unwrap()
            .trim_end_matches('\n');
        assert!(carried.is_ascii());
        let back = farm_core::run_task::parse_request(carried).unwrap();
        assert_eq!(back, request, "{}", path.display());
    }
}
