//! HTCondor's own submit parser as the judge. Every test here is `#[ignore]`d: a plain
//! `cargo test` reports them as not run. `tools/ci/htcondor.sh` runs them with `--ignored`
//! and `FARM_TEST_HTCONDOR_PYTHON` set to the Python of a venv with `htcondor==24.0.24`.
//! Run without the variable, or with a parser that cannot run, they FAIL saying so.
//!
//! Every example request and thousands of generated adversarial ones are rendered, the
//! submit files go through `tools/htcondor/check_submit.py` (v1 `htcondor.Submit(text).jobs()`,
//! the code condor_submit uses to build job ads), and the decoded `Arguments`/`Environment`
//! of every proc must equal the reference plan exactly, with no old-syntax `Args`/`Env`.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use farm_core::JobRequest;
use farm_htcondor::CondorSettings;
use farm_htcondor::render::{self, Mode};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::{Deserialize, Serialize};
use support::verify::{DecodedProc, verify};

const PYTHON_VAR: &str = "FARM_TEST_HTCONDOR_PYTHON";
/// Generated requests per run (`FARM_TEST_HTCONDOR_CASES` overrides).
const DEFAULT_CASES: usize = 4000;

/// The Python to judge with; panics when the run did not name one.
fn python() -> String {
    match std::env::var(PYTHON_VAR) {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "this test needs HTCondor's parser: set {PYTHON_VAR} to a Python with htcondor==24.0.24 \
             (tools/ci/htcondor.sh installs one and runs these tests)"
        ),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Serialize)]
struct Case {
    id: String,
    submit: String,
    cluster: u32,
    append: Vec<String>,
}

#[derive(Deserialize)]
struct Output {
    htcondor_version: String,
    results: Vec<CaseResult>,
}

#[derive(Deserialize)]
struct CaseResult {
    id: String,
    error: Option<String>,
    procs: Vec<DecodedProcJson>,
}

#[derive(Deserialize)]
struct DecodedProcJson {
    ad: serde_json::Map<String, serde_json::Value>,
    argv: Option<Vec<String>>,
    env: Option<std::collections::BTreeMap<String, String>>,
}

impl CaseResult {
    fn procs(&self) -> Vec<DecodedProc> {
        self.procs
            .iter()
            .map(|p| DecodedProc {
                ad: p.ad.clone(),
                argv: p.argv.clone(),
                env: p.env.clone(),
            })
            .collect()
    }
}

/// Runs the checker over `cases` in one Python process. Panics (failing the test) when the
/// checker cannot run: a selected oracle that is missing is a failure, not a skip.
fn check(python: &str, cases: &[Case]) -> Output {
    let script = repo().join("tools/htcondor/check_submit.py");
    let mut child = Process::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON_VAR}={python}: cannot run it: {e}"));
    let input = serde_json::to_vec(&serde_json::json!({ "cases": cases })).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let output: Output = serde_json::from_slice(&out.stdout).expect("checker output is JSON");
    assert!(
        output.htcondor_version.contains("24.0."),
        "unexpected HTCondor {}",
        output.htcondor_version
    );
    assert_eq!(output.results.len(), cases.len());
    output
}

fn example_requests() -> Vec<(String, JobRequest)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/requests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            )
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                JobRequest::from_path(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs HTCondor's parser (FARM_TEST_HTCONDOR_PYTHON, --ignored; tools/ci/htcondor.sh)"]
fn every_example_request_decodes_exactly_under_the_real_parser() {
    let python = python();
    let settings = CondorSettings::default();
    let requests = example_requests();
    let cases: Vec<Case> = requests
        .iter()
        .enumerate()
        .map(|(i, (name, r))| Case {
            id: name.clone(),
            submit: render::render(r, &settings)
                .unwrap()
                .main()
                .contents
                .clone(),
            cluster: 4243 + i as u32,
            append: vec![],
        })
        .collect();
    let output = check(&python, &cases);
    for ((name, request), (case, result)) in requests.iter().zip(cases.iter().zip(&output.results))
    {
        assert_eq!(result.id, *name);
        if let Some(error) = &result.error {
            panic!(
                "{name}: HTCondor refused the submit file: {error}\n{}",
                case.submit
            );
        }
        if let Err(problem) = verify(request, &settings, case.cluster, &result.procs()) {
            panic!("{name}: {problem}\n{}", case.submit);
        }
        // Resources and native directives reach the ad as HTCondor reads them.
        let ad = &result.procs[0].ad;
        let r = &request.resources;
        if let Some(cpus) = r.cpus {
            assert_eq!(ad["RequestCpus"], cpus, "{name}");
        }
        if let Some(memory) = r.memory {
            assert_eq!(ad["RequestMemory"], memory.mib(), "{name}");
        }
        if let Some(gpus) = r.gpus {
            assert_eq!(ad["RequestGPUs"], gpus, "{name}");
        }
        if let Some(limit) = r.time_limit {
            assert_eq!(ad["AllowedExecuteDuration"], limit.as_secs(), "{name}");
        }
        if name == "katana-disk-render.yaml" {
            assert_eq!(ad["AccountingGroup"], "vfx.lighting");
        }
        assert_eq!(ad["FarmAttempt"], 1, "{name}");
    }
}

#[test]
#[ignore = "needs HTCondor's parser (FARM_TEST_HTCONDOR_PYTHON, --ignored; tools/ci/htcondor.sh)"]
fn a_restart_submits_the_same_file_with_the_next_attempt() {
    let python = python();
    let settings = CondorSettings::default();
    let (_, request) = example_requests()
        .into_iter()
        .find(|(n, _)| n == "katana-disk-render.yaml")
        .unwrap();
    let submit = render::render(&request, &settings)
        .unwrap()
        .main()
        .contents
        .clone();
    let case = Case {
        id: "restart".into(),
        submit,
        cluster: 5000,
        append: vec!["+FarmAttempt = 2".into(), "+FarmRestartOf = 4243".into()],
    };
    let output = check(&python, std::slice::from_ref(&case));
    let result = &output.results[0];
    assert!(result.error.is_none(), "{:?}", result.error);
    verify(&request, &settings, 5000, &result.procs()).unwrap();
    for proc in &result.procs {
        assert_eq!(proc.ad["FarmAttempt"], 2);
        assert_eq!(proc.ad["FarmRestartOf"], 4243);
    }
}

/// The checks can fail: the recorded invalid submit files are refused, and known-bad
/// encodings (old syntax, naive `$` escaping, an unescaped macro) are caught by `verify`.
#[test]
#[ignore = "needs HTCondor's parser (FARM_TEST_HTCONDOR_PYTHON, --ignored; tools/ci/htcondor.sh)"]
fn the_oracle_rejects_known_bad_submit_files() {
    let python = python();
    let mut cases = Vec::new();
    for bad in [
        "bad1_syntax",
        "bad2_args_quote",
        "bad3_embedded_dquote",
        "bad4_queue",
        "bad5_no_exe",
    ] {
        let submit =
            std::fs::read_to_string(repo().join(format!("fixtures/htcondor/submit/{bad}.sub")))
                .unwrap();
        cases.push(Case {
            id: bad.into(),
            submit,
            cluster: 1,
            append: vec![],
        });
    }
    let settings = CondorSettings::default();
    let request = JobRequest::from_yaml_str(
        "name: control\nrender_context: 00000000-0000-4000-8000-000000000009\ncommands: [[/bin/echo, 'a b', 'x$$y', 'HOME=$HOME']]\n",
    )
    .unwrap();
    let good = render::render(&request, &settings)
        .unwrap()
        .main()
        .contents
        .clone();
    assert!(good.contains("'a b' 'x$$y' 'HOME=$(DOLLAR)HOME'"), "{good}");
    let mutations = [
        (
            "old_syntax",
            good.replace("arguments = \"", "arguments = ")
                .replace("'HOME=$(DOLLAR)HOME'\"", "'HOME=$(DOLLAR)HOME'"),
        ),
        ("naive_dollar", good.replace("x$$y", "x$(DOLLAR)$(DOLLAR)y")),
        (
            "unescaped_macro",
            good.replace("$(DOLLAR)HOME", "$HOME")
                .replace("'HOME=$HOME'", "'HOME=$(HOME)'"),
        ),
        ("unquoted_space", good.replace("'a b'", "a b")),
    ];
    for (id, submit) in &mutations {
        assert_ne!(submit, &good, "{id} did not change the file");
        cases.push(Case {
            id: (*id).into(),
            submit: submit.clone(),
            cluster: 1,
            append: vec![],
        });
    }
    cases.push(Case {
        id: "good".into(),
        submit: good,
        cluster: 1,
        append: vec![],
    });
    let output = check(&python, &cases);
    let by_id = |id: &str| output.results.iter().find(|r| r.id == id).unwrap();
    for (bad, needle) in [
        ("bad1_syntax", ""),
        ("bad2_args_quote", "Unbalanced quote"),
        ("bad3_embedded_dquote", "double-quote"),
        ("bad4_queue", ""),
        ("bad5_no_exe", "executable"),
    ] {
        let error = by_id(bad)
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{bad} was accepted"));
        assert!(error.contains(needle), "{bad}: {error}");
    }
    verify(&request, &settings, 1, &by_id("good").procs()).unwrap();
    for (id, _) in &mutations {
        let result = by_id(id);
        let verdict = match &result.error {
            Some(e) => Err(e.clone()),
            None => verify(&request, &settings, 1, &result.procs()),
        };
        let problem = verdict.expect_err(&format!("{id} passed the check"));
        eprintln!("{id} caught: {problem}");
    }
}

/// Thousands of generated adversarial requests, in batches, through the real parser.
#[test]
#[ignore = "needs HTCondor's parser (FARM_TEST_HTCONDOR_PYTHON, --ignored; tools/ci/htcondor.sh)"]
fn generated_adversarial_requests_decode_exactly_under_the_real_parser() {
    let python = python();
    let total: usize = std::env::var("FARM_TEST_HTCONDOR_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var("FARM_TEST_HTCONDOR_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (FARM_TEST_HTCONDOR_SEED={seed} repeats this run)");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = support::requests::request();
    let settings = CondorSettings::default();

    let mut generated = Vec::new();
    let (mut invalid, mut refused) = (0, 0);
    while generated.len() < total {
        let request = strategy.new_tree(&mut runner).unwrap().current();
        if request.validate().is_err() {
            invalid += 1;
            continue;
        }
        match render::render(&request, &settings) {
            Ok(rendered) => {
                let cluster = 1 + (generated.len() as u32 * 7919) % 2_000_000_000;
                generated.push((request, rendered.main().contents.clone(), cluster));
            }
            Err(e) => {
                assert!(e.to_string().contains("log_directory"), "{e}");
                refused += 1;
            }
        }
    }
    let direct = generated
        .iter()
        .filter(|(r, _, _)| render::mode(r, &settings) == Mode::Direct)
        .count();
    let procs: usize = generated.iter().map(|(r, _, _)| r.task_count()).sum();
    eprintln!(
        "{} requests ({direct} direct, {} wrapper; {procs} procs), {invalid} invalid and {refused} refused log directories skipped",
        generated.len(),
        generated.len() - direct
    );
    assert!(
        direct * 10 >= generated.len() * 4,
        "the direct route must be exercised: {direct} of {}",
        generated.len()
    );

    let mut failures = Vec::new();
    for (batch_no, batch) in generated.chunks(1000).enumerate() {
        let cases: Vec<Case> = batch
            .iter()
            .enumerate()
            .map(|(i, (_, submit, cluster))| Case {
                id: format!("{batch_no}-{i}"),
                submit: submit.clone(),
                cluster: *cluster,
                append: vec![],
            })
            .collect();
        let output = check(&python, &cases);
        for ((request, submit, cluster), result) in batch.iter().zip(&output.results) {
            let verdict = match &result.error {
                Some(e) => Err(format!("HTCondor refused the file: {e}")),
                None => verify(request, &settings, *cluster, &result.procs()),
            };
            if let Err(problem) = verdict {
                failures.push(format!(
                    "{problem}\nrequest: {}\nsubmit file:\n{submit}",
                    request.to_json()
                ));
            }
        }
    }
    let summary: Vec<&str> = failures
        .iter()
        .take(12)
        .map(|f| f.lines().next().unwrap_or_default())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests did not survive the real parser:\n{}\nfirst in full:\n{}",
        failures.len(),
        generated.len(),
        summary.join("\n"),
        failures[0]
    );
}
