//! `POST /admin/shards/{id}/split`: both halves on success, and every refusal a
//! JSON error that leaves the map as it was.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kvdb_core::{Epoch, NodeId, ShardId, Slot};
use serde_json::Value;

use super::Harness;
use crate::admin::AdminConfig;

// `Harness::initialized` has 8 shards of 2048 slots on nodes 1-3, ids 0-7, at epoch 1.

fn path(shard: u64) -> String {
    format!("/admin/shards/{shard}/split")
}

/// Splits `shard` with `body` (sent as JSON) and returns the answer.
async fn split(h: &Harness, shard: u64, body: &str) -> Value {
    let (status, json) = h.send(Method::POST, &path(shard), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "split {shard} {body:?}: {json}");
    json
}

/// Reports `shard`'s first leader, as the new group's leader does, which settles it.
async fn settle(h: &Harness, shard: u64) {
    let info = h.coordinator.map().shards[&ShardId(shard)].clone();
    let report = h
        .coordinator
        .report_shard_leader(info.id, info.epoch, info.replicas[0], 1)
        .await
        .unwrap();
    assert!(report.accepted);
}

#[tokio::test]
async fn a_split_answers_both_halves_in_one_version() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let before = h.version();

    // --- no body: the middle of shard 0 (slots 0..=2047)
    let json = split(&h, 0, "").await;
    assert_eq!(json["version"], before.0 + 1);
    assert_eq!(h.version().0, before.0 + 1, "one map version for both");
    let (parent, child) = (&json["parent"], &json["child"]);
    assert_eq!(
        (&parent["slot_start"], &parent["slot_end"]),
        (&0.into(), &1023.into())
    );
    assert_eq!(parent["state"], "stable");
    assert_eq!(parent["epoch"], 2);
    assert_eq!(child["id"], 8);
    assert_eq!(
        (&child["slot_start"], &child["slot_end"]),
        (&1024.into(), &2047.into())
    );
    assert_eq!(child["state"], "splitting");
    assert_eq!(child["split_from"], 0);
    assert_eq!(child["epoch"], 2);
    assert_eq!(child["leader"], Value::Null);
    assert_eq!(child["replicas"], parent["replicas"]);

    // --- an empty object, and an explicit point with the current epoch
    assert_eq!(split(&h, 1, "{}").await["child"]["slot_start"], 3072);
    let json = split(&h, 2, r#"{"at": 4500, "epoch": 1}"#).await;
    assert_eq!(json["parent"]["slot_end"], 4499);
    assert_eq!(json["child"]["id"], 10);
    h.coordinator.map().validate().unwrap();

    // --- the splitting shards are among the shards in progress until they settle
    let (status, ops) = h.send(Method::GET, "/admin/operations", None).await;
    assert_eq!(status, StatusCode::OK);
    let in_progress: Vec<&Value> = ops["moving"].as_array().unwrap().iter().collect();
    let ids: Vec<u64> = in_progress
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![8, 9, 10]);
    assert!(in_progress.iter().all(|s| s["state"] == "splitting"));
    settle(&h, 8).await;
    let (_, shard) = h.send(Method::GET, "/admin/shards/8", None).await;
    assert_eq!(shard["state"], "stable");
    assert_eq!(shard.get("split_from"), None);
}

#[tokio::test]
async fn the_client_splits_and_reads_the_new_shard_back() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let (client, _stop) = h.serve().await;
    let split = client
        .split_shard(ShardId(7), Some(Slot(16000)), Some(Epoch(1)))
        .await
        .unwrap();
    assert_eq!(split.parent.slot_end, 15999);
    assert_eq!(split.child.slot_start, 16000);
    assert_eq!(split.child.split_from, Some(ShardId(7)));
    assert_eq!(split.version, h.version());
    let child = client.shard(split.child.id).await.unwrap();
    assert_eq!(child.state, "splitting");
    let err = client
        .split_shard(ShardId(7), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
}

#[tokio::test]
async fn unknown_shards_are_404_and_bad_requests_400() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let bad = StatusCode::BAD_REQUEST;
    h.expect_error(
        Method::POST,
        &path(99),
        Some("{}"),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    h.expect_error(
        Method::POST,
        "/admin/shards/abc/split",
        Some("{}"),
        bad,
        "INVALID_ARGUMENT",
    )
    .await;
    for body in [r#"{"slot": 5}"#, r#"{"at": -1}"#, r#"{"at": "5"}"#, "[5]"] {
        h.expect_error(Method::POST, &path(0), Some(body), bad, "INVALID_ARGUMENT")
            .await;
    }
    h.expect_error(Method::POST, &path(0), Some("{"), bad, "MALFORMED_JSON")
        .await;
    // Without the JSON content type, even with no body (a cross-site POST can be that).
    let before = h.version();
    let request = Request::post(path(0)).body(Body::empty()).unwrap();
    let (status, json) = h.send_request(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{json}");
    assert_eq!(h.version(), before);
}

#[tokio::test]
async fn split_points_outside_the_shard_are_400() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let bad = StatusCode::BAD_REQUEST;
    let json = h
        .expect_error(
            Method::POST,
            &path(0),
            Some(r#"{"at": 9000}"#),
            bad,
            "INVALID_ARGUMENT",
        )
        .await;
    assert_eq!(
        json["message"],
        "invalid argument: slot 9000 is not inside shard 0 (slots 0..=2047); \
         a split point must be in 1..=2047"
    );
    for at in [0, 2048, 16384, 70000] {
        let body = format!(r#"{{"at": {at}}}"#);
        h.expect_error(Method::POST, &path(0), Some(&body), bad, "INVALID_ARGUMENT")
            .await;
    }
}

#[tokio::test]
async fn a_one_slot_shard_cannot_be_split() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let json = split(&h, 0, r#"{"at": 2047}"#).await;
    assert_eq!(json["child"]["slot_start"], json["child"]["slot_end"]);
    settle(&h, 8).await;
    let json = h
        .expect_error(
            Method::POST,
            &path(8),
            Some(""),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        )
        .await;
    assert!(
        json["message"].as_str().unwrap().contains("single slot"),
        "{json}"
    );
}

#[tokio::test]
async fn shards_busy_with_a_split_or_a_move_are_409() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let conflict = StatusCode::CONFLICT;
    split(&h, 0, "").await;

    // --- neither half of an unsettled split splits again or changes replicas
    let json = h
        .expect_error(Method::POST, &path(0), Some(""), conflict, "CONFLICT")
        .await;
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("retry once shard 8 is stable"),
        "{json}"
    );
    h.expect_error(Method::POST, &path(8), Some(""), conflict, "CONFLICT")
        .await;
    let replicas = r#"{"replicas": [1, 2, 3]}"#;
    for shard in [0, 8] {
        let path = format!("/admin/shards/{shard}/replicas");
        h.expect_error(Method::POST, &path, Some(replicas), conflict, "CONFLICT")
            .await;
    }
    let leader = r#"{"node_id": 2, "epoch": 2}"#;
    h.expect_error(
        Method::POST,
        "/admin/shards/8/leader",
        Some(leader),
        conflict,
        "CONFLICT",
    )
    .await;

    // --- a stale epoch, and a shard in the middle of a move
    h.expect_error(
        Method::POST,
        &path(1),
        Some(r#"{"epoch": 9}"#),
        conflict,
        "CONFLICT",
    )
    .await;
    h.register_nodes(4).await;
    h.coordinator
        .set_shard_replicas(ShardId(1), None, vec![NodeId(1), NodeId(2), NodeId(4)])
        .await
        .unwrap();
    h.expect_error(Method::POST, &path(1), Some(""), conflict, "CONFLICT")
        .await;

    // --- once the new shard's leader reports, both halves are free again
    settle(&h, 8).await;
    split(&h, 0, "").await;
    split(&h, 8, "").await;
}
