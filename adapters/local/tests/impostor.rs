//! The token goes only to a server that proves it holds it: impostors on the queue's port
//! (while a queue is stopped, any local user may listen there) get no token from the
//! adapter nor from `farm queue url`.

use farm_core::{Command, CommonSettings, ErrorKind, FarmPlugin, JobFilter, JobRequest};
use farm_local::client::web_login_url;
use farm_local::{LocalQueue, LocalSettings};
use farm_queue::DataRoot;
use farm_queue::data_root::TokenKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A server that says it is a healthy queue; records what it is sent.
async fn impostor(proof: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let mut health = json!({"status": "ok", "version": "0.1.0"});
    if let Some(proof) = proof {
        health["proof"] = json!(proof);
    }
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(health))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"jobs": [], "next_cursor": null, "code": "00112233445566778899aabbccddeeff"}),
        ))
        .mount(&server)
        .await;
    server
}

async fn assert_token_never_sent(server: &MockServer, token: &str) {
    let requests = server.received_requests().await.unwrap();
    assert!(!requests.is_empty(), "the adapter asked something");
    for r in &requests {
        assert_eq!(r.url.path(), "/v1/health", "only health was asked");
        assert!(
            !r.headers.contains_key("authorization"),
            "a token was sent to {}",
            r.url
        );
        let seen = format!(
            "{} {:?} {}",
            r.url,
            r.headers,
            String::from_utf8_lossy(&r.body)
        );
        assert!(!seen.contains(token), "the token was sent: {seen}");
    }
}

#[tokio::test]
async fn the_token_goes_only_to_a_server_that_proves_it_holds_it() {
    let token = "the-real-queue-token-0b7e";
    for proof in [None, Some("0".repeat(64)), Some("not hex".to_owned())] {
        let server = impostor(proof.as_deref()).await;
        let dir = tempfile::tempdir().unwrap();
        // Autostart on: the impostor answers, so nothing is started either.
        let settings = LocalSettings {
            url: Some(server.uri()),
            data_root: Some(dir.path().join("queue")),
            token: Some(SecretString::from(token.to_owned())),
            ..LocalSettings::default()
        };
        let farm = LocalQueue::new(settings, CommonSettings::default()).unwrap();
        let err = farm.list_jobs(&JobFilter::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("cannot prove that it holds this queue's token")
                && message.contains("not sent"),
            "{message}"
        );
        assert!(!message.contains(token));
        let again = farm
            .submit(&JobRequest::new(
                "x",
                vec![Command::Argv(vec!["true".into()])],
            ))
            .await;
        assert_eq!(again.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_token_never_sent(&server, token).await;
        assert!(
            !dir.path().join("queue").exists(),
            "no queue was started beside the impostor"
        );
    }
}

#[tokio::test]
async fn farm_queue_url_asks_only_a_server_that_proves_it_holds_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::resolve(Some(&dir.path().join("queue")));
    let token = root.load_or_create_token(TokenKind::Api).unwrap();
    let server = impostor(None).await;
    let err = web_login_url(&server.uri(), &root).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_token_never_sent(&server, token.expose_secret()).await;
}
