//! Replica moves while clients hold stale maps: a request carrying the old
//! epoch to a replica that stayed gets STALE_EPOCH; a request to a node that
//! no longer hosts the shard gets SHARD_MOVED. Either way the executor
//! refreshes and retries, and no error reaches the caller.

mod common;

use std::sync::Arc;

use kvdb::cluster::LocalCluster;
use kvdb::core::cache::Mode;
use kvdb::core::{NodeId, ShardId, ShardInfo};
use kvdb_client::{Client, Consistency, GetOptions, Kv};

use common::{
    ControlledSource, TestCluster, WatchGate, controlled_client, fast_cache_config, keys_in_shard,
    node_index, wait_stable, wait_until,
};

const KEYS: usize = 16;

fn value(round: &str, key: &[u8]) -> Vec<u8> {
    [round.as_bytes(), b":", key].concat()
}

/// A client whose map updates are frozen: no watch events, no fetches.
async fn frozen_client(cluster: &LocalCluster) -> (Client, Arc<ControlledSource>) {
    let (client, source) = controlled_client(cluster, fast_cache_config()).await;
    let cache = client.cache().clone();
    wait_until("the client to watch", || cache.mode() == Mode::Watching).await;
    source.set_watch(WatchGate::Frozen);
    source.freeze_fetch(true);
    (client, source)
}

/// Moves `shard`'s replica on `from` to `to`, and waits until the move is
/// committed and `from` dropped its replica.
async fn move_replica(
    cluster: &LocalCluster,
    shard: ShardId,
    from: NodeId,
    to: NodeId,
) -> ShardInfo {
    let before = wait_stable(cluster, shard).await;
    let target: Vec<NodeId> = before
        .replicas
        .iter()
        .map(|&n| if n == from { to } else { n })
        .collect();
    eprintln!("moving shard {shard}: {:?} -> {target:?}", before.replicas);
    cluster
        .coordinator()
        .set_shard_replicas(shard, Some(before.epoch), target)
        .await
        .unwrap();
    let after = wait_stable(cluster, shard).await;
    assert!(after.replicas.contains(&to) && !after.replicas.contains(&from));
    assert!(after.epoch > before.epoch);
    let old = cluster.node(node_index(cluster, from).unwrap()).unwrap();
    wait_until("the old replica to be dropped", || {
        old.manager().replica(shard).is_none()
    })
    .await;
    after
}

/// Lifts the client's fetch freeze (its watch stays frozen, so only the
/// executor's own refreshes can update it), then reads the `expect`ed values
/// and writes `next` ones; every call must succeed.
async fn use_stale_client(
    client: &Client,
    source: &ControlledSource,
    keys: &[Vec<u8>],
    expect: &str,
    next: &str,
    current: &ShardInfo,
) {
    let stale_epoch = client.cache().current().shards[&current.id].epoch;
    assert!(stale_epoch < current.epoch, "the client's map is stale");
    source.freeze_fetch(false);
    let fetches = source.fetches();
    for key in keys {
        let got = client.get(key).await.expect("strong read with a stale map");
        assert_eq!(got.unwrap().value, value(expect, key));
        client
            .put(key, &value(next, key))
            .await
            .expect("write with a stale map");
    }
    let eventual = GetOptions {
        consistency: Consistency::Eventual,
        ..GetOptions::default()
    };
    for key in keys {
        // An eventual read may lag, but only to a value this key had.
        let got = client.get_with(key, eventual.clone()).await.unwrap();
        let got = got.expect("written key").value;
        assert!(got == value(next, key) || got == value(expect, key));
    }
    assert!(source.fetches() > fetches, "the executor refreshed the map");
    assert_eq!(
        client.cache().current().shards[&current.id].epoch,
        current.epoch
    );
    assert_eq!(
        client.cache().mode(),
        Mode::Watching,
        "the watch stayed frozen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_with_stale_maps_recover_transparently_after_moves() {
    let test = TestCluster::start_paused(4).await;
    let cluster = &test.cluster;
    let map = cluster.coordinator().map();
    let shard: ShardId = *map.shards.keys().next().unwrap();
    let first = wait_stable(cluster, shard).await;
    let leader = first.leader.unwrap();
    let follower = *first.replicas.iter().find(|&&n| n != leader).unwrap();
    let spare = *map
        .nodes
        .keys()
        .find(|n| !first.replicas.contains(n))
        .unwrap();

    // --- seed keys of one shard; freeze two clients' maps
    let keys = keys_in_shard(&map, shard, "stale-map", KEYS);
    let seeder = cluster.client().await.unwrap();
    for key in &keys {
        seeder.put(key, &value("seed", key)).await.unwrap();
    }
    let (epoch_client, epoch_source) = frozen_client(cluster).await;
    let (moved_client, moved_source) = frozen_client(cluster).await;

    // --- move a follower away: the leader stays, the epoch changes
    let second = move_replica(cluster, shard, follower, spare).await;
    assert_eq!(second.leader, Some(leader), "the leader stayed");
    use_stale_client(&epoch_client, &epoch_source, &keys, "seed", "one", &second).await;

    // --- move the leader away: the doubly stale client asks a node that
    // no longer hosts the shard
    let third = move_replica(cluster, shard, leader, follower).await;
    use_stale_client(&moved_client, &moved_source, &keys, "one", "two", &third).await;

    epoch_source.set_watch(WatchGate::Open);
    moved_source.set_watch(WatchGate::Open);
    test.stop().await;
}
