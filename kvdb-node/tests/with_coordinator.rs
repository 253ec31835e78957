//! The storage node against the real coordinator, in process: registration
//! through core's `CoordinatorClient`, shards placed by the coordinator,
//! leaders reported back to it, data written and read.

mod common;

use std::time::Duration;

use common::{DEADLINE, init_tracing, put_req, target};
use kvdb_coordinator::{Coordinator, CoordinatorConfig, serve};
use kvdb_core::coordinator_client::CoordinatorClient;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_node_client::KvNodeClient;
use kvdb_core::slot::slot;
use kvdb_core::{MapVersion, ShardMap};
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Polls the coordinator's map until `ready` holds for it.
async fn wait_for_map(
    client: &CoordinatorClient,
    what: &str,
    ready: impl Fn(&ShardMap) -> bool,
) -> ShardMap {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(map)) = client.get_shard_map(MapVersion(0)).await
            && ready(&map)
        {
            return map;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_follow_the_coordinator_map_and_serve_writes() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();

    tracing::info!("--- a single-member coordinator");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let coordinator_addr = listener.local_addr().unwrap();
    let config = CoordinatorConfig::new(1, coordinator_addr, dir.path().join("coordinator"));
    let coordinator = Coordinator::start(config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(coordinator.clone(), listener, async {
        let _ = stopped.await;
    }));
    let client = CoordinatorClient::new(&[coordinator_addr.to_string()]).unwrap();

    tracing::info!("--- three nodes register through the coordinator client");
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = NodeConfig::new(
            format!("node-{i}"),
            dir.path().join(format!("node-{i}")),
            vec![coordinator_addr.to_string()],
        );
        config.reconcile_interval = Duration::from_millis(100);
        nodes.push(Node::start(config, listener).await.unwrap());
    }

    tracing::info!("--- 8 shards, RF 3; every shard gets a leader the map knows");
    client.init_shards(8, 3).await.unwrap();
    let map = wait_for_map(&client, "every shard to have a leader", |m| {
        m.shards.len() == 8
            && m.shards
                .values()
                .all(|s| s.leader.is_some() && s.leader_term > 0)
    })
    .await;

    tracing::info!("--- writes on the leaders, strong reads back");
    for i in 0..16 {
        let key = format!("key-{i}");
        let shard = map
            .shards
            .values()
            .find(|s| s.contains(slot(key.as_bytes())))
            .unwrap();
        let leader = map.address(shard.leader.unwrap()).unwrap();
        let mut kv = KvNodeClient::connect(format!("http://{leader}"))
            .await
            .unwrap();
        let put = pb::NodePutRequest {
            target: Some(target(shard)),
            request: Some(put_req(key.clone(), key.clone())),
        };
        let put = kv.put(put).await.unwrap().into_inner();
        assert!(put.applied);
        let get = pb::NodeGetRequest {
            target: Some(target(shard)),
            request: Some(pb::GetRequest {
                key: key.clone().into_bytes().into(),
                consistency: pb::Consistency::Strong as i32,
                hash_fields: None,
                hash_page: None,
            }),
        };
        let got = kv.get(get).await.unwrap().into_inner();
        assert_eq!(
            (got.value.as_ref(), got.version),
            (key.as_bytes(), put.version)
        );
    }

    for node in nodes {
        node.shutdown().await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    coordinator.shutdown().await;
}
