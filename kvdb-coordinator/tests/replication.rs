//! Three coordinator members: forwarding, leader failover without losing
//! committed changes, watchers across a failover, and catch-up of a
//! restarted member.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{TestCluster, eventually, register_nodes, wait_until};
use kvdb_coordinator::CoordinatorError;
use kvdb_core::proto::v1 as pb;
use kvdb_core::{MapVersion, NodeId, ShardMap, ShardMapDelta};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_on_a_follower_is_forwarded() {
    let cluster = TestCluster::start_with(3, |config| {
        let port = 9000 + config.id as u16;
        config.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    })
    .await;
    let leader = cluster.leader().await;
    let follower = cluster.member(cluster.other_than(leader));

    // --- register through the follower's handle and over its gRPC port
    let node = follower
        .register_node("node-1".into(), "127.0.0.1:7001".into(), "z1".into())
        .await
        .unwrap();
    assert_eq!(node.id, NodeId(1));
    let mut client = cluster.client(cluster.other_than(leader)).await;
    let request = pb::RegisterNodeRequest {
        name: "node-2".into(),
        address: "127.0.0.1:7002".into(),
        zone: "z1".into(),
        resp_address: "127.0.0.1:6380".into(),
    };
    let reply = client.register_node(request).await.unwrap().into_inner();
    assert_eq!(reply.node.unwrap().id, 2);

    // --- every member applies it; followers know the leader's admin address
    for member in cluster.members.values() {
        let coordinator = &member.coordinator;
        wait_until("replication", || coordinator.map().nodes.len() == 2).await;
    }
    let admin = format!("127.0.0.1:{}", 9000 + leader);
    wait_until("the leader's admin address", || {
        follower.leader().admin_address.as_deref() == Some(admin.as_str())
    })
    .await;

    // --- heartbeats are relayed to the leader too
    let heartbeat = follower.heartbeat(NodeId(1), &[]).await.unwrap();
    assert!(heartbeat >= MapVersion(2));
    cluster.shutdown().await;
}

/// A command a follower forwards that the leader refuses comes back as the leader's exact
/// error, through the forwarded write and over the follower's gRPC port alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_a_forwarded_command_comes_back_typed() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.member(cluster.other_than(leader));
    register_nodes(follower, 3).await;
    follower.init_shards(4, 3).await.unwrap();

    let again = follower.init_shards(5, 3).await.unwrap_err();
    let wanted = CoordinatorError::AlreadyInitialized {
        num_shards: 4,
        replication_factor: 3,
    };
    assert_eq!(again, wanted);
    let mut client = cluster.client(cluster.other_than(leader)).await;
    let request = pb::InitShardsRequest {
        num_shards: 5,
        replication_factor: 3,
    };
    let status = client.init_shards(request).await.unwrap_err();
    assert_eq!(CoordinatorError::from(status), wanted);
    cluster.shutdown().await;
}

/// Collects every event of a gRPC watch into `seen`, checking contiguity.
fn collect(mut stream: tonic::Streaming<pb::WatchShardMapEvent>) -> Arc<Mutex<ShardMap>> {
    let seen = Arc::new(Mutex::new(ShardMap::default()));
    let map = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(event)) = stream.message().await {
            let mut map = map.lock().unwrap();
            match event.event.unwrap() {
                pb::watch_shard_map_event::Event::Snapshot(s) => {
                    *map = ShardMap::try_from(&s).unwrap();
                }
                pb::watch_shard_map_event::Event::Delta(d) => {
                    let delta = ShardMapDelta::try_from(&d).unwrap();
                    map.apply(&delta).expect("deltas are contiguous");
                }
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_nothing_and_watchers_see_every_version() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.leader().await;
    let survivor = cluster.other_than(old_leader);
    // The scheduler would move replicas to the node registered after the failover, and the
    // map would move past the version this test waits for.
    cluster
        .member(old_leader)
        .set_scheduler_paused(true)
        .await
        .unwrap();

    // --- a watcher on a survivor from version 0
    let mut client = cluster.client(survivor).await;
    let request = pb::WatchShardMapRequest { from_version: 0 };
    let stream = client.watch_shard_map(request).await.unwrap().into_inner();
    let watched = collect(stream);

    // --- committed changes before the failover
    register_nodes(cluster.member(old_leader), 3).await;
    let committed = cluster.member(old_leader).init_shards(6, 3).await.unwrap();
    let before = cluster.member(old_leader).map();
    assert_eq!(before.version, committed);

    // --- kill the leader
    tracing::info!("--- kill the leader");
    cluster.stop(old_leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    let map = cluster.member(new_leader).map();
    assert!(map.version >= committed);
    assert_eq!(map.shards, before.shards, "no committed change lost");

    // --- changes after the failover, through either survivor
    let other = cluster.other_than(new_leader);
    let added = eventually("a write after failover", || async {
        cluster
            .member(other)
            .register_node("node-4".into(), "127.0.0.1:7004".into(), "z1".into())
            .await
            .ok()
    })
    .await;
    let final_map = cluster.member(new_leader).map();
    assert!(final_map.nodes.contains_key(&added.id));
    wait_until("the watcher to catch up", || {
        watched.lock().unwrap().version == final_map.version
    })
    .await;
    assert_eq!(*watched.lock().unwrap(), *final_map);

    // --- restart the old leader: it catches up
    tracing::info!("--- restart the old leader");
    cluster.restart(old_leader).await;
    let restarted = cluster.member(old_leader).clone();
    wait_until("the old leader to catch up", || {
        restarted.map().version == final_map.version
    })
    .await;
    assert_eq!(restarted.map(), final_map);
    cluster.leader().await;
    assert!(restarted.is_ready());
    cluster.shutdown().await;
}
