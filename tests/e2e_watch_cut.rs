//! The client's watch stream is cut while the map changes (a replica move,
//! then a leader change): polling keeps its routes fresh and requests keep
//! succeeding; once the watch is back the client follows it again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kvdb::core::cache::Mode;
use kvdb::core::{NodeId, ShardId};
use kvdb_client::{Client, Kv, PutOptions};

use common::{
    TestCluster, WatchGate, controlled_client, fast_cache_config, keys_in_shard, node_index,
    wait_for_version, wait_stable, wait_until,
};

/// Deadline of each request in the write loop: long enough to ride out an
/// election, so every request is expected to succeed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes and reads back keys of `shard` until `stop`; panics on any error.
async fn write_loop(
    client: Client,
    keys: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let options = PutOptions {
        timeout: Some(REQUEST_TIMEOUT),
        ..PutOptions::default()
    };
    for (n, key) in keys.iter().cycle().enumerate() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let value = format!("round {n}").into_bytes();
        client
            .put_with(key, &value, options.clone())
            .await
            .unwrap_or_else(|e| panic!("write {n} failed while the watch was cut: {e}"));
        let got = client.get(key).await.unwrap().expect("just written");
        assert_eq!(got.value, value);
        done.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_keeps_routes_fresh_while_the_watch_is_cut() {
    let mut test = TestCluster::start_paused(4).await;
    let (client, source) = controlled_client(&test.cluster, fast_cache_config()).await;
    let cache = client.cache().clone();
    wait_until("the client to watch", || cache.mode() == Mode::Watching).await;

    // --- cut the watch
    source.set_watch(WatchGate::Cut);
    wait_until("the client to poll", || cache.mode() == Mode::Polling).await;

    // --- move a replica with no traffic: only polling can tell the client
    let map = test.cluster.coordinator().map();
    let shard: ShardId = *map.shards.keys().next().unwrap();
    let info = wait_stable(&test.cluster, shard).await;
    let spare: NodeId = *map
        .nodes
        .keys()
        .find(|n| !info.replicas.contains(n))
        .unwrap();
    let leaving = *info
        .replicas
        .iter()
        .find(|&&n| Some(n) != info.leader)
        .unwrap();
    let target: Vec<NodeId> = info
        .replicas
        .iter()
        .map(|&n| if n == leaving { spare } else { n })
        .collect();
    eprintln!("moving shard {shard}: {:?} -> {target:?}", info.replicas);
    test.cluster
        .coordinator()
        .set_shard_replicas(shard, Some(info.epoch), target.clone())
        .await
        .unwrap();
    let moved = wait_stable(&test.cluster, shard).await;
    wait_for_version(&cache, test.cluster.coordinator().map().version).await;
    let seen = cache.current().shards[&shard].clone();
    assert_eq!((seen.replicas.len(), seen.epoch), (3, moved.epoch));
    assert!(seen.replicas.contains(&spare) && !seen.replicas.contains(&leaving));
    assert_eq!(cache.mode(), Mode::Polling, "the watch stayed cut");

    // --- change the shard's leader under traffic
    let keys = keys_in_shard(&map, shard, "watch-cut", 16);
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = tokio::spawn(write_loop(client.clone(), keys, stop.clone(), done.clone()));
    wait_until("writes before the leader change", || {
        done.load(Ordering::SeqCst) >= 20
    })
    .await;
    let old_leader = moved.leader.unwrap();
    test.cluster
        .stop_node(node_index(&test.cluster, old_leader).unwrap())
        .await;
    wait_until("a new leader", || {
        shard_leader(&test, shard).is_some_and(|l| l != old_leader)
    })
    .await;
    let after = done.load(Ordering::SeqCst);
    wait_for_version(&cache, test.cluster.coordinator().map().version).await;
    assert_eq!(
        cache.current().shards[&shard].leader,
        shard_leader(&test, shard)
    );
    wait_until("writes after the leader change", || {
        done.load(Ordering::SeqCst) >= after + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(cache.mode(), Mode::Polling, "the watch stayed cut");

    // --- restore the watch: the client follows it again
    source.set_watch(WatchGate::Open);
    wait_until("the client to watch again", || {
        cache.mode() == Mode::Watching
    })
    .await;

    test.stop().await;
}

fn shard_leader(test: &TestCluster, shard: ShardId) -> Option<NodeId> {
    test.cluster.coordinator().map().shards[&shard].leader
}
