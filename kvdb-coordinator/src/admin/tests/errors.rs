//! Every refusal is a JSON error with the right status, and changes nothing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use super::Harness;
use crate::admin::AdminConfig;

const INIT: &str = "/admin/config/shard-init";

#[tokio::test]
async fn malformed_bodies_are_400() {
    let h = Harness::start(AdminConfig::default()).await;
    h.register_nodes(3).await;
    let bad = StatusCode::BAD_REQUEST;
    // --- not JSON at all
    for body in ["", "{", "not json", r#"{"num_shards": 8,}"#] {
        h.expect_error(Method::POST, INIT, Some(body), bad, "MALFORMED_JSON")
            .await;
    }
    // --- JSON of the wrong shape
    for body in [
        r#"{"num_shards": 8}"#,
        r#"{"num_shards": 8, "replication_factor": 3, "shards": 8}"#,
        r#"{"num_shards": "8", "replication_factor": 3}"#,
        r#"{"num_shards": -1, "replication_factor": 3}"#,
        r#"[8, 3]"#,
    ] {
        h.expect_error(Method::POST, INIT, Some(body), bad, "INVALID_ARGUMENT")
            .await;
    }
    let register = "/admin/nodes";
    for body in [
        r#"{"address": "127.0.0.1:7009"}"#,
        r#"{"node_id": "node-9", "address": "127.0.0.1:7009", "rack": "r1"}"#,
        r#"{"node_id": 9, "address": "127.0.0.1:7009"}"#,
    ] {
        h.expect_error(Method::POST, register, Some(body), bad, "INVALID_ARGUMENT")
            .await;
    }
    let status = r#"{"status": "sleeping"}"#;
    h.expect_error(
        Method::POST,
        "/admin/nodes/node-1/status",
        Some(status),
        bad,
        "INVALID_ARGUMENT",
    )
    .await;
}

#[tokio::test]
async fn out_of_range_shard_counts_are_400() {
    let h = Harness::start(AdminConfig::default()).await;
    h.register_nodes(3).await;
    for num_shards in [0, 20000] {
        let body = format!(r#"{{"num_shards": {num_shards}, "replication_factor": 3}}"#);
        let json = h
            .expect_error(
                Method::POST,
                INIT,
                Some(&body),
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
            )
            .await;
        assert!(json["message"].as_str().unwrap().contains("num_shards"));
    }
}

#[tokio::test]
async fn replication_beyond_alive_nodes_is_refused() {
    let h = Harness::start(AdminConfig::default()).await;
    h.register_nodes(2).await;
    let body = r#"{"num_shards": 8, "replication_factor": 3}"#;
    h.expect_error(
        Method::POST,
        INIT,
        Some(body),
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    assert!(!h.coordinator.map().is_initialized());
}

#[tokio::test]
async fn unknown_nodes_and_shards_are_404() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let nf = StatusCode::NOT_FOUND;
    h.expect_error(Method::GET, "/admin/nodes/node-9", None, nf, "NOT_FOUND")
        .await;
    h.expect_error(Method::GET, "/admin/nodes/99", None, nf, "NOT_FOUND")
        .await;
    h.expect_error(Method::GET, "/admin/shards/99", None, nf, "NOT_FOUND")
        .await;
    let alive = r#"{"status": "dead"}"#;
    h.expect_error(
        Method::POST,
        "/admin/nodes/node-9/status",
        Some(alive),
        nf,
        "NOT_FOUND",
    )
    .await;
    let replicas = r#"{"replicas": ["node-1", "node-9"]}"#;
    h.expect_error(
        Method::POST,
        "/admin/shards/0/replicas",
        Some(replicas),
        nf,
        "NOT_FOUND",
    )
    .await;
    let replicas = r#"{"replicas": ["node-1", "node-2"]}"#;
    h.expect_error(
        Method::POST,
        "/admin/shards/99/replicas",
        Some(replicas),
        nf,
        "NOT_FOUND",
    )
    .await;
    let leader = r#"{"node_id": "node-1", "epoch": 1}"#;
    h.expect_error(
        Method::POST,
        "/admin/shards/99/leader",
        Some(leader),
        nf,
        "NOT_FOUND",
    )
    .await;
    // A malformed shard id is a bad request, not a missing shard.
    h.expect_error(
        Method::GET,
        "/admin/shards/abc",
        None,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
    )
    .await;
}

#[tokio::test]
async fn a_different_init_conflicts_and_the_same_init_is_a_no_op() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let body = r#"{"num_shards": 16, "replication_factor": 3}"#;
    let json = h
        .expect_error(
            Method::POST,
            INIT,
            Some(body),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("already initialized")
    );
    let before = h.version();
    let same = r#"{"num_shards": 8, "replication_factor": 3}"#;
    let (status, json) = h.send(Method::POST, INIT, Some(same)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["map_version"], before.0);
    assert_eq!(h.version(), before);
}

#[tokio::test]
async fn stale_epochs_are_409() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let epoch = h.coordinator.map().shards.values().next().unwrap().epoch;
    let shard = *h.coordinator.map().shards.keys().next().unwrap();
    let stale = epoch.0 + 5;
    let replicas = format!(r#"{{"replicas": [1, 2, 3], "epoch": {stale}}}"#);
    let path = format!("/admin/shards/{shard}/replicas");
    h.expect_error(
        Method::POST,
        &path,
        Some(&replicas),
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    let leader = format!(r#"{{"node_id": "node-2", "epoch": {stale}}}"#);
    let path = format!("/admin/shards/{shard}/leader");
    h.expect_error(
        Method::POST,
        &path,
        Some(&leader),
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let config = AdminConfig {
        max_body_bytes: 1024,
        ..AdminConfig::default()
    };
    let h = Harness::start(config).await;
    let padding = " ".repeat(2048);
    let body = format!(r#"{{"node_id": "node-1", "address": "127.0.0.1:7001"{padding}}}"#);
    let json = h
        .expect_error(
            Method::POST,
            "/admin/nodes",
            Some(&body),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        )
        .await;
    assert!(json["message"].as_str().unwrap().contains("1024"));
    assert!(h.coordinator.map().nodes.is_empty());
}

#[tokio::test]
async fn the_default_limit_admits_normal_bodies_and_refuses_huge_ones() {
    let h = Harness::start(AdminConfig::default()).await;
    let huge = format!(
        r#"{{"node_id": "{}", "address": "127.0.0.1:7001"}}"#,
        "n".repeat(AdminConfig::DEFAULT_MAX_BODY_BYTES)
    );
    h.expect_error(
        Method::POST,
        "/admin/nodes",
        Some(&huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    h.register_nodes(1).await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_media_types_answer_json() {
    let h = Harness::start(AdminConfig::default()).await;
    h.expect_error(
        Method::GET,
        "/admin/nope",
        None,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    h.expect_error(
        Method::GET,
        "/nope",
        None,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    h.expect_error(
        Method::DELETE,
        "/admin/nodes",
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    h.expect_error(
        Method::GET,
        INIT,
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    // --- a form post (what a browser may send cross-site) is refused
    let before = h.version();
    let request = Request::post("/admin/nodes")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            r#"{"node_id": "node-1", "address": "127.0.0.1:7001"}"#,
        ))
        .unwrap();
    let (status, json) = h.send_request(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json["error"], "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(h.version(), before);
}

#[tokio::test]
async fn a_stopped_coordinator_answers_503() {
    let h = Harness::start(AdminConfig::default()).await;
    h.coordinator.clone().shutdown().await;
    let body = r#"{"node_id": "node-1", "address": "127.0.0.1:7001"}"#;
    let json = h
        .expect_error(
            Method::POST,
            "/admin/nodes",
            Some(body),
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
        )
        .await;
    assert!(json["message"].as_str().unwrap().contains("stopped"));
}
