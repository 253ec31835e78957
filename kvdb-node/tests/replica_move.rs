//! Moving a replica of a shard to a new node while a writer runs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{TestCluster, put_req, wait_until_async};
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::reopen;
use kvdb_core::storage::{RedbStorage, Storage};
use kvdb_core::{ShardId, ShardState};
use kvdb_node::config::KV_DB_FILE;

/// Writes keys of `shard` until `stop` is set; returns the acknowledged ones.
async fn writer(
    cluster: &TestCluster,
    shard: ShardId,
    written: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(String, u64)> {
    let mut acked = Vec::new();
    let mut keys = (0..)
        .map(|i| format!("moving-{i}"))
        .filter(|k| cluster.shard_of(k.as_bytes()).id == shard);
    while !stop.load(Ordering::Relaxed) {
        let key = keys.next().unwrap();
        let put = cluster
            .put(put_req(key.clone(), key.clone()))
            .await
            .unwrap();
        acked.push((key, put.version));
        written.fetch_add(1, Ordering::Relaxed);
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_moves_to_a_new_node_without_losing_writes() {
    let mut cluster = TestCluster::start(3, 8, 3).await;
    let new_node = cluster.add_node().await;
    let new_id = cluster.node(new_node).id();
    let old_id = cluster.node(0).id();
    let shard = cluster
        .map()
        .shards
        .values()
        .find(|s| s.replicas.contains(&old_id))
        .unwrap()
        .clone();
    let target: Vec<_> = shard
        .replicas
        .iter()
        .map(|n| if *n == old_id { new_id } else { *n })
        .collect();

    tracing::info!(
        "--- move shard {} from node 1 to node 4 while writing",
        shard.id
    );
    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let mover = async {
        wait_until_async("a few writes before the move", || async {
            written.load(Ordering::Relaxed) >= 10
        })
        .await;
        cluster.coordinator.set_replicas(shard.id, target.clone());
        wait_until_async("the move to be committed and reported", || async {
            let map = cluster.map();
            let s = &map.shards[&shard.id];
            s.state == ShardState::Stable && s.replicas.contains(&new_id) && s.leader.is_some()
        })
        .await;
        wait_until_async("the old replica to be removed", || async {
            cluster.node(0).manager().replica(shard.id).is_none()
        })
        .await;
        stop.store(true, Ordering::Relaxed);
    };
    let (acked, ()) = tokio::join!(writer(&cluster, shard.id, &written, &stop), mover);
    assert!(!acked.is_empty());

    tracing::info!("--- every acknowledged write is on the new replica set");
    let addr4 = cluster.address(new_node);
    let current = cluster.shard_of(acked[0].0.as_bytes());
    for (key, version) in &acked {
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found && got.version == *version, "lost {key}");
        wait_until_async("node 4 to serve the key", || async {
            let got = cluster
                .get_at(&addr4, &current, key.as_bytes(), pb::Consistency::Eventual)
                .await;
            got.is_ok_and(|g| g.version == *version)
        })
        .await;
    }

    tracing::info!("--- the old node answers SHARD_MOVED");
    let err = cluster
        .get_at(
            &cluster.address(0),
            &current,
            acked[0].0.as_bytes(),
            pb::Consistency::Eventual,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KvError::Routing(RoutingError::ShardMoved { to: Some(_), .. })
        ),
        "{err:?}"
    );

    tracing::info!("--- the old node's data for the shard is gone");
    cluster.stop_node(0).await;
    // The stopped node's last tasks may hold the file a moment longer, as for a restart.
    let path = cluster.data_dir(0).join(KV_DB_FILE);
    let db = reopen::when_free(|| redb::Database::create(&path), reopen::redb_in_use).unwrap();
    let storage = RedbStorage::open(Arc::new(db), shard.id).unwrap();
    assert!(storage.is_empty().unwrap());
    assert!(storage.meta().unwrap().is_none());
    cluster.shutdown().await;
}
