//! The farm protocol as the OpenAPI document states it, against a real server: statuses,
//! problem documents, headers, idempotency, pagination and delta polling.

#![cfg(feature = "local")]

mod common;

use std::time::Duration;

use common::{ServerProcess, eventually};
use secrecy::ExposeSecret;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_problems_and_headers_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let api = server.client();
    let caps: serde_json::Value = api.get("/v1/capabilities").await.json().await.unwrap();
    assert_eq!(caps["dependencies"], true);
    assert_eq!(caps["stage_files"], false);

    let body = json!({"name": "spec", "render_context": "6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91", "commands": [["true"]]});
    let keyed = |b: serde_json::Value| {
        api.http
            .post(format!("{}/v1/jobs", api.url))
            .bearer_auth(api.token.expose_secret())
            .header("Idempotency-Key", "6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91")
            .json(&b)
            .send()
    };
    let created = keyed(body.clone()).await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/v1/jobs/1");
    let again = keyed(body.clone()).await.unwrap();
    assert_eq!(again.status(), 200, "the same key gives the same job");
    let mut other = body.clone();
    other["name"] = json!("different");
    let conflict = keyed(other).await.unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );

    let invalid = api
        .post_json("/v1/jobs", json!({"name": "x", "commands": [[]]}))
        .await;
    assert_eq!(invalid.status(), 422);
    let problem: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(
        (problem["status"].as_u64(), problem["field"].as_str()),
        (Some(422), Some("commands[0]"))
    );
    let not_json = api
        .http
        .post(format!("{}/v1/jobs", api.url))
        .bearer_auth(api.token.expose_secret())
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let unknown_dep = api
        .post_json(
            "/v1/jobs:check",
            json!({"name": "x", "commands": [["true"]], "depends_on": ["77"]}),
        )
        .await;
    assert_eq!(unknown_dep.status(), 422);
    assert_eq!(
        api.post_json(
            "/v1/jobs:check",
            json!({"name": "x", "commands": [["true"]]})
        )
        .await
        .status(),
        200
    );

    for missing in [
        "/v1/jobs/987654321",
        "/v1/jobs/farm-conformance-no-such-job",
        "/v1/jobs/0/log",
        "/v1/nothing",
    ] {
        let r = api.get(missing).await;
        assert_eq!(r.status(), 404, "{missing}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let stop_unknown = api.post_json("/v1/jobs/42:stop", json!({})).await;
    assert_eq!(stop_unknown.status(), 404);
    let wrong_method = api
        .http
        .delete(format!("{}/v1/jobs", api.url))
        .bearer_auth(api.token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(api.get("/v1/jobs?limit=0").await.status(), 400);
    assert_eq!(api.get("/v1/jobs?state=Done").await.status(), 400);

    let log = api.get("/v1/jobs/1/log").await;
    assert_eq!(log.status(), 200);
    assert_eq!(log.headers()["x-next-offset"], "0");
    assert_eq!(
        log.headers()["x-log-complete"],
        "false",
        "a waiting job's log is not complete"
    );
    let stopped: serde_json::Value = api
        .post_json("/v1/jobs/1:stop", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stopped["state"], "Cancelled");
    let restarted: serde_json::Value = api
        .post_json("/v1/jobs/1:start", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (restarted["state"].as_str(), restarted["attempt"].as_u64()),
        (Some("Waiting"), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_job_once_and_delta_polling_sees_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("queue"), &["--agents", "0"]);
    let api = server.client();
    for i in 0..25 {
        api.submit(json!({"name": format!("page-{i}"), "commands": [["true"]], "tags": ["paged"]}))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut max_updated = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?tag=paged&limit=10&cursor={c}"),
            None => "/v1/jobs?tag=paged&limit=10".into(),
        };
        let page: serde_json::Value = api.get(&path).await.json().await.unwrap();
        for job in page["jobs"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_owned());
            max_updated = max_updated.max(job["updated_at"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (25, 25));
    // Stop one job; polling from the largest updated_at returns it with its new state.
    api.post_json("/v1/jobs/7:stop", json!({})).await;
    let delta = eventually(
        "the change to show in a delta poll",
        Duration::from_secs(5),
        || async {
            let page: serde_json::Value = api
                .get(&format!("/v1/jobs?updated_since={max_updated}"))
                .await
                .json()
                .await
                .unwrap();
            let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
            jobs.iter()
                .any(|j| j["id"] == "7" && j["state"] == "Cancelled")
                .then_some(jobs)
        },
    )
    .await;
    assert!(
        delta
            .iter()
            .all(|j| j["updated_at"].as_i64().unwrap() >= max_updated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_listed_failed_frames_are_named_and_retried_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("queue");
    let server = ServerProcess::start(&root, &["--agents", "1", "--agent-slots", "2"]);
    let api = server.client();
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let script = "echo x >> \"$2/$1\"; case $1 in 4|7) [ -e \"$2/fixed\" ] || exit 3;; esac";
    let job: serde_json::Value = api
        .post_json(
            "/v1/jobs",
            json!({"name": "ten", "frames": "1-10", "commands": [["/bin/sh", "-c", script, "sh", "{frame}", marks.display().to_string()]]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let failed = eventually("the job fails", Duration::from_secs(30), || async {
        let j: serde_json::Value = api
            .get(&format!("/v1/jobs/{id}"))
            .await
            .json()
            .await
            .unwrap();
        (j["state"] == "Failed").then_some(j)
    })
    .await;
    assert_eq!(failed["reason"], "frames 4, 7 failed: exit code 3");
    let page: serde_json::Value = api
        .get(&format!("/v1/jobs/{id}/tasks?state=failed&limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["tasks"][0]["frames"], "4");
    assert_eq!(page["tasks"][0]["exit_code"], 3);
    assert_eq!(page["tasks"][0]["attempt"], 1);
    assert!(page["tasks"][0]["agent"].is_string(), "{page}");
    assert!(page["tasks"][0]["log_offset"].is_u64(), "{page}");
    assert_eq!(page["next_cursor"], "3");
    let rest: serde_json::Value = api
        .get(&format!("/v1/jobs/{id}/tasks?state=failed&cursor=3"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["tasks"][0]["frames"], "7");
    assert!(rest["next_cursor"].is_null());

    std::fs::write(marks.join("fixed"), "").unwrap();
    let retried = api
        .post_json(&format!("/v1/jobs/{id}:retry-failed"), json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    let done = eventually(
        "the retried job completes",
        Duration::from_secs(30),
        || async {
            let j: serde_json::Value = api
                .get(&format!("/v1/jobs/{id}"))
                .await
                .json()
                .await
                .unwrap();
            (j["state"] == "Completed").then_some(j)
        },
    )
    .await;
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["attempt"], 1);
    for frame in 1..=10 {
        let runs = std::fs::read_to_string(marks.join(frame.to_string()))
            .unwrap()
            .lines()
            .count();
        assert_eq!(
            runs,
            if frame == 4 || frame == 7 { 2 } else { 1 },
            "frame {frame}"
        );
    }
    let all: serde_json::Value = api
        .get(&format!("/v1/jobs/{id}/tasks"))
        .await
        .json()
        .await
        .unwrap();
    let attempts: Vec<u64> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 1, 1, 2, 1, 1, 2, 1, 1, 1]);

    let too_big = api
        .post_json(
            "/v1/jobs:check",
            json!({"name": "x", "commands": [["true"]], "resources": {"cpus": 1000}}),
        )
        .await;
    assert_eq!(too_big.status(), 422);
    let problem: serde_json::Value = too_big.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no agent has 1000 cpus (largest: "),
        "{problem}"
    );
    assert_eq!(problem["field"], "resources.cpus");
    let fits: serde_json::Value = api
        .post_json(
            "/v1/jobs:check",
            json!({"name": "x", "commands": [["true"]]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        fits["message"].as_str().unwrap().contains("could run it"),
        "{fits}"
    );
    let waiting: serde_json::Value = api
        .post_json(
            "/v1/jobs",
            json!({"name": "pool", "commands": [["true"]], "native": {"local": {"pool": "lighting"}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["state"], "Waiting");
    assert_eq!(waiting["reason"], "no agent has the tag lighting");
}
