//! The real OpenJD tools as oracles. Gated (`#[ignore]`, `FARM_OPENJD_BIN`): run by
//! `tools/ci/openjd.sh`. `FARM_OPENJD_CASES` sets how many adversarial requests are
//! generated (default 2000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use farm_core::{Command, FrameSet, JobRequest, Repeat};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn openjd() -> PathBuf {
    PathBuf::from(
        std::env::var("FARM_OPENJD_BIN").expect("set FARM_OPENJD_BIN to the openjd program"),
    )
}

fn python() -> PathBuf {
    openjd().parent().unwrap().join("python")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const NASTY: &[&str] = &[
    "",
    " ",
    "'",
    "\"",
    "it's",
    "$(touch /tmp/farm-openjd-pwned)",
    "`id`",
    ";|&<>",
    "\n",
    "a\nb\n",
    "{{",
    "}}",
    "{{frame}",
    "{{Param.X}}",
    "{",
    "}",
    "{a,b}",
    "%",
    "%1",
    "%PATH%",
    "-n",
    "--",
    "--chdir=/",
    "é漢字🎬",
    "\t",
    "a\tb",
    "\r\n",
    "\\",
    "$HOME",
    "${HOME}",
    "*",
    "~",
    "FOO=bar",
    "\u{7f}",
    "\u{85}",
];

fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(proptest::sample::select(NASTY), 0..5).prop_map(|v| v.concat()),
        1 => "\\PC{0,40}",
        1 => proptest::sample::select(NASTY).prop_map(|s| s.repeat(700)),
    ]
}

/// A literal argv element: `{` doubled so the request means the text itself.
fn literal(text: &str) -> String {
    text.replace('{', "{{")
}

fn request_strategy() -> impl Strategy<Value = JobRequest> {
    (
        proptest::collection::vec(nasty_text(), 0..6),
        proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,8}", nasty_text(), 0..5),
        proptest::option::of((1u32..30, 0u32..40, 1u32..4, 1u32..5, any::<bool>())),
        "[a-z]{1,10}",
    )
        .prop_map(|(args, env, frames, name)| {
            let mut argv = vec!["/bin/echo".to_owned()];
            argv.extend(args.iter().map(|a| literal(a)));
            let mut r = JobRequest::new(format!("adv {name}"), vec![Command::Argv(argv)]);
            r.environment = env
                .into_iter()
                .filter(|(k, _)| !k.starts_with("FARM"))
                .collect();
            if let Some((start, len, step, chunk, per_chunk)) = frames {
                r.frames = Some(FrameSet::stepped(start, start + len, step).unwrap());
                r.chunk_size = chunk;
                if per_chunk {
                    r.repeat = Repeat::PerChunk;
                    r.commands.push(Command::Argv(vec![
                        "/bin/echo".into(),
                        "{chunk_first}-{chunk_last}".into(),
                    ]));
                } else {
                    r.commands.push(Command::Argv(vec![
                        "/bin/echo".into(),
                        "{frame}".into(),
                        "{chunk_index}".into(),
                    ]));
                }
            }
            r
        })
}

#[test]
#[ignore = "needs openjd: run with FARM_OPENJD_BIN set and --ignored"]
fn openjd_check_accepts_every_golden() {
    for entry in std::fs::read_dir(repo().join("fixtures/openjd/golden")).unwrap() {
        let t = entry.unwrap().path().join("template.yaml");
        let out = std::process::Command::new(openjd())
            .arg("check")
            .arg(&t)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            t.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `check` on the local transport runs the real `openjd check` on the bundle: a valid
/// request passes with openjd's line, one openjd refuses (a host requirement whose max is
/// below its min) is `InvalidRequest` in openjd's words, and nothing is left behind.
#[tokio::test]
#[ignore = "needs openjd: run with FARM_OPENJD_BIN set and --ignored"]
async fn check_asks_the_real_openjd_check() {
    use farm_core::FarmPlugin as _;
    let dir = tempfile::tempdir().unwrap();
    let settings = farm_openjd::OpenJdSettings {
        openjd_bin: openjd().display().to_string(),
        data_root: Some(dir.path().join("data")),
        ..Default::default()
    };
    let farm =
        farm_openjd::OpenJdFarm::from_settings("oracle", settings, Default::default()).unwrap();
    assert!(farm.capabilities().check && !farm.capabilities().check_resources);
    let mut req = JobRequest::new("checked", vec![Command::Argv(vec!["/bin/true".into()])]);
    req.frames = Some(FrameSet::range(1, 3).unwrap());
    let report = farm.check(&req).await.unwrap();
    assert_eq!(
        report.message,
        "Template at 'template.yaml' passes validation checks."
    );
    req.native.insert(
        "openjd".into(),
        serde_json::json!({"host_requirements": {"amounts": [
            {"name": "amount.worker.vcpu", "min": 5, "max": 2}
        ]}}),
    );
    let refused = farm.check(&req).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        farm_core::ErrorKind::InvalidRequest,
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("Value for 'max' must be greater or equal to 'min'"),
        "{refused}"
    );
    let checks = dir.path().join("data/checks");
    let left: Vec<_> = std::fs::read_dir(&checks)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "check left {left:?}");
    assert!(!dir.path().join("data/jobs").exists());
}

#[test]
#[ignore = "needs openjd: run with FARM_OPENJD_BIN set and --ignored"]
fn adversarial_bundles_all_pass_the_openjd_validator() {
    let cases: usize = std::env::var("FARM_OPENJD_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = request_strategy();
    let (mut rendered, mut refused) = (0, 0);
    for i in 0..cases {
        let request = strategy.new_tree(&mut runner).unwrap().current();
        match farm_openjd::render::render(&request) {
            Ok(bundle) => {
                let d = dir.path().join(format!("{i:05}"));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("template.yaml"), bundle.template).unwrap();
                rendered += 1;
            }
            // Only the documented limit may refuse a valid request.
            Err(e) => {
                assert!(
                    e.to_string().contains("job parameters") || e.to_string().contains("CR LF"),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(rendered >= cases * 3 / 4, "{refused} of {cases} refused");
    let out = std::process::Command::new(python())
        .arg(repo().join("tools/openjd/check_many.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("checked {rendered} templates, 0 failed")),
        "{text}"
    );
    eprintln!(
        "{rendered} bundles passed openjd-model, {refused} refused (job parameter limit or CR LF)"
    );
}

/// Runs `request` with `openjd run`; returns what the dump command wrote.
fn run_dump(request: &JobRequest, dir: &Path) -> (Vec<String>, BTreeMap<String, String>) {
    let bundle = farm_openjd::render::render(request).unwrap();
    std::fs::write(dir.join("template.yaml"), bundle.template).unwrap();
    let out = std::process::Command::new(openjd())
        .arg("run")
        .arg(dir.join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let argv = std::fs::read(dir.join("argv")).unwrap();
    let env = std::fs::read(dir.join("env")).unwrap();
    let argv = String::from_utf8(argv)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_owned)
        .collect();
    let env = String::from_utf8(env)
        .unwrap()
        .split_terminator('\0')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    (argv, env)
}

#[test]
#[ignore = "needs openjd: run with FARM_OPENJD_BIN set and --ignored"]
fn a_sample_runs_under_openjd_with_argv_and_environment_byte_exact() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let text = nasty_text();
    let env_strategy = proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,8}", nasty_text(), 0..5);
    let samples: usize = std::env::var("FARM_OPENJD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    for i in 0..samples {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().display().to_string();
        let args: Vec<String> = (0..6)
            .map(|_| text.new_tree(&mut runner).unwrap().current())
            .collect();
        let env: BTreeMap<String, String> = env_strategy
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("FARM"))
            .collect();
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "d=\"$1\"; shift; for a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$d/argv\"; env -0 > \"$d/env\"".to_owned(),
            "sh".to_owned(),
            out.clone(),
        ];
        argv.extend(args.iter().map(|a| literal(a)));
        let mut request = JobRequest::new(format!("run {i}"), vec![Command::Argv(argv)]);
        request.environment = env.clone();
        if farm_openjd::render::render(&request).is_err() {
            continue;
        }
        let (got_argv, got_env) = run_dump(&request, dir.path());
        assert_eq!(got_argv, args, "sample {i}: argv");
        for (k, v) in &env {
            assert_eq!(got_env.get(k), Some(v), "sample {i}: environment {k}");
        }
        assert_eq!(
            got_env.get("FARM_RENDER_CONTEXT"),
            Some(&request.render_context.to_string())
        );
    }
    assert!(
        !Path::new("/tmp/farm-openjd-pwned").exists(),
        "an argument was executed"
    );
}
