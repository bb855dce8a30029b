//! Golden files: every example request rendered for both transports, byte for byte
//! (`tests/snapshots/`). Review changes with `cargo insta review`, or re-bless with
//! `INSTA_UPDATE=always cargo test -p farm-slurm --test golden`.

mod support;

use farm_core::{FarmError, FarmPlugin, JobRequest};
use farm_slurm::{SlurmFarm, SlurmSettings, Transport};

/// The farm the golden files are rendered for: a typical studio configuration.
fn farm(transport: Transport) -> SlurmFarm {
    let settings: SlurmSettings = serde_yaml::from_str(&format!(
        "transport: {}\npartition: batch\naccount: vfx\narray_limit: 50\nlog_directory: /mnt/render/logs\nnice_offset: 0\ntoken: not-used-by-render\nuser_name: render\nstate_directory: {}\n",
        if transport == Transport::Cli { "cli" } else { "rest" },
        std::env::temp_dir().join("farm-slurm-golden-journal").display(),
    ))
    .unwrap();
    SlurmFarm::from_settings("studio", settings, Default::default()).unwrap()
}

fn requests() -> Vec<(String, JobRequest)> {
    let dir = support::fixtures().join("requests");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
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
    assert!(out.len() >= 7, "fixtures/requests went missing: {out:?}");
    out
}

#[tokio::test]
async fn every_example_request_renders_as_recorded() {
    for transport in [Transport::Cli, Transport::Rest] {
        let farm = farm(transport);
        for (name, request) in requests() {
            let rendered = farm.render(&request).await.unwrap();
            assert_eq!(rendered.files.len(), 1);
            let file = rendered.main();
            let label = format!(
                "{}-{name}",
                if transport == Transport::Cli {
                    "cli"
                } else {
                    "rest"
                }
            );
            insta::assert_snapshot!(label.clone(), format!("# {}\n{}", file.name, file.contents));
            // Rendering is a pure function of the request.
            assert_eq!(
                farm.render(&request.clone()).await.unwrap(),
                rendered,
                "{label}"
            );
        }
    }
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

#[tokio::test]
async fn invalid_example_requests_fail_naming_their_field() {
    let dir = support::fixtures().join("requests/invalid");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        INVALID.len(),
        "every invalid example has an expected field here"
    );
    let farm = farm(Transport::Cli);
    for (file, expected) in INVALID {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let result = match JobRequest::from_yaml_str(&text) {
            Ok(request) => farm.render(&request).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Err(FarmError::InvalidRequest { field, problem }) => {
                assert_eq!(field, expected, "{file}: {problem}")
            }
            other => panic!("{file}: expected InvalidRequest for {expected}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn render_works_without_any_scheduler_or_credentials() {
    // slurmrestd is not reachable (a closed port) and no token is configured: render needs
    // neither, and the first call that needs slurmrestd says what is missing.
    let settings = SlurmSettings {
        transport: Transport::Rest,
        url: "http://127.0.0.1:9".into(),
        user_name: Some("render".into()),
        state_directory: Some(std::env::temp_dir().join("farm-slurm-golden-journal")),
        ..SlurmSettings::default()
    };
    let farm = SlurmFarm::from_settings("offline", settings, Default::default()).unwrap();
    let (_, request) = requests().into_iter().next().unwrap();
    assert!(farm.render(&request).await.is_ok());
    let err = farm.job(&farm_core::JobId::new("1")).await.unwrap_err();
    if std::env::var_os("SLURM_JWT").is_none() {
        assert_eq!(err.kind(), farm_core::ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("SLURM_JWT"), "{err}");
    } else {
        assert_eq!(err.kind(), farm_core::ErrorKind::Unavailable, "{err}");
    }
}
