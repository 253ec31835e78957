//! Quiescence: idle shards stop ticking, still take writes and strong reads, and elect a new
//! leader when the node leading them dies. 3 nodes, 8 shards, RF 3.

mod common;

use std::time::Duration;

use common::{TestCluster, put_req, wait_until_async};
use kvdb_core::ShardId;

/// How many shards the running nodes lead and keep quiet.
fn quiet(cluster: &TestCluster, running: &[usize]) -> usize {
    running
        .iter()
        .map(|&i| cluster.node(i).quiet_leaderships())
        .sum()
}

async fn wait_all_quiet(cluster: &TestCluster, running: &[usize], shards: usize) {
    wait_until_async("every shard to go quiet", || async {
        quiet(cluster, running) == shards
    })
    .await;
}

/// One key per shard, `prefix-<i>`, in shard order.
fn key_per_shard(cluster: &TestCluster, prefix: &str) -> Vec<(ShardId, String)> {
    let mut keys: Vec<(ShardId, String)> = Vec::new();
    for i in 0.. {
        let key = format!("{prefix}-{i}");
        let shard = cluster.shard_of(key.as_bytes()).id;
        if !keys.iter().any(|(s, _)| *s == shard) {
            keys.push((shard, key));
        }
        if keys.len() == cluster.map().shards.len() {
            break;
        }
    }
    keys
}

async fn write_and_read_back(cluster: &TestCluster, keys: &[(ShardId, String)]) {
    for (_, key) in keys {
        cluster
            .put(put_req(key.clone(), key.clone()))
            .await
            .unwrap_or_else(|e| panic!("write of {key}: {e}"));
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found && got.value.as_ref() == key.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_shards_go_quiet_wake_for_writes_and_fail_over_when_their_leader_dies() {
    const SHARDS: usize = 8;
    let mut cluster = TestCluster::start_with(3, SHARDS as u64, 3, |c| {
        c.quiesce_after = Some(Duration::from_millis(500));
    })
    .await;
    let all = [0, 1, 2];
    wait_all_quiet(&cluster, &all, SHARDS).await;

    tracing::info!("--- writes and strong reads on quiet shards");
    let first = key_per_shard(&cluster, "quiet");
    write_and_read_back(&cluster, &first).await;
    wait_all_quiet(&cluster, &all, SHARDS).await;

    tracing::info!("--- the node leading the most quiet shards dies");
    let victim = *all
        .iter()
        .max_by_key(|&&i| cluster.node(i).quiet_leaderships())
        .unwrap();
    let led: Vec<ShardId> = cluster
        .map()
        .shards
        .keys()
        .copied()
        .filter(|s| cluster.raft_leader(*s) == Some(victim))
        .collect();
    assert!(!led.is_empty());
    cluster.stop_node(victim).await;
    wait_until_async("the dead node's shards to elect new leaders", || async {
        led.iter()
            .all(|s| cluster.raft_leader(*s).is_some_and(|i| i != victim))
    })
    .await;
    cluster.wait_for_leaders().await;
    let second = key_per_shard(&cluster, "after-kill");
    write_and_read_back(&cluster, &second).await;

    tracing::info!("--- the node comes back: every shard goes quiet again");
    cluster.restart_node(victim).await;
    wait_all_quiet(&cluster, &all, SHARDS).await;
    for (_, key) in first.iter().chain(&second) {
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found, "acknowledged key {key} lost");
    }
    cluster.shutdown().await;
}
