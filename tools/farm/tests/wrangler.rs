//! The `farm` command line as a wrangler uses it against a real local queue (issue 17):
//! following logs, stopping and starting jobs, partial status, listing, submitting and
//! waiting, and finding the queue through its data root. Each test runs its own queue in its
//! own data root; the commands find it through `FARM_DATA_ROOT` alone.

#![cfg(feature = "local")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{FAST, ServerProcess, farm_command, farm_on, request_file, texts};
use serde_json::Value;

/// Polls `probe` every 50 ms until it returns `Some`, failing with `what` after `limit`.
fn until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A queue with `agents` local agents and fast timings.
fn serve(root: &Path, agents: &str) -> ServerProcess {
    let mut args = vec!["--agents", agents];
    args.extend_from_slice(FAST);
    ServerProcess::start(root, &args)
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", texts(out)))
}

fn state(root: &Path, id: &str) -> String {
    json(&farm_on(root, &["-o", "json", "status", id]))["jobs"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Submits `yaml` quietly and returns the bare id.
fn submit(root: &Path, yaml: &str) -> String {
    let file = request_file(root.parent().unwrap(), "job", yaml);
    let out = farm_on(root, &["submit", "--quiet", &file]);
    assert!(out.status.success(), "{:?}", texts(&out));
    let id = texts(&out).0.trim().to_owned();
    assert!(
        id.parse::<u64>().is_ok(),
        "--quiet prints the bare id: {id:?}"
    );
    id
}

const LONG: &str = "name: long\ncommands: [[sh, -c, 'echo started; sleep 60']]\n";

#[test]
fn log_dash_f_follows_and_exits_11_when_the_job_is_stopped_with_who_stopped_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "1");
    let id = submit(&root, LONG);
    until("the job to run", Duration::from_secs(30), || {
        (state(&root, &id) == "Running").then_some(())
    });
    let follower = farm_command(&root, &["log", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = farm_on(&root, &["stop", &id]);
    assert!(out.status.success(), "{:?}", texts(&out));
    let out = follower.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(11),
        "exit as submit --wait does: {:?}",
        texts(&out)
    );
    let log = texts(&out).0;
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("farm: job stopped by ")
            && last.contains("farm command line")
            && last.contains(" at 20"),
        "the log ends saying who stopped the job and when: {log}"
    );
    // A failed job: 10, with the old -F still accepted.
    let failing = submit(&root, "name: fails\ncommands: [[sh, -c, 'exit 3']]\n");
    let out = farm_on(&root, &["log", "-F", &failing]);
    assert_eq!(out.status.code(), Some(10), "{:?}", texts(&out));
    // -f is no longer --farm.
    let out = farm_on(&root, &["-f", "local", "list"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
}

#[test]
fn stop_and_start_say_what_happened_to_each_job() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "1");
    let done = submit(&root, "name: quick\ncommands: [[true]]\n");
    until("the job to complete", Duration::from_secs(30), || {
        (state(&root, &done) == "Completed").then_some(())
    });
    let out = farm_on(&root, &["stop", &done]);
    assert!(out.status.success(), "{:?}", texts(&out));
    assert_eq!(
        texts(&out).0.trim(),
        format!("job {done} already Completed; left as it is")
    );

    let long = submit(&root, LONG);
    until("the job to run", Duration::from_secs(30), || {
        (state(&root, &long) == "Running").then_some(())
    });
    let out = farm_on(&root, &["start", &long]);
    assert_eq!(
        texts(&out).0.trim(),
        format!("job {long} already Running; left as it is")
    );
    let out = farm_on(&root, &["-o", "json", "stop", &long, "999"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unknown id is reported: {:?}",
        texts(&out)
    );
    let doc = json(&out);
    assert_eq!(doc["results"][0]["outcome"], "stopped", "{doc}");
    assert_eq!(doc["errors"][0]["kind"], "job_not_found", "{doc}");
    until("the job to be cancelled", Duration::from_secs(30), || {
        (state(&root, &long) == "Cancelled").then_some(())
    });
    let out = farm_on(&root, &["start", &done, &long]);
    let text = texts(&out).0;
    assert!(
        text.contains(&format!(
            "job {done} started again (was Completed; attempt 2)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("job {long} started again (was Cancelled")),
        "{text}"
    );
    farm_on(&root, &["stop", &long]);
}

#[test]
fn status_prints_the_jobs_that_exist_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "0");
    let id = submit(&root, "name: waits\ncommands: [[true]]\n");
    let out = farm_on(&root, &["status", &id, "999"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout.starts_with(&format!("{id}  Waiting  waits")),
        "{stdout}"
    );
    assert_eq!(stderr.trim(), "farm: error: job 999 not found");
    let one = json(&farm_on(&root, &["-o", "json", "status", &id]));
    let two = json(&farm_on(&root, &["-o", "json", "status", &id, "999"]));
    assert_eq!(
        one["jobs"][0]["id"],
        id.as_str(),
        "one id, same shape: {one}"
    );
    assert_eq!(two["jobs"], one["jobs"], "{two}");
    assert_eq!(two["errors"][0]["id"], "999", "{two}");
}

#[test]
fn list_is_newest_first_takes_states_in_any_case_and_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "0");
    let ids: Vec<String> = (0..3)
        .map(|_| submit(&root, "name: waits\ncommands: [[true]]\n"))
        .collect();
    let listed = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["-o", "json", "list"];
        all.extend_from_slice(args);
        let out = farm_on(&root, &all);
        assert!(out.status.success(), "{:?}", texts(&out));
        json(&out)["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed(&[]), newest_first);
    assert_eq!(listed(&["--limit", "2"]), newest_first[..2]);
    assert_eq!(listed(&["--state", "waiting"]), newest_first);
    assert_eq!(listed(&["--state", "FAILED"]), Vec::<String>::new());
    let out = farm_on(&root, &["list", "--state", "broken"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn submit_says_what_it_submitted_and_how_to_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "0");
    let file = request_file(
        dir.path(),
        "frames",
        "name: shot\ncommands: [[echo, '{frame}']]\nframes: 1-8\n",
    );
    let out = farm_on(&root, &["submit", &file]);
    let text = texts(&out).0;
    assert!(
        text.starts_with("submitted job 1 (shot, 8 frames) to farm local\n"),
        "{text}"
    );
    assert!(
        text.contains("farm log -f 1") && text.contains("farm stop 1"),
        "{text}"
    );
    let out = farm_on(&root, &["-o", "json", "submit", &file, &file]);
    let doc = json(&out);
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["jobs"][0]["state"], "Waiting", "{doc}");
}

#[test]
fn waiting_shows_an_eta_and_ctrl_c_says_the_job_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _queue = serve(&root, "1");
    let file = request_file(
        dir.path(),
        "slow",
        "name: slow\ncommands: [[sh, -c, 'sleep 0.5']]\nframes: 1-8\n",
    );
    let out = farm_on(&root, &["submit", "--wait", &file]);
    let stderr = texts(&out).1;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("/8 frames) after") && l.contains(" left")),
        "progress lines carry an ETA: {stderr}"
    );

    let long = request_file(dir.path(), "long", LONG);
    let mut child = farm_command(&root, &["submit", "--wait", &long])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("submitted job "), "{first}");
    let id = first.split_whitespace().nth(2).unwrap().to_owned();
    until("the job to run", Duration::from_secs(30), || {
        (state(&root, &id) == "Running").then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let rest = rest.join("\n");
    assert!(
        rest.contains("stopped waiting; the jobs keep running"),
        "{rest}"
    );
    assert!(rest.contains(&format!("farm stop {id}")), "{rest}");
    assert_eq!(state(&root, &id), "Running", "the job was not stopped");
    farm_on(&root, &["stop", &id]);
}

#[test]
fn the_queue_is_found_through_its_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let queue = serve(&root, "0");
    let out = farm_on(&root, &["queue", "url"]);
    let (stdout, stderr) = texts(&out);
    assert!(
        stdout.starts_with(&format!("{}/#code=", queue.url)),
        "{stdout} {stderr}"
    );
    let other = dir.path().join("elsewhere");
    let out = farm_on(
        &other,
        &["queue", "url", "--data-root", root.to_str().unwrap()],
    );
    assert!(
        texts(&out).0.starts_with(&format!("{}/#code=", queue.url)),
        "{:?}",
        texts(&out)
    );
    // FARM_QUEUE_URL is the one name of the address, for every command.
    let out = farm_command(
        &other,
        &["queue", "url", "--data-root", root.to_str().unwrap()],
    )
    .env("FARM_QUEUE_URL", "http://127.0.0.1:1")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(6), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("127.0.0.1:1"), "{:?}", texts(&out));
}

#[test]
fn a_second_queue_on_a_data_root_names_the_first_and_a_taken_port_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let queue = serve(&root, "0");
    let out = farm_on(&root, &["queue", "serve", "--port", "0", "--agents", "0"]);
    let stderr = texts(&out).1;
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the queue of process {} already serves it and listens at {}",
            queue.pid(),
            queue.url
        )),
        "{stderr}"
    );
    let other = dir.path().join("other");
    let out = farm_on(
        &other,
        &[
            "queue",
            "serve",
            "--port",
            &queue.port.to_string(),
            "--agents",
            "0",
        ],
    );
    let stderr = texts(&out).1;
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "port {} on 127.0.0.1 is taken by another program",
            queue.port
        )),
        "{stderr}"
    );
}

#[test]
fn an_autostarted_queue_whose_port_is_taken_takes_a_free_one_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Another user's queue holds the port this data root used last.
    let mut taken = ServerProcess::start(&dir.path().join("someone-else"), &["--agents", "0"]);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("port"), format!("{}\n", taken.port)).unwrap();
    let file = request_file(dir.path(), "quick", "name: quick\ncommands: [[true]]\n");
    let out = farm_command(&root, &["submit", "--quiet", &file])
        .env("FARM_NUM_AGENTS", "0")
        .output()
        .unwrap();
    let info: Value = std::fs::read_to_string(root.join("server.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let pid = info["pid"].as_i64().unwrap_or(0) as i32;
    let stop = || {
        if pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    };
    let recorded: Option<u16> = std::fs::read_to_string(root.join("port"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let found = out.status.success().then(|| state(&root, "1"));
    stop();
    taken.terminate();
    assert!(out.status.success(), "{:?}", texts(&out));
    let recorded = recorded.unwrap();
    assert_ne!(
        recorded, taken.port,
        "a free port, recorded in the data root"
    );
    assert_eq!(info["url"], format!("http://127.0.0.1:{recorded}"));
    assert_eq!(
        found.as_deref(),
        Some("Waiting"),
        "found again through the data root"
    );
}
