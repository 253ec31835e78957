//! Shard-map watches: history, snapshots, and slow watchers.

mod common;

use common::{TestCluster, register_nodes, wait_until};
use kvdb_coordinator::MapEvent;
use kvdb_core::proto::v1 as pb;
use kvdb_core::{MapVersion, ShardMap, ShardMapDelta};

fn small_buffers(config: &mut kvdb_coordinator::CoordinatorConfig) {
    config.delta_history = 4;
    config.watch_buffer = 8;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_older_than_the_history_starts_with_a_snapshot() {
    let cluster = TestCluster::start_with(1, small_buffers).await;
    cluster.leader().await;
    let coordinator = cluster.member(1);
    register_nodes(coordinator, 6).await;

    // --- within the history: the missing deltas, in order
    let mut watcher = coordinator.subscribe(MapVersion(3)).await;
    for version in 4..=6 {
        let event = watcher.next().await.unwrap();
        assert!(matches!(event, MapEvent::Delta(_)));
        assert_eq!(event.version(), MapVersion(version));
    }

    // --- older than the history: one snapshot, then deltas
    let mut watcher = coordinator.subscribe(MapVersion(1)).await;
    let MapEvent::Snapshot(map) = watcher.next().await.unwrap() else {
        panic!("expected a snapshot")
    };
    assert_eq!(map, coordinator.map());
    register_nodes(coordinator, 7).await;
    assert_eq!(watcher.next().await.unwrap().version(), MapVersion(7));

    // --- the same over gRPC
    let mut client = cluster.client(1).await;
    let request = pb::WatchShardMapRequest { from_version: 1 };
    let mut stream = client.watch_shard_map(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    let pb::watch_shard_map_event::Event::Snapshot(snapshot) = first else {
        panic!("expected a snapshot")
    };
    assert_eq!(snapshot.version, 7);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_does_not_delay_others() {
    let cluster = TestCluster::start_with(1, small_buffers).await;
    cluster.leader().await;
    let coordinator = cluster.member(1);

    // --- two stalled watchers (one in process, one over gRPC) and an active one
    let mut stalled = coordinator.subscribe(MapVersion(0)).await;
    let mut stalled_client = cluster.client(1).await;
    let request = pb::WatchShardMapRequest { from_version: 0 };
    let _stalled_stream = stalled_client.watch_shard_map(request).await.unwrap();
    let mut client = cluster.client(1).await;
    let request = pb::WatchShardMapRequest { from_version: 0 };
    let mut stream = client.watch_shard_map(request).await.unwrap().into_inner();

    // --- many more changes than a watcher may buffer
    let writes = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { register_nodes(&coordinator, 60).await }
    });
    let mut seen = ShardMap::default();
    while seen.version < MapVersion(60) {
        match stream.message().await.unwrap().unwrap().event.unwrap() {
            pb::watch_shard_map_event::Event::Snapshot(s) => seen = ShardMap::try_from(&s).unwrap(),
            pb::watch_shard_map_event::Event::Delta(d) => {
                seen.apply(&ShardMapDelta::try_from(&d).unwrap()).unwrap();
            }
        }
    }
    writes.await.unwrap();
    assert_eq!(seen, *coordinator.map());

    // --- the stalled watcher resumes from a snapshot, not from where it stopped
    let first = stalled.next().await.unwrap();
    assert_eq!(first.version(), MapVersion(0), "its initial snapshot");
    let MapEvent::Snapshot(map) = stalled.next().await.unwrap() else {
        panic!("a lagging watcher gets a snapshot")
    };
    assert_eq!(map.version, MapVersion(60));
    wait_until("the coordinator still serving", || coordinator.is_ready()).await;
    cluster.shutdown().await;
}
