//! The bearer token guards every `/admin` route and nothing else.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::Harness;
use crate::admin::AdminConfig;

const TOKEN: &str = "correct-horse";

fn guarded() -> AdminConfig {
    AdminConfig {
        token: Some(TOKEN.into()),
        ..AdminConfig::default()
    }
}

fn register(auth: Option<&str>) -> Request<Body> {
    let mut request =
        Request::post("/admin/nodes").header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    request
        .body(Body::from(
            r#"{"node_id": "node-1", "address": "127.0.0.1:7001"}"#,
        ))
        .unwrap()
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_401_and_change_nothing() {
    let h = Harness::start(guarded()).await;
    let before = h.version();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer correct-horse2"),
        Some("Basic correct-horse"),
        Some(TOKEN),
    ] {
        let (status, json) = h.send_request(register(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(json["error"], "UNAUTHORIZED");
    }
    // Reads and unknown admin routes are guarded too.
    for path in ["/admin/nodes", "/admin/cluster", "/admin/no-such-route"] {
        h.expect_error(
            Method::GET,
            path,
            None,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
    }
    assert_eq!(h.version(), before);
    assert!(h.coordinator.map().nodes.is_empty());
}

#[tokio::test]
async fn the_right_token_is_accepted() {
    let h = Harness::start(guarded()).await;
    let (status, json) = h
        .send_request(register(Some(&format!("Bearer {TOKEN}"))))
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["name"], "node-1");
    assert_eq!(h.coordinator.map().nodes.len(), 1);
}

#[tokio::test]
async fn probes_stay_open() {
    let h = Harness::start(guarded()).await;
    for path in ["/healthz", "/readyz"] {
        let (status, json) = h.send(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {json}");
    }
}

#[tokio::test]
async fn the_client_sends_its_token() {
    let h = Harness::start(guarded()).await;
    let (client, _stop) = h.serve().await;
    let err = client.nodes().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(err.code(), Some("UNAUTHORIZED"));
    let client = client.with_token(TOKEN);
    client
        .register_node("node-1", "127.0.0.1:7001", None)
        .await
        .unwrap();
    assert_eq!(client.nodes().await.unwrap().nodes.len(), 1);
}
