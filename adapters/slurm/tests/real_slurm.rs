//! Round trips through a real Slurm. Every test here is `#[ignore]`d: a plain `cargo test`
//! reports them as not run. Run them with a Slurm up (`tools/slurm-lab/slurm-up.sh`) as
//! `FARM_TEST_SLURM=1 cargo test -p farm-slurm --test real_slurm -- --ignored`; run without
//! the variable, or with no Slurm answering, they fail saying so.
//!
//! - Hostile names, tags and paths go through the real sbatch directive parser (and
//!   slurmrestd's JSON) into slurmctld and come back exactly from `squeue --json`.
//! - Every example request passes `sbatch --test-only`.
//! - The adversarial example runs for real through both transports and prints exactly what
//!   the local executor prints for the same request; nothing in it executes.

mod support;

use std::path::Path;
use std::time::Duration;

use farm_core::{FarmPlugin, FarmPluginExt, JobRequest, JobState, WaitOptions};
use farm_slurm::parse::{self, parse_comment};
use farm_slurm::render::{self, FarmComment, RenderOptions};
use farm_slurm::{SlurmFarm, SlurmSettings, Transport};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const GATE: &str = "FARM_TEST_SLURM";

/// Panics unless the run asked for a real Slurm and slurmctld answers.
fn require_slurm() {
    assert!(
        std::env::var_os(GATE).is_some(),
        "this test needs a real Slurm: start one (tools/slurm-lab/slurm-up.sh) and set {GATE}=1"
    );
    let out = std::process::Command::new("scontrol").arg("ping").output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("UP") => {}
        other => panic!("{GATE} is set but slurmctld does not answer `scontrol ping`: {other:?}"),
    }
}

fn run(argv: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// The record `squeue --json` holds for job `id`.
fn squeue_record(id: u64) -> serde_json::Value {
    let out = run(&["squeue", "--json"], None);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("job {id} not in squeue"))
}

fn hostile_line() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("#".to_owned()),
            Just("#SBATCH --mem=1".to_owned()),
            Just("$(touch /tmp/farm-slurm-pwned)".to_owned()),
            Just("`id`".to_owned()),
            Just("%j%%".to_owned()),
            Just("  ".to_owned()),
            Just("\t".to_owned()),
            Just("é漢🎬".to_owned()),
            Just("hetjob".to_owned()),
            Just("\u{1b}[31m".to_owned()),
            "[a-zA-Z0-9]{1,6}",
        ],
        1..6,
    )
    .prop_map(|p| p.concat())
    .prop_filter("names are not blank", |s| !s.trim().is_empty())
}

struct Case {
    name: String,
    tags: Vec<String>,
    dir: String,
}

fn case_request(case: &Case, root: &Path) -> JobRequest {
    let mut r = JobRequest::from_yaml_str("name: x\ncommands: [[/bin/true]]\n").unwrap();
    r.name = case.name.clone();
    r.tags = case.tags.clone();
    let safe: String = case
        .dir
        .chars()
        .filter(|c| *c != '/' && *c != '\\')
        .collect();
    let wd = root.join(format!("wd {safe}"));
    std::fs::create_dir_all(&wd).unwrap();
    r.working_directory = Some(wd.display().to_string());
    r.log_directory = Some(root.join(format!("logs {safe}")).display().to_string());
    r.validate().unwrap();
    r
}

fn check_record(request: &JobRequest, record: &serde_json::Value, id: u64) {
    assert_eq!(
        record["name"].as_str(),
        Some(request.name.as_str()),
        "name of job {id}"
    );
    let comment = parse_comment(record["comment"].as_str().unwrap());
    assert_eq!(
        comment,
        Some(FarmComment::for_request(request, 1)),
        "comment of job {id}"
    );
    let log = render::log_path(request, &RenderOptions::default()).unwrap();
    let resolved = parse::resolve_output(
        record["standard_output"].as_str().unwrap(),
        "",
        id,
        id,
        None,
        "",
    );
    assert_eq!(resolved, Some(log), "output of job {id}");
    assert_eq!(
        record["current_working_directory"].as_str(),
        request.working_directory.as_deref(),
        "cwd of job {id}"
    );
}

fn cases() -> Vec<Case> {
    let mut out = vec![
        Case {
            name: "quote's \"test\" $(id) `id` #SBATCH".into(),
            tags: vec!["adversarial".into()],
            dir: "a 'b' \"c\" $d #e".into(),
        },
        Case {
            name: "  leading and trailing  ".into(),
            tags: vec![],
            dir: "%j%%".into(),
        },
        Case {
            name: "back\\slash \\\" end\\".into(),
            tags: vec!["k=v".into(), "show:abc".into()],
            dir: "hetjob".into(),
        },
    ];
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = (
        hostile_line(),
        prop::collection::vec("[A-Za-z0-9._:=@+/-]{1,12}", 0..3),
        hostile_line(),
    );
    for _ in 0..24 {
        let (name, tags, dir) = strategy.new_tree(&mut runner).unwrap().current();
        out.push(Case {
            name: name.chars().take(200).collect(),
            tags,
            dir: dir.chars().take(40).collect(),
        });
    }
    out
}

#[test]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
fn hostile_values_round_trip_through_the_real_sbatch() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-rt-")
        .tempdir_in("/tmp")
        .unwrap();
    for case in cases() {
        let request = case_request(&case, root.path());
        let script = render::sbatch_script(&request, &RenderOptions::default(), 1).unwrap();
        let test_only = run(&["sbatch", "--test-only"], Some(&script));
        assert!(
            test_only.status.success(),
            "sbatch --test-only refused {:?}: {}",
            case.name,
            String::from_utf8_lossy(&test_only.stderr)
        );
        let out = run(&["sbatch", "--parsable", "--hold"], Some(&script));
        assert!(
            out.status.success(),
            "sbatch refused {:?}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let id = parse::parse_sbatch_parsable(&String::from_utf8_lossy(&out.stdout)).unwrap();
        let record = squeue_record(id);
        run(&["scancel", &id.to_string()], None);
        check_record(&request, &record, id);
    }
}

#[tokio::test]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn hostile_values_round_trip_through_the_real_slurmrestd() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-rt-")
        .tempdir_in("/tmp")
        .unwrap();
    let token = {
        let out = run(&["scontrol", "token", "lifespan=600"], None);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("SLURM_JWT=")
            .to_owned()
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let http = reqwest::Client::new();
    let base = "http://127.0.0.1:6820/slurm/v0.0.38";
    let options = RenderOptions {
        transport: Transport::Rest,
        environment: SlurmSettings::default().environment,
        ..RenderOptions::default()
    };
    for case in cases() {
        let request = case_request(&case, root.path());
        let mut body: serde_json::Value =
            serde_json::from_str(&render::rest_body(&request, &options, 1).unwrap()).unwrap();
        body["job"]["hold"] = true.into();
        let reply = http
            .post(format!("{base}/job/submit"))
            .header("X-SLURM-USER-NAME", &user)
            .header("X-SLURM-USER-TOKEN", &token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let id = parse::parse_submit_reply(&reply)
            .unwrap()
            .unwrap_or_else(|e| panic!("slurmrestd refused {:?}: {e:?}", case.name));
        let record = squeue_record(id);
        run(&["scancel", &id.to_string()], None);
        check_record(&request, &record, id);
    }
}

#[test]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
fn every_example_request_passes_sbatch_test_only() {
    require_slurm();
    let dir = support::fixtures().join("requests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let mut request = JobRequest::from_path(&path).unwrap();
        // The one-node lab has 2 CPUs, no GPU and 24 GiB: ask for what it has, keep the rest.
        request.resources.memory = None;
        request.resources.gpus = None;
        request.resources.cpus = request.resources.cpus.map(|c| c.min(2));
        let options = RenderOptions {
            partition: Some("debug".into()),
            array_limit: Some(4),
            ..RenderOptions::default()
        };
        let script = render::sbatch_script(&request, &options, 1).unwrap();
        let out = run(&["sbatch", "--test-only"], Some(&script));
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 7);
}

/// Runs the request's tasks with the local executor: what the render log must hold.
async fn local_output(request: &JobRequest, dir: &Path) -> String {
    let log = dir.join("local.log");
    for task in request.tasks() {
        let outcome = farm_core::exec::run_task(
            request,
            &task,
            &log,
            Default::default(),
            &Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(outcome, farm_core::exec::TaskOutcome::Succeeded);
    }
    std::fs::read_to_string(&log).unwrap()
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

async fn adversarial_example_runs_exactly(transport: Transport) {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-adv-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut request =
        JobRequest::from_path(&support::fixtures().join("requests/adversarial-quoting.yaml"))
            .unwrap();
    request.render_context = uuid::Uuid::new_v4();
    std::fs::create_dir_all(request.working_directory.as_ref().unwrap()).unwrap();
    let _ = std::fs::remove_file("/tmp/farm-pwned");
    let mut settings: SlurmSettings = SlurmSettings {
        transport,
        ..SlurmSettings::default()
    };
    settings.state_directory = Some(root.path().join("journal"));
    settings.log_directory = Some(root.path().join("logs").display().to_string());
    settings.array_limit = Some(1);
    if transport == Transport::Rest {
        let out = run(&["scontrol", "token", "lifespan=600"], None);
        settings.token = Some(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_start_matches("SLURM_JWT=")
                .to_owned()
                .into(),
        );
        settings.user_name = Some(std::env::var("USER").unwrap_or_else(|_| "root".into()));
    }
    let farm = SlurmFarm::from_settings("real", settings, Default::default()).unwrap();
    let id = farm.submit(&request).await.unwrap();
    let options = WaitOptions {
        timeout: Duration::from_secs(120),
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(1),
    };
    let job = farm
        .wait_until_finished(&id, &options, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.name, request.name);
    assert_eq!(job.tags, request.tags);
    assert_eq!(job.render_context, Some(request.render_context));
    let mut log = String::new();
    let mut offset = 0;
    loop {
        let chunk = farm.read_log(&id, offset).await.unwrap();
        log.push_str(&chunk.data);
        offset = chunk.next_offset;
        if chunk.complete {
            break;
        }
    }
    let expected = local_output(&request, root.path()).await;
    assert_eq!(
        sorted_lines(&log),
        sorted_lines(&expected),
        "Slurm's log:\n{log}\nlocal executor:\n{expected}"
    );
    assert_eq!(log.len(), expected.len());
    assert!(
        !Path::new("/tmp/farm-pwned").exists(),
        "a value was executed"
    );
    let by_tag = farm
        .list_jobs(&farm_core::JobFilter {
            tag: Some("adversarial".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_tag.iter().any(|j| j.id == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn the_adversarial_example_runs_exactly_through_the_cli() {
    adversarial_example_runs_exactly(Transport::Cli).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn the_adversarial_example_runs_exactly_through_slurmrestd() {
    adversarial_example_runs_exactly(Transport::Rest).await;
}

/// The CLI transport through `SshRunner`: a stand-in `ssh` that runs the remote `sh -s`
/// here, which is all ssh adds between the adapter and the login node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn the_cli_transport_works_through_the_ssh_runner() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-ssh-")
        .tempdir_in("/tmp")
        .unwrap();
    let fake_ssh = root.path().join("ssh");
    std::fs::write(
        &fake_ssh,
        "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift 2; exec \"$@\"\n",
    )
    .unwrap();
    let mut perm = std::fs::metadata(&fake_ssh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&fake_ssh, perm).unwrap();
    let runner = farm_core::SshRunner::new(
        "render@login",
        vec!["-oBatchMode=yes".into()],
        Duration::from_secs(20),
    )
    .with_ssh_program(fake_ssh.display().to_string());
    let settings = SlurmSettings {
        state_directory: Some(root.path().join("journal")),
        log_directory: Some(root.path().join("logs 'over' ssh").display().to_string()),
        ..SlurmSettings::default()
    };
    let farm = SlurmFarm::with_runner(
        "ssh",
        settings,
        Default::default(),
        std::sync::Arc::new(runner),
    )
    .unwrap();
    let mut request = JobRequest::from_yaml_str(
        "name: \"over 'ssh' $(id)\"\ncommands: [[/bin/echo, \"hello \\\"remote\\\" $HOME\"]]\n",
    )
    .unwrap();
    request.render_context = uuid::Uuid::new_v4();
    let id = farm.submit(&request).await.unwrap();
    let options = WaitOptions {
        timeout: Duration::from_secs(60),
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(1),
    };
    let job = farm
        .wait_until_finished(&id, &options, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (job.state, job.name.as_str()),
        (JobState::Completed, request.name.as_str())
    );
    let chunk = farm.read_log(&id, 0).await.unwrap();
    assert_eq!(chunk.data, "hello \"remote\" $HOME\n");
    assert!(chunk.complete);
}

/// A CLI farm on the lab, its journal and logs under `root`.
fn cli_farm_on(root: &Path) -> SlurmFarm {
    let settings = SlurmSettings {
        state_directory: Some(root.join("journal")),
        log_directory: Some(root.join("logs").display().to_string()),
        ..SlurmSettings::default()
    };
    SlurmFarm::from_settings("real", settings, Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn check_refuses_1000_cpus_in_slurms_words_and_shows_the_start_of_a_valid_request() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-check-")
        .tempdir_in("/tmp")
        .unwrap();
    let farm = cli_farm_on(root.path());
    assert!(farm.capabilities().check && farm.capabilities().check_resources);
    let mut request = JobRequest::new(
        "farm-check-big",
        vec![farm_core::Command::Argv(vec!["/bin/true".into()])],
    );
    request.resources.cpus = Some(1000);
    match farm.check(&request).await {
        Err(farm_core::FarmError::InvalidRequest { field, problem }) => {
            assert_eq!(field, "resources");
            assert!(
                problem.contains("Requested node configuration is not available"),
                "{problem}"
            );
        }
        other => panic!("sbatch --test-only should refuse 1000 CPUs: {other:?}"),
    }
    request.name = "farm-check-small".into();
    request.resources.cpus = Some(1);
    let report = farm.check(&request).await.unwrap();
    assert!(report.message.contains("to start at"), "{report:?}");
    // Slurm's own estimate: now on an idle lab, far later behind a job that blocks the
    // partition (another test's) — whatever it is, it is read from the message.
    let start = report.estimated_start.expect("Slurm names a start");
    assert!(start > farm_core::now_millis() - 3600 * 1000, "{report:?}");
    assert!(
        report
            .placement
            .as_deref()
            .is_some_and(|p| p.contains("partition")),
        "{report:?}"
    );
    let squeue = run(
        &[
            "squeue",
            "--noheader",
            "--name=farm-check-big,farm-check-small",
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&squeue.stdout).trim().is_empty(),
        "check created a job"
    );
    assert!(
        !root.path().join("logs").exists(),
        "check made the log directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn a_job_slurm_can_never_run_waits_saying_so() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-never-")
        .tempdir_in("/tmp")
        .unwrap();
    let farm = cli_farm_on(root.path());
    let mut request = JobRequest::new(
        "farm-never-runs",
        vec![farm_core::Command::Argv(vec!["/bin/true".into()])],
    );
    request.resources.cpus = Some(1000);
    // sbatch itself accepts it (the lab does not enforce partition limits at submit).
    let id = farm.submit(&request).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = farm.job(&id).await.unwrap();
        if job
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("PartitionConfig"))
            || std::time::Instant::now() > deadline
        {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    farm.stop(&id).await.unwrap();
    assert_eq!(job.state, JobState::Waiting);
    assert_eq!(
        job.reason.as_deref(),
        Some("can never run here: PartitionConfig — the partition cannot satisfy the request")
    );
}

/// `retry_failed` on the real Slurm: a failed and a cancelled array element are requeued
/// by `scontrol requeue N_I,N_J` (the script says `--requeue`), under the same job id, and
/// only they run again; the completed elements do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Slurm (FARM_TEST_SLURM=1, --ignored)"]
async fn retry_failed_requeues_the_failed_and_cancelled_elements_only() {
    require_slurm();
    let root = tempfile::Builder::new()
        .prefix("farm-slurm-retry-")
        .tempdir_in("/tmp")
        .unwrap();
    let farm = cli_farm_on(root.path());
    assert!(farm.capabilities().retry_failed);
    let runs = root.path().join("runs");
    // Frame 2 fails and frame 3 blocks (until cancelled) the first time only.
    let script = format!(
        "echo \"$1\" >> '{r}'
         if [ ! -e '{r}.again' ]; then
           [ \"$1\" = 2 ] && exit 3
           [ \"$1\" = 3 ] && {{ : > '{r}.blocking'; sleep 300; }}
         fi
         exit 0",
        r = runs.display()
    );
    let mut request = JobRequest::new(
        "farm-retry-failed",
        vec![farm_core::Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
            "sh".into(),
            "{frame}".into(),
        ])],
    );
    request.frames = Some("1-4".parse().unwrap());
    let id = farm.submit(&request).await.unwrap();
    let blocking = root.path().join("runs.blocking");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !blocking.exists() {
        assert!(std::time::Instant::now() < deadline, "frame 3 never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Frame 3 is array element 2: cancel that element alone.
    let cancel = run(&["scancel", &format!("{id}_2")], None);
    assert!(cancel.status.success(), "{cancel:?}");
    let wait = WaitOptions {
        timeout: Duration::from_secs(120),
        interval: Duration::from_millis(500),
        max_interval: Duration::from_secs(2),
    };
    let first = farm
        .wait_until_finished(&id, &wait, &mut |_| {})
        .await
        .unwrap();
    assert!(
        matches!(first.state, JobState::Failed | JobState::Cancelled),
        "{first:?}"
    );
    std::fs::write(root.path().join("runs.again"), "").unwrap();
    assert_eq!(farm.retry_failed(&id).await.unwrap(), id);
    let shown = run(&["scontrol", "show", "job", &id.to_string()], None);
    eprintln!(
        "after retry_failed:\n{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    let second = farm
        .wait_until_finished(&id, &wait, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(second.state, JobState::Completed, "{second:?}");
    let mut ran: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        ["1", "2", "2", "3", "3", "4"],
        "only frames 2 and 3 ran again"
    );
    // Nothing failed now: nothing changes.
    assert_eq!(farm.retry_failed(&id).await.unwrap(), id);
    assert_eq!(farm.job(&id).await.unwrap().state, JobState::Completed);
}
