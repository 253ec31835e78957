//! Measurements for the closing report, ignored by default:
//!
//! ```text
//! cargo test -p kvdb-coordinator --test measure -- --ignored --nocapture
//! ```

mod common;

use std::time::Instant;

use common::{TestCluster, register_nodes};
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::coordinator_client::CoordinatorClient;
use kvdb_core::raft::codec;
use kvdb_core::{NodeId, NodeStatus};
use prost::Message;
use tonic::transport::Channel;

const WATCHERS: usize = 1000;
const CONNECTIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn measure_init_4096_shards_and_fan_out_to_1000_watchers() {
    let cluster = TestCluster::start(1).await;
    cluster.leader().await;
    let coordinator = cluster.member(1);
    register_nodes(coordinator, 16).await;

    // --- InitShards with 4096 shards, RF 3
    let started = Instant::now();
    coordinator.init_shards(4096, 3).await.unwrap();
    let init_time = started.elapsed();
    let map = coordinator.map();
    map.validate().unwrap();
    let proto_bytes = pb::ShardMap::from(&*map).encoded_len();
    let stored_bytes = codec::encode(&*map).unwrap().len();
    println!(
        "init_shards(4096, 3) with 16 nodes: {init_time:?}; map {proto_bytes} bytes as protobuf, \
         {stored_bytes} bytes as stored (postcard)"
    );

    // --- baseline: one small change with no watcher
    let started = Instant::now();
    coordinator
        .set_node_status(NodeId(15), NodeStatus::Draining)
        .await
        .unwrap();
    println!(
        "one set_node_status with no watcher: {:?}",
        started.elapsed()
    );
    let map = coordinator.map();

    // --- 1,000 gRPC watchers over 20 connections, all subscribed
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel = Channel::from_shared(format!("http://{}", cluster.addrs[&1]))
            .unwrap()
            .connect()
            .await
            .unwrap();
        clients.push(CoordinatorClient::new(channel));
    }
    let from = map.version.0;
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..WATCHERS {
        let mut client = clients[i % CONNECTIONS].clone();
        let request = pb::WatchShardMapRequest { from_version: from };
        let mut stream = client.watch_shard_map(request).await.unwrap().into_inner();
        let arrived = arrived.clone();
        tokio::spawn(async move {
            if let Ok(Some(_)) = stream.message().await {
                let _ = arrived.send(Instant::now());
            }
        });
    }

    // --- one delta, timed until the last watcher has it
    let sent = Instant::now();
    coordinator
        .set_node_status(NodeId(16), NodeStatus::Draining)
        .await
        .unwrap();
    let committed = sent.elapsed();
    let mut latencies = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        let at = arrivals.recv().await.unwrap();
        latencies.push(at.duration_since(sent));
    }
    latencies.sort();
    println!(
        "one delta to {WATCHERS} gRPC watchers ({CONNECTIONS} connections): committed in \
         {committed:?}, median {:?}, p99 {:?}, last {:?}",
        latencies[WATCHERS / 2],
        latencies[WATCHERS * 99 / 100],
        latencies[WATCHERS - 1]
    );
    cluster.shutdown().await;
}
