//! The `local` adapter's embedded queue: on a machine where no queue ever ran, submitting
//! the demo request starts one in the background, the job renders its frames, the queue
//! exits when idle, and the next call starts it again with nothing lost.

#![cfg(feature = "local")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{BIN, eventually};
use farm_core::{
    CommonSettings, ErrorKind, FarmPlugin, FarmPluginExt, JobId, JobRequest, JobState, WaitOptions,
};
use farm_local::client::{Probe, probe};
use farm_local::{LocalQueue, LocalSettings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn demo_request() -> JobRequest {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/requests/render-demo.yaml");
    JobRequest::from_path(&path).unwrap()
}

fn stop_server(root: &Path) {
    if let Ok(text) = std::fs::read_to_string(root.join("server.json")) {
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        let _ = kill(
            Pid::from_raw(info["pid"].as_i64().unwrap() as i32),
            Signal::SIGTERM,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_job_runs_on_a_queue_started_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fresh-data-root");
    let out = dir.path().join("frames");
    let url = format!("http://127.0.0.1:{}", free_port());
    let settings = LocalSettings {
        url: Some(url.clone()),
        data_root: Some(root.clone()),
        idle_shutdown: Duration::from_secs(2),
        server_command: Some(vec![
            "/usr/bin/env".into(),
            format!("FARM_DEMO_OUT={}", out.display()),
            BIN.into(),
            "queue".into(),
            "serve".into(),
        ]),
        ..LocalSettings::default()
    };
    let farm = LocalQueue::new(settings.clone(), CommonSettings::default()).unwrap();
    assert_eq!(farm.adapter(), "local");
    assert!(
        matches!(probe(&url).await, Probe::Down(_)),
        "nothing runs before the first call"
    );
    let request = demo_request();
    let id = farm.submit(&request).await.unwrap();
    let mut progress = Vec::new();
    let options = WaitOptions {
        timeout: Duration::from_secs(120),
        interval: Duration::from_millis(50),
        ..WaitOptions::default()
    };
    let job = farm
        .wait_until_finished(&id, &options, &mut |j| progress.extend(j.progress))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let last = progress.last().unwrap();
    assert_eq!((last.frames_done, last.frames_total), (8, 8));
    for frame in 1..=8 {
        let image = std::fs::read_to_string(out.join(format!("frame.{frame:04}.ppm"))).unwrap();
        assert!(image.starts_with("P3\n64 36\n255\n"), "frame {frame}");
    }
    let log_path = farm.render_log_filename(&id).await.unwrap().unwrap();
    assert!(log_path.starts_with(&root.display().to_string()));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("rendering frame 8 of chunk 3"), "{log}");
    assert_eq!(
        farm.submit(&request).await.unwrap(),
        id,
        "the same render context is the same job"
    );

    // Idle for 2 s: the queue exits by itself...
    eventually(
        "the idle queue to exit",
        Duration::from_secs(30),
        || async { matches!(probe(&url).await, Probe::Down(_)).then_some(()) },
    )
    .await;
    // ...and the next call starts it again: from the same client (a long-lived Katana)...
    let again = farm.job(&id).await.unwrap();
    assert_eq!(again.state, JobState::Completed);
    eventually(
        "the idle queue to exit again",
        Duration::from_secs(30),
        || async { matches!(probe(&url).await, Probe::Down(_)).then_some(()) },
    )
    .await;
    // ...or from a new one, like a later `farm status`.
    let later = LocalQueue::new(settings, CommonSettings::default()).unwrap();
    let again = later.job(&id).await.unwrap();
    assert_eq!(
        (again.state, again.progress.map(|p| p.frames_done)),
        (JobState::Completed, Some(8))
    );
    stop_server(&root);
    eventually("the queue to stop", Duration::from_secs(30), || async {
        matches!(probe(&url).await, Probe::Down(_)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rendering_needs_no_queue_and_calls_without_one_say_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LocalSettings {
        url: Some(format!("http://127.0.0.1:{}", free_port())),
        data_root: Some(dir.path().join("root")),
        autostart: false,
        ..LocalSettings::default()
    };
    let farm = LocalQueue::new(settings, CommonSettings::default()).unwrap();
    let rendered = farm.render(&demo_request()).await.unwrap();
    assert!(rendered.main().contents.contains("render-demo"));
    assert!(
        !dir.path().join("root").exists(),
        "rendering touches nothing"
    );
    let err = farm.job(&JobId::new("1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("farm queue serve"), "{err}");
}
