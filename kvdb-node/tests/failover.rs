//! Failures: a shard leader dies, a node restarts and catches up by log or
//! by snapshot. 3 nodes, 8 shards, RF 3.

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, put_req, wait_until_async};
use kvdb_core::proto::v1 as pb;

/// Writes `count` keys `prefix-i` and returns them with their versions.
async fn write_keys(cluster: &TestCluster, prefix: &str, count: usize) -> Vec<(String, u64)> {
    let mut acked = Vec::with_capacity(count);
    for i in 0..count {
        let key = format!("{prefix}-{i}");
        let put = cluster
            .put(put_req(key.clone(), key.clone()))
            .await
            .unwrap();
        acked.push((key, put.version));
    }
    acked
}

/// Writes `count` keys that all fall in `shard`.
async fn write_keys_in(
    cluster: &TestCluster,
    shard: kvdb_core::ShardId,
    prefix: &str,
    count: usize,
) -> Vec<(String, u64)> {
    let mut acked = Vec::with_capacity(count);
    let keys = (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|k| cluster.shard_of(k.as_bytes()).id == shard)
        .take(count);
    for key in keys {
        let put = cluster
            .put(put_req(key.clone(), key.clone()))
            .await
            .unwrap();
        acked.push((key, put.version));
    }
    acked
}

/// Checks every acknowledged key with a strong read.
async fn assert_all_present(cluster: &TestCluster, acked: &[(String, u64)]) {
    for (key, version) in acked {
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found, "acknowledged key {key} lost");
        assert_eq!(got.value.as_ref(), key.as_bytes());
        assert!(got.version >= *version);
    }
}

/// Waits until the node at `index` serves every key in `acked` with an
/// eventual read at its latest version.
async fn wait_caught_up(cluster: &TestCluster, index: usize, acked: &[(String, u64)]) {
    let addr = cluster.address(index);
    for (key, version) in acked {
        let shard = cluster.shard_of(key.as_bytes());
        wait_until_async("the restarted node to serve the latest value", || async {
            let got = cluster
                .get_at(&addr, &shard, key.as_bytes(), pb::Consistency::Eventual)
                .await;
            got.is_ok_and(|g| g.found && g.version == *version)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let mut cluster = TestCluster::start(3, 8, 3).await;
    let mut acked = write_keys(&cluster, "before", 48).await;

    tracing::info!("--- kill the leader of the shard of before-0");
    let shard = cluster.shard_of(b"before-0");
    let victim = cluster.raft_leader(shard.id).unwrap();
    let killed_at = Instant::now();
    cluster.stop_node(victim).await;

    tracing::info!("--- writes to that shard resume on a new leader");
    let put = cluster.put(put_req("before-0", "before-0")).await.unwrap();
    let failover = killed_at.elapsed();
    eprintln!("leader kill -> first successful write on the new leader: {failover:?}");
    acked.retain(|(k, _)| k != "before-0");
    acked.push(("before-0".into(), put.version));
    let new_leader = cluster.raft_leader(shard.id).unwrap();
    assert_ne!(new_leader, victim);

    tracing::info!("--- every acknowledged write survived; new writes work everywhere");
    acked.extend(write_keys(&cluster, "after", 24).await);
    assert_all_present(&cluster, &acked).await;

    tracing::info!("--- the restarted node catches up from the log");
    cluster.restart_node(victim).await;
    wait_caught_up(&cluster, victim, &acked).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start_with(3, 8, 3, |c| {
        c.snapshot_logs = 20;
        c.logs_kept_after_snapshot = 0;
    })
    .await;
    let mut acked = write_keys(&cluster, "early", 16).await;

    tracing::info!("--- stop a node that leads nothing we care about, then write past a snapshot");
    let shard = cluster.shard_of(b"early-0");
    let leader = cluster.raft_leader(shard.id).unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    cluster.stop_node(follower).await;
    acked.extend(write_keys_in(&cluster, shard.id, "late", 60).await);
    let leader_raft = cluster.node(leader).manager().replica(shard.id).unwrap();
    wait_until_async("the leader to snapshot and purge its log", || async {
        let m = leader_raft.raft().metrics().borrow().clone();
        m.purged.is_some_and(|p| p.index > 20)
    })
    .await;

    tracing::info!("--- restart: the follower needs a snapshot to catch up");
    cluster.restart_node(follower).await;
    wait_caught_up(&cluster, follower, &acked).await;
    let replica = cluster.node(follower).manager().replica(shard.id).unwrap();
    assert!(
        replica.raft().metrics().borrow().snapshot.is_some(),
        "the follower should have installed a snapshot"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keep_flowing_while_a_follower_is_down() {
    let mut cluster = TestCluster::start(3, 8, 3).await;
    let follower = (0..3)
        .find(|i| {
            let id = cluster.node(*i).id();
            cluster.map().shards.values().all(|s| s.leader != Some(id))
        })
        .unwrap_or(2);
    cluster.stop_node(follower).await;
    let started = Instant::now();
    let acked = write_keys(&cluster, "degraded", 32).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_all_present(&cluster, &acked).await;
    cluster.restart_node(follower).await;
    wait_caught_up(&cluster, follower, &acked).await;
    cluster.shutdown().await;
}
