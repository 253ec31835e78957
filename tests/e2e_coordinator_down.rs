//! The coordinator goes down: clients keep reading and writing with the maps
//! they cached, even across a shard leader's death. It comes back on the
//! same address with the same data: the smart client's watch resumes and a
//! later map change reaches it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use kvdb::core::ShardId;
use kvdb::core::cache::Mode;
use kvdb_client::{Kv, PutOptions};

use common::{TestCluster, keys_in_shard, node_index, wait_for_version, wait_until};

const KEYS: usize = 16;

fn key(phase: &str, i: usize) -> Vec<u8> {
    format!("coordinator-down-{phase}-{i}").into_bytes()
}

/// Writes `KEYS` keys of `phase` through `client` and reads them back.
async fn write_and_read(client: &impl Kv, phase: &str) {
    for i in 0..KEYS {
        let (key, value) = (key(phase, i), format!("{phase}:{i}").into_bytes());
        client
            .put(&key, &value)
            .await
            .unwrap_or_else(|e| panic!("put {phase} {i}: {e}"));
        let got = client.get(&key).await.unwrap().expect("written key");
        assert_eq!(got.value, value);
    }
}

/// Options with a deadline long enough to ride out an election.
fn patient() -> PutOptions {
    PutOptions {
        timeout: Some(Duration::from_secs(10)),
        ..PutOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_routing_serves_while_the_coordinator_is_down() {
    // The scheduler stays paused: this test is about cached routing, and the node it
    // registers at the end (an address nothing listens on, just to change the map) would
    // otherwise be given replicas that can never catch up, while a leader is already dead.
    let mut test = TestCluster::start_paused(3).await;
    let smart = test.cluster.client().await.unwrap();
    let gateway = test.cluster.gateway_client().unwrap();
    let cache = smart.cache().clone();
    wait_until("the smart client to watch", || {
        cache.mode() == Mode::Watching
    })
    .await;
    write_and_read(&smart, "before").await;

    // --- stop the coordinator: the watch drops, the client polls in vain
    test.cluster.stop_coordinator().await;
    wait_until("the smart client to notice", || {
        cache.mode() == Mode::Polling
    })
    .await;

    // --- cached routing keeps serving reads and writes, both ways in
    write_and_read(&smart, "down-smart").await;
    write_and_read(&gateway, "down-gateway").await;
    for i in 0..KEYS {
        let got = gateway.get(&key("before", i)).await.unwrap();
        assert_eq!(got.unwrap().value, format!("before:{i}").into_bytes());
    }

    // --- a shard leader dies too: followers' hints lead the clients to the
    // new leaders, since no map will tell them
    let map = cache.current();
    let victim = map.shards.values().next().and_then(|s| s.leader).unwrap();
    let led: BTreeSet<ShardId> = map
        .shards
        .values()
        .filter(|s| s.leader == Some(victim))
        .map(|s| s.id)
        .collect();
    test.cluster
        .stop_node(node_index(&test.cluster, victim).unwrap())
        .await;
    for (n, shard) in led.iter().enumerate() {
        for key in keys_in_shard(&map, *shard, "leaderless-map", 4) {
            let value = format!("after the kill {n}").into_bytes();
            smart.put_with(&key, &value, patient()).await.unwrap();
            gateway.put_with(&key, &value, patient()).await.unwrap();
            assert_eq!(smart.get(&key).await.unwrap().unwrap().value, value);
        }
    }

    // --- restart it: the watch resumes, and the map learns the new leaders
    test.cluster.restart_coordinator().await.unwrap();
    wait_until("the smart client to watch again", || {
        cache.mode() == Mode::Watching
    })
    .await;
    wait_until("the coordinator to learn the new leaders", || {
        let map = test.cluster.coordinator().map();
        led.iter()
            .all(|s| map.shards[s].leader.is_some_and(|l| l != victim))
    })
    .await;

    // --- a map change made after the restart reaches the client
    let spare = test
        .cluster
        .coordinator()
        .register_node("spare".into(), "127.0.0.1:1".into(), "default".into())
        .await
        .unwrap();
    let version = test.cluster.coordinator().map().version;
    wait_for_version(&cache, version).await;
    assert!(cache.current().nodes.contains_key(&spare.id));
    write_and_read(&smart, "after").await;
    write_and_read(&gateway, "after-gateway").await;

    test.stop().await;
}
