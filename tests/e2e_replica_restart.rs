//! A shard replica whose Raft group stops by itself (openraft stops a group for good on a
//! storage or invariant error) is reopened from its stored state by its node, as a restart
//! of the node would, and the shard keeps every acknowledged write.

mod common;

use std::sync::Arc;

use common::{TestCluster, keys_in_shard, node_index, wait_stable, wait_until};
use kvdb::core::ShardId;
use kvdb_client::Kv;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_raft_group_stopped_is_reopened_and_keeps_its_data() {
    let test = TestCluster::start(3).await;
    let cluster = &test.cluster;
    let shard = ShardId(0);
    let info = wait_stable(cluster, shard).await;
    let client = cluster.client().await.expect("client");
    let keys = keys_in_shard(&cluster.coordinator().map(), shard, "restart", 5);
    for key in &keys {
        client.put(key, b"before").await.expect("put");
    }

    // The group on the shard's leader stops without its replica being closed.
    let leader = node_index(cluster, info.leader.expect("a leader")).expect("running");
    let manager = cluster.node(leader).expect("running").manager().clone();
    let dead = manager.replica(shard).expect("the leader hosts the shard");
    dead.raft().shutdown().await.expect("the group stops");
    assert!(
        dead.died().is_some(),
        "a group stopped under its replica counts as dead"
    );

    wait_until("the node to reopen the replica", || {
        manager.restarts() == 1
            && manager
                .replica(shard)
                .is_some_and(|r| !Arc::ptr_eq(&r, &dead) && r.died().is_none())
    })
    .await;
    for key in &keys {
        let value = client.get(key).await.expect("get").expect("kept");
        assert_eq!(value.value, b"before");
        client
            .put(key, b"after")
            .await
            .expect("put after the reopening");
    }
    for key in &keys {
        let value = client.get(key).await.expect("get").expect("kept");
        assert_eq!(value.value, b"after");
    }
    test.stop().await;
}
