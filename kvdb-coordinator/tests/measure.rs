//! Measurements for the closing report, ignored by default:
//!
//! ```text
//! cargo test -p kvdb-coordinator --test measure -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

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
    let clients = connect(&cluster).await;
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
    let latencies = collect(&mut arrivals, sent).await;
    println!(
        "one delta to {WATCHERS} gRPC watchers ({CONNECTIONS} connections): committed in \
         {committed:?}, median {:?}, p99 {:?}, last {:?}",
        latencies[WATCHERS / 2],
        latencies[WATCHERS * 99 / 100],
        latencies[WATCHERS - 1]
    );

    // --- 1,000 more watchers, each starting with a snapshot of the map
    fan_out_snapshot(&clients).await;
    cluster.shutdown().await;
}

/// A reconnect storm: every watcher starts from version 0, so each is sent
/// the full map first. Runs after the delta measurement, not beside it, so
/// that the two do not share the two cores.
async fn fan_out_snapshot(clients: &[CoordinatorClient<Channel>]) {
    let started = Instant::now();
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..WATCHERS {
        let mut client = clients[i % CONNECTIONS].clone();
        let arrived = arrived.clone();
        tokio::spawn(async move {
            let request = pb::WatchShardMapRequest { from_version: 0 };
            let mut stream = client.watch_shard_map(request).await.unwrap().into_inner();
            if let Ok(Some(_)) = stream.message().await {
                let _ = arrived.send(Instant::now());
            }
        });
    }
    let latencies = collect(&mut arrivals, started).await;
    println!(
        "the 4096-shard map to {WATCHERS} new gRPC watchers ({CONNECTIONS} connections): \
         median {:?}, p99 {:?}, last {:?}",
        latencies[WATCHERS / 2],
        latencies[WATCHERS * 99 / 100],
        latencies[WATCHERS - 1]
    );
}

async fn connect(cluster: &TestCluster) -> Vec<CoordinatorClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(cluster.client(1).await);
    }
    clients
}

/// The sorted latencies of `WATCHERS` arrivals after `since`.
async fn collect(
    arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<Instant>,
    since: Instant,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        let at = arrivals.recv().await.unwrap();
        latencies.push(at.duration_since(since));
    }
    latencies.sort();
    latencies
}
