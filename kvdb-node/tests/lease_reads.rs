//! Lease reads: a shard leader answers strong reads from its own state while a majority keeps
//! acknowledging it, and stops as soon as it cannot know that any more.

mod common;

use std::time::Duration;

use common::{TestCluster, put_req, wait_until_async};
use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_majority_loses_its_lease_and_stops_answering() {
    let mut cluster = TestCluster::start_with(3, 1, 3, |c| {
        c.request_timeout = Duration::from_millis(1500);
    })
    .await;
    let written = cluster.put(put_req("k", "v1")).await.unwrap();
    let shard = cluster.shard_of(b"k");
    let leader = cluster.raft_leader(shard.id).unwrap();
    let replica = cluster.node(leader).manager().replica(shard.id).unwrap();
    wait_until_async("the leader to hold a read lease", || async {
        replica.holds_read_lease()
    })
    .await;

    let addr = cluster.address(leader);
    let got = cluster
        .get_at(&addr, &shard, b"k", pb::Consistency::Strong)
        .await
        .unwrap();
    assert!(got.found);
    assert_eq!(got.version, written.version);

    for i in (0..3).filter(|&i| i != leader) {
        cluster.stop_node(i).await;
    }
    wait_until_async("the lease to run out without acknowledgements", || async {
        !replica.holds_read_lease()
    })
    .await;
    // Without a lease the read needs a heartbeat round, which nobody answers.
    let refused = cluster
        .get_at(&addr, &shard, b"k", pb::Consistency::Strong)
        .await;
    assert!(
        matches!(refused, Err(KvError::Unavailable(_))),
        "a leader without a majority answered a strong read: {refused:?}"
    );
    // Eventual reads are still served from the local state.
    let local = cluster
        .get_at(&addr, &shard, b"k", pb::Consistency::Eventual)
        .await
        .unwrap();
    assert_eq!(local.version, written.version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lease_reads_off_strong_reads_run_a_heartbeat_round() {
    let cluster = TestCluster::start_with(3, 1, 3, |c| c.lease_reads = false).await;
    let written = cluster.put(put_req("k", "v1")).await.unwrap();
    let shard = cluster.shard_of(b"k");
    let leader = cluster.raft_leader(shard.id).unwrap();
    let replica = cluster.node(leader).manager().replica(shard.id).unwrap();
    // A second write is acknowledged by both followers, which would give a lease.
    cluster.put(put_req("k", "v2")).await.unwrap();
    assert!(!replica.holds_read_lease());
    let got = cluster.get(b"k").await.unwrap();
    assert!(got.version > written.version);
    cluster.shutdown().await;
}
