//! Leader transfer: `SetShardLeader` names a follower, and the shard's Raft
//! leadership moves there while a writer runs.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use common::{TestCluster, put_req, wait_until_async};
use kvdb_core::ShardId;

/// Writes keys of `shard` until `stop` is set; returns the acknowledged
/// ones. Every failure must be retryable (the routed put already retries
/// those until its deadline).
async fn writer(
    cluster: &TestCluster,
    shard: ShardId,
    written: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(String, u64)> {
    let mut acked = Vec::new();
    let mut keys = (0..)
        .map(|i| format!("transfer-{i}"))
        .filter(|k| cluster.shard_of(k.as_bytes()).id == shard);
    while !stop.load(Ordering::Relaxed) {
        let key = keys.next().unwrap();
        match cluster.put(put_req(key.clone(), key.clone())).await {
            Ok(put) => {
                acked.push((key, put.version));
                written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => assert!(e.is_retryable(), "non-retryable write error: {e:?}"),
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_shard_leader_moves_raft_leadership_to_the_named_follower() {
    let cluster = TestCluster::start(3, 2, 3).await;
    let shard = cluster.shard_of(b"transfer-0");
    let old = cluster.raft_leader(shard.id).unwrap();
    let old_term = cluster.map().shards[&shard.id].leader_term;
    let target = (0..3).find(|i| *i != old).unwrap();
    let target_id = cluster.node(target).id();

    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let mover = async {
        wait_until_async("a few writes before the transfer", || async {
            written.load(Ordering::Relaxed) >= 10
        })
        .await;
        tracing::info!("--- name node {target_id} the leader of shard {}", shard.id);
        let started = Instant::now();
        cluster.coordinator.set_leader(shard.id, target_id);
        wait_until_async("the target to lead in Raft and in the map", || async {
            let s = cluster.map().shards[&shard.id].clone();
            cluster.raft_leader(shard.id) == Some(target)
                && s.leader == Some(target_id)
                && s.leader_term > old_term
        })
        .await;
        eprintln!(
            "SetShardLeader -> target leads in Raft and map: {:?}",
            started.elapsed()
        );
        let before = written.load(Ordering::Relaxed);
        wait_until_async("a few writes on the new leader", || async {
            written.load(Ordering::Relaxed) >= before + 10
        })
        .await;
        stop.store(true, Ordering::Relaxed);
    };
    let (acked, ()) = tokio::join!(writer(&cluster, shard.id, &written, &stop), mover);
    assert_eq!(cluster.raft_leader(shard.id), Some(target));

    tracing::info!("--- every acknowledged write is readable");
    for (key, version) in &acked {
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found && got.version >= *version, "lost {key}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_cannot_happen_heals_the_map() {
    let mut cluster = TestCluster::start(3, 2, 3).await;
    let shard = cluster.shard_of(b"transfer-0");
    let old = cluster.raft_leader(shard.id).unwrap();
    let old_term = cluster.map().shards[&shard.id].leader_term;
    let target = (0..3).find(|i| *i != old).unwrap();
    let target_id = cluster.node(target).id();

    tracing::info!("--- name a stopped follower the leader");
    cluster.stop_node(target).await;
    cluster.coordinator.set_leader(shard.id, target_id);
    wait_until_async("the map to name a running Raft leader again", || async {
        let s = cluster.map().shards[&shard.id].clone();
        let leader = cluster.raft_leader(shard.id);
        leader.is_some_and(|i| Some(cluster.node(i).id()) == s.leader) && s.leader_term >= old_term
    })
    .await;
    let put = cluster.put(put_req("transfer-0", "after")).await.unwrap();
    let got = cluster.get(b"transfer-0").await.unwrap();
    assert_eq!(got.version, put.version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_handover_fails_reclaims_the_map_in_its_term() {
    // Two replicas: with the target down, no one else can be elected.
    let mut cluster = TestCluster::start(2, 1, 2).await;
    let shard = cluster.shard_of(b"transfer-0");
    let old = cluster.raft_leader(shard.id).unwrap();
    let old_id = cluster.node(old).id();
    let old_term = cluster.map().shards[&shard.id].leader_term;
    let target = 1 - old;
    let target_id = cluster.node(target).id();

    cluster.stop_node(target).await;
    cluster.coordinator.set_leader(shard.id, target_id);
    wait_until_async("the old leader to reclaim the map", || async {
        let s = cluster.map().shards[&shard.id].clone();
        s.leader == Some(old_id) && s.leader_term == old_term
    })
    .await;
    assert_eq!(cluster.raft_leader(shard.id), Some(old));
    cluster.shutdown().await;
}
