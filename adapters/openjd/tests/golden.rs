//! Golden bundles: every example request rendered, byte for byte, under
//! `fixtures/openjd/golden/<request>/`. Re-bless with
//! `FARM_BLESS=1 cargo test -p farm-openjd --test golden`. `tools/ci/openjd.sh` runs the
//! real `openjd check` on every golden template.

use std::path::PathBuf;

use farm_core::{ErrorKind, FarmPlugin, JobRequest};
use farm_openjd::{OpenJdFarm, OpenJdSettings};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn farm() -> OpenJdFarm {
    let settings = OpenJdSettings {
        data_root: Some(std::env::temp_dir().join("farm-openjd-golden")),
        ..OpenJdSettings::default()
    };
    OpenJdFarm::from_settings("studio", settings, Default::default()).unwrap()
}

fn requests() -> Vec<(String, JobRequest)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("requests")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let stem = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "-");
            out.push((stem, JobRequest::from_path(&path).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 7, "fixtures/requests went missing");
    out
}

#[tokio::test]
async fn every_example_request_renders_as_recorded() {
    let farm = farm();
    let bless = std::env::var_os("FARM_BLESS").is_some();
    let mut differences = Vec::new();
    for (name, mut request) in requests() {
        if !request.depends_on.is_empty() {
            // OpenJD cannot wait for another farm job: a clear error, never dropped.
            let err = farm.render(&request).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{name}: {err}");
            assert!(err.to_string().contains("depends_on"), "{err}");
            request.depends_on.clear();
        }
        let rendered = farm.render(&request).await.unwrap();
        assert_eq!(
            farm.render(&request.clone()).await.unwrap(),
            rendered,
            "{name}"
        );
        let names: Vec<&str> = rendered.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["template.yaml", "parameter_values.yaml"]);
        let dir = fixtures().join("openjd/golden").join(&name);
        for file in &rendered.files {
            let path = dir.join(&file.name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &file.contents).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&file.contents) {
                differences.push(path.display().to_string());
            }
        }
    }
    assert!(
        differences.is_empty(),
        "golden files differ (re-bless with FARM_BLESS=1): {differences:?}"
    );
}

#[tokio::test]
async fn invalid_example_requests_fail_naming_their_field() {
    let farm = farm();
    for entry in std::fs::read_dir(fixtures().join("requests/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = JobRequest::from_yaml_str(&text).and_then(|r| {
            r.validate()?;
            Ok(r)
        });
        match result {
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{}", path.display()),
            Ok(r) => {
                let e = farm.render(&r).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{}", path.display());
            }
        }
    }
}

#[tokio::test]
async fn priority_goes_to_the_submission_options_not_the_template() {
    let farm = farm();
    let mut r = JobRequest::from_yaml_str("name: p\ncommands: [[a]]\npriority: 1000\n").unwrap();
    let b = farm.render(&r).await.unwrap();
    assert!(!b.main().contents.contains("priority"));
    assert!(
        b.files[1]
            .contents
            .contains("deadline:priority\n  value: 100"),
        "{}",
        b.files[1].contents
    );
    r.priority = -1000;
    assert!(
        farm.render(&r).await.unwrap().files[1]
            .contents
            .contains("value: 0")
    );
    assert_eq!(farm_openjd::render::deadline_priority(0), 50);
}

#[test]
fn range_expressions_compress_runs() {
    use farm_openjd::render::range_expr;
    assert_eq!(range_expr(&[1, 2, 3, 4]), "1-4");
    assert_eq!(range_expr(&[1, 3, 7, 8, 9]), "1,3,7-9");
    assert_eq!(range_expr(&[1, 6, 11, 16, 20]), "1-16:5,20");
    assert_eq!(range_expr(&[5]), "5");
}
