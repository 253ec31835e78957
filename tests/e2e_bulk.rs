//! Bulk writes through both ways in: 10,000 keys through the gateway and
//! 10,000 through the smart client land on every shard and read back exactly.

mod common;

use std::collections::BTreeMap;

use futures::StreamExt;
use kvdb::core::ShardId;
use kvdb_client::Kv;

use common::{TestCluster, shard_of, wait_until};

const KEYS_PER_CLIENT: u32 = 10_000;
const IN_FLIGHT: usize = 32;

/// Binary key `i` of a client: starts with the client's tag byte, holds
/// 0x00 and 0xFF bytes, and ends with `i`'s bytes so keys spread over slots.
fn key(tag: u8, i: u32) -> Vec<u8> {
    let mut key = vec![tag, 0x00, 0xFF];
    key.extend_from_slice(&i.to_le_bytes());
    key
}

/// Value `i`: every seventh is empty; the others mix 0x00, 0xFF and a
/// pattern, in lengths up to 299 bytes.
fn value(tag: u8, i: u32) -> Vec<u8> {
    if i.is_multiple_of(7) {
        return Vec::new();
    }
    let mut value = vec![0x00, 0xFF, tag];
    value.extend((0..i % 297).map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8));
    value
}

/// Writes every key of `tag` through `client`, `IN_FLIGHT` at a time.
async fn write_all(client: &impl Kv, tag: u8) {
    futures::stream::iter(0..KEYS_PER_CLIENT)
        .map(|i| async move {
            let version = client
                .put(&key(tag, i), &value(tag, i))
                .await
                .unwrap_or_else(|e| panic!("put {i} of client {tag:#x}: {e}"));
            assert!(version.0 > 0, "a write's version is its log index");
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}

/// Reads every key of `tag` through `client` and compares it exactly.
async fn read_all(client: &impl Kv, tag: u8) {
    futures::stream::iter(0..KEYS_PER_CLIENT)
        .map(|i| async move {
            let got = client
                .get(&key(tag, i))
                .await
                .unwrap_or_else(|e| panic!("get {i} of client {tag:#x}: {e}"))
                .unwrap_or_else(|| panic!("key {i} of client {tag:#x} is missing"));
            assert_eq!(
                got.value,
                value(tag, i),
                "value of key {i} of client {tag:#x}"
            );
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_keys_per_client_land_on_every_shard_and_read_back() {
    let test = TestCluster::start(3).await;
    let cluster = &test.cluster;
    let gateway = cluster.gateway_client().unwrap();
    let smart = cluster.client().await.unwrap();
    const VIA_GATEWAY: u8 = 0x00;
    const VIA_SMART: u8 = 0xFF;

    // --- write 10,000 keys through each client, concurrently
    let started = std::time::Instant::now();
    tokio::join!(
        write_all(&gateway, VIA_GATEWAY),
        write_all(&smart, VIA_SMART)
    );
    eprintln!(
        "wrote {} keys in {:?}",
        2 * KEYS_PER_CLIENT,
        started.elapsed()
    );

    // --- the keys cover every shard, by slot and the map
    let map = cluster.coordinator().map();
    let mut expected: BTreeMap<ShardId, u64> = map.shards.keys().map(|&s| (s, 0)).collect();
    for tag in [VIA_GATEWAY, VIA_SMART] {
        for i in 0..KEYS_PER_CLIENT {
            *expected.get_mut(&shard_of(&map, &key(tag, i))).unwrap() += 1;
        }
    }
    assert_eq!(expected.len(), 8, "the cluster has 8 shards");
    assert!(
        expected.values().all(|&n| n > 0),
        "some shard got no key: {expected:?}"
    );
    eprintln!("keys per shard: {expected:?}");

    // --- every replica of every shard holds exactly its keys
    wait_until("every replica to hold its shard's keys", || {
        map.shards.values().all(|shard| {
            shard.replicas.iter().all(|&node| {
                let Some(i) = common::node_index(cluster, node) else {
                    return false;
                };
                let node = cluster.node(i).unwrap();
                node.manager()
                    .replica(shard.id)
                    .and_then(|r| r.storage().len().ok())
                    == Some(expected[&shard.id])
            })
        })
    })
    .await;

    // --- read back exactly, each set through the other client
    tokio::join!(read_all(&smart, VIA_GATEWAY), read_all(&gateway, VIA_SMART));
    assert_eq!(gateway.get(&key(0x7F, 0)).await.unwrap(), None);
    eprintln!("wrote and read back in {:?}", started.elapsed());

    test.stop().await;
}

/// One client with a thousand writes in flight to one key, so all to one shard: none may fail.
/// Shards once remembered only a client's last 256 results, and refused writes that arrived
/// after their sequence slid out of that window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_writes_in_flight_to_one_key_all_succeed() {
    const IN_FLIGHT: usize = 1_000;
    let test = TestCluster::start(3).await;
    let gateway = test.cluster.gateway_client().unwrap();
    let smart = test.cluster.client().await.unwrap();
    async fn hammer(client: &impl Kv, name: &str) {
        let failures: Vec<String> = futures::stream::iter(0..IN_FLIGHT)
            .map(|i| async move { client.put(b"hot", &i.to_le_bytes()).await })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(|result| async move { result.err().map(|e| e.to_string()) })
            .collect()
            .await;
        assert!(
            failures.is_empty(),
            "{} of {IN_FLIGHT} puts through the {name} failed, e.g. {:?}",
            failures.len(),
            failures.first()
        );
    }
    hammer(&smart, "smart client").await;
    hammer(&gateway, "gateway").await;
    test.stop().await;
}
