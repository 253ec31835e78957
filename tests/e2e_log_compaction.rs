//! A shard's log is compacted by size: once it grew past `snapshot_log_bytes` since the last
//! snapshot, every replica builds a snapshot and purges its log behind it, long before the
//! entry-count policy would; the data stays whole, and a replica restarted afterwards comes
//! back from its snapshot and the log that is left.

mod common;

use common::{TestCluster, keys_in_shard, wait_stable, wait_until};
use kvdb::cluster::NodeHook;
use kvdb::core::ShardId;
use kvdb_client::Kv;
use kvdb_testkit::wait_until_or_report;

/// Small enough that the writes below cross it several times.
const LIMIT: u64 = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_that_grew_past_its_size_is_snapshotted_and_purged() {
    let test = TestCluster::start_with(3, |config| {
        config.tune_node = NodeHook::new(|_, node| {
            node.snapshot_log_bytes = LIMIT;
            node.logs_kept_after_snapshot = 8;
        });
    })
    .await;
    let cluster = &test.cluster;
    let shard = ShardId(0);
    wait_stable(cluster, shard).await;
    let client = cluster.client().await.expect("client");
    let keys = keys_in_shard(&cluster.coordinator().map(), shard, "big", 60);
    let value = |i: usize| vec![b'a' + (i % 26) as u8; 8 * 1024];
    // About 480 KiB of values in far fewer entries than the entry-count policy's 10,000.
    for (i, key) in keys.iter().enumerate() {
        client.put(key, &value(i)).await.expect("put");
    }

    let figures = |i: usize| {
        cluster
            .node(i)
            .and_then(|n| n.manager().replica(shard))
            .map(|r| r.raft_figures())
    };
    wait_until_or_report(
        "every replica of the shard to snapshot and purge its log",
        || (0..3).all(|i| figures(i).is_some_and(|f| f.snapshots_built >= 1 && f.purged_index > 0)),
        || {
            (0..3)
                .map(|i| {
                    let growth = cluster
                        .node(i)
                        .and_then(|n| n.manager().replica(shard))
                        .map(|r| r.log_growth());
                    format!("node {i}: {:?}, log growth {growth:?}\n", figures(i))
                })
                .collect()
        },
    )
    .await;
    for i in 0..3 {
        let f = figures(i).unwrap();
        assert!(
            f.snapshots_built + f.snapshots_installed <= 8,
            "node {i}: {} snapshots for about 4 limits' worth of log",
            f.snapshots_built
        );
    }

    // A follower restarted now opens from its snapshot and what is left of its log, and
    // catches up; every value reads back.
    let leader = cluster.map().unwrap().shards[&shard].leader.unwrap();
    let follower = (0..3).find(|&i| cluster.node_id(i) != leader).unwrap();
    let before = figures(follower).unwrap().applied_index;
    drop(client);
    let mut test = test;
    test.cluster.stop_node(follower).await;
    test.cluster.restart_node(follower).await.expect("restarts");
    let cluster = &test.cluster;
    wait_until("the restarted follower to apply what it had", || {
        cluster
            .node(follower)
            .and_then(|n| n.manager().replica(shard))
            .is_some_and(|r| r.raft_figures().applied_index >= before)
    })
    .await;
    let client = cluster.client().await.expect("client");
    for (i, key) in keys.iter().enumerate() {
        let got = client.get(key).await.expect("get").expect("present");
        assert_eq!(got.value, value(i));
    }
    test.stop().await;
}
