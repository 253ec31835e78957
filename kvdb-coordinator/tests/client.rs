//! Core's `CoordinatorClient` against a real coordinator group: leader
//! following, failover, and the `ShardMapSource` side.

mod common;

use common::TestCluster;
use futures::StreamExt;
use kvdb_core::cache::{ShardMapSource, WatchEvent};
use kvdb_core::coordinator_client::{CoordinatorClient, CoordinatorClientError};
use kvdb_core::{Epoch, MapVersion, NodeId, ShardId, ShardMap};

fn client_of(cluster: &TestCluster) -> CoordinatorClient {
    let addresses: Vec<String> = cluster.addrs.values().map(|a| a.to_string()).collect();
    CoordinatorClient::new(&addresses).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_the_leader_across_a_failover() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let client = client_of(&cluster);

    // --- the node-side calls
    for i in 1..=3 {
        let node = client
            .register_node(
                &format!("node-{i}"),
                &format!("127.0.0.1:{}", 7000 + i),
                "z1",
                "",
            )
            .await
            .unwrap();
        assert_eq!(node.id, NodeId(i));
    }
    let version = client.init_shards(4, 3).await.unwrap();
    assert!(client.heartbeat(NodeId(1), &[]).await.unwrap() >= version);
    let shard = ShardId(0);
    let accepted = client
        .report_shard_leader(shard, Epoch(1), NodeId(2), 3)
        .await
        .unwrap();
    assert!(accepted);
    let stale = client
        .report_shard_leader(shard, Epoch(1), NodeId(3), 2)
        .await
        .unwrap();
    assert!(!stale);

    // --- refusals are final and typed
    let err = client.init_shards(5, 3).await.unwrap_err();
    let CoordinatorClientError::Rejected { error, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(error.code(), "CONFLICT");
    assert!(!err.is_retryable());

    // --- kill the leader: mutations still go through
    tracing::info!("--- kill the leader");
    cluster.stop(leader).await;
    let node = client
        .register_node("node-4", "127.0.0.1:7004", "z1", "127.0.0.1:6384")
        .await
        .unwrap();
    assert_eq!(node.id, NodeId(4));
    let (nodes, _) = client.list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 4);
    let resp: Vec<&str> = nodes.iter().map(|n| n.resp_address.as_str()).collect();
    assert_eq!(resp, ["", "", "", "127.0.0.1:6384"]);
    let resolved = client.resolve_shard(b"some-key").await.unwrap();
    assert_eq!(resolved.replicas.len(), 3);
    let reported = client.leader().await.unwrap();
    assert!(reported.id.is_some_and(|id| id != leader));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_a_shard_map_source() {
    let cluster = TestCluster::start(1).await;
    cluster.leader().await;
    let client = client_of(&cluster);
    client
        .register_node("node-1", "127.0.0.1:7001", "", "")
        .await
        .unwrap();

    // --- fetch only when newer
    let map = client.fetch(MapVersion(0)).await.unwrap().unwrap();
    assert_eq!(map.version, MapVersion(1));
    assert!(client.fetch(MapVersion(1)).await.unwrap().is_none());

    // --- watch: a snapshot from 0, then deltas
    let mut events = client.watch(MapVersion(0)).await.unwrap();
    let Some(Ok(WatchEvent::Snapshot(first))) = events.next().await else {
        panic!("expected a snapshot")
    };
    assert_eq!(first, map);
    client.init_shards(2, 1).await.unwrap();
    let Some(Ok(WatchEvent::Delta(delta))) = events.next().await else {
        panic!("expected a delta")
    };
    let mut followed: ShardMap = first;
    followed.apply(&delta).unwrap();
    assert_eq!(followed, *cluster.member(1).map());
    cluster.shutdown().await;
}
