//! A targeted liveness scenario: a leader cut off from its peers takes a write it can never
//! commit, the others elect a new leader and compact their logs past that write, and the old
//! leader, back in touch, catches up from a snapshot. Once it leads again, it must take
//! writes.
//!
//! The snapshot settles the old leader's pending proposal without applying it entry by entry.
//! openraft 0.9 kept that proposal's caller waiting forever, and a shard's write queue keeps
//! one proposal in flight, so every later write to the shard through that node timed out
//! (third_party/README.md, the `PurgeLog` patch).

use std::time::Duration;

use kvdb::core::ShardId;
use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_node_client::KvNodeClient;
use kvdb_client::Kv;
use kvdb_node::replica::RaftFigures;
use tokio::time::Instant;

use super::cluster::{ChaosCluster, ChaosOptions};
use super::stale_read::{KEY, node_address, shard_of_key};
use super::{DEADLINE, init_tracing, wait_until};

/// Bound on each write in the scenario.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Filler value: with small logs, a few dozen of them make the new leader snapshot.
const FILLER: [u8; 1024] = [b'x'; 1024];

/// Runs the scenario on a fresh one-shard cluster whose replicas snapshot every 16 KiB of log
/// and keep 50 entries behind a snapshot. Returns how long the old leader took to acknowledge
/// a write once it led again, or the last error it gave.
pub async fn old_leader_writes_after_snapshot_catch_up() -> Result<Duration, String> {
    init_tracing();
    let options = ChaosOptions {
        shards: 1,
        short_log_tail: true,
        // Leadership moves only by this scenario's cuts: no scheduler, and no slow-leader
        // hand-over (an isolated leader's would name a successor through the coordinator).
        scheduler: false,
        slow_leader: None,
        ..ChaosOptions::default()
    };
    let cluster = ChaosCluster::start(options).await;
    let client = cluster.patient_client().await;
    client
        .put(KEY, b"first")
        .await
        .expect("a healthy shard takes a write");
    let shard = shard_of_key(&cluster).id;
    let old = cluster.elected_leader(shard).await;

    // --- the old leader, cut off, appends a write it cannot commit
    cluster.isolate(old);
    let before = figures(&cluster, old, shard).last_log_index;
    let old_address = node_address(&cluster, old);
    let pending = tokio::spawn(put_at(
        shard_of_key(&cluster),
        old_address.clone(),
        KEY,
        b"cut off",
    ));
    wait_until("the old leader to append the write", || {
        figures(&cluster, old, shard).last_log_index > before
    })
    .await;
    let pending_index = figures(&cluster, old, shard).last_log_index;
    let new = cluster.leader_other_than(old, shard).await;
    println!(
        "--- settled-proposal scenario: old leader node {old} holds index {pending_index}, new leader node {new}"
    );

    // --- the others' logs move past the pending entry and are purged behind snapshots
    let others: Vec<usize> = (0..cluster.node_count()).filter(|&i| i != old).collect();
    let deadline = Instant::now() + DEADLINE;
    while others
        .iter()
        .any(|&i| figures(&cluster, i, shard).purged_index <= pending_index)
    {
        assert!(
            Instant::now() < deadline,
            "the log was never purged past index {pending_index}: {:?}",
            others
                .iter()
                .map(|&i| figures(&cluster, i, shard))
                .collect::<Vec<_>>()
        );
        let Some(leader) = others.iter().find(|&&i| cluster.is_leader(i, shard)) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let address = node_address(&cluster, *leader);
        let _ = put_at(shard_of_key(&cluster), address, b"filler", &FILLER).await;
    }

    // --- back in touch, the old leader catches up from a snapshot
    cluster.partition.heal();
    let _ = pending.await;
    // Caught up means as long a log as the others': a voter refuses a candidate whose log is
    // shorter, so the old leader could not win the election below.
    let caught_up = || {
        let f = figures(&cluster, old, shard);
        let longest = others
            .iter()
            .map(|&i| figures(&cluster, i, shard).last_log_index)
            .max()
            .unwrap_or_default();
        f.snapshots_installed > 0 && f.applied_index > pending_index && f.last_log_index >= longest
    };
    wait_until("the old leader to catch up from a snapshot", &caught_up).await;

    // --- it leads again: the leader cut off and the third node's elections switched off, it
    // is the only candidate, and wins once the third node's lease on the old leader ran out.
    // The leader may append an entry between the catch-up and the cut that reaches the third
    // node only; the third node then refuses the old leader's shorter log, and the cut is
    // healed and made again.
    let deadline = Instant::now() + DEADLINE;
    while !cluster.is_leader(old, shard) {
        assert!(
            Instant::now() < deadline,
            "node {old} never led again:\n{}",
            cluster.raft_report_of(Some(shard))
        );
        cluster.partition.heal();
        for &i in &others {
            cluster.set_elections(i, shard, true);
        }
        wait_until("a leader, the old one caught up", || {
            cluster.leader_of(shard).is_some() && caught_up()
        })
        .await;
        let Some(leader) = cluster.leader_of(shard).filter(|&l| l != old) else {
            continue;
        };
        let third = others
            .iter()
            .copied()
            .find(|&i| i != leader)
            .expect("three nodes");
        for &i in &others {
            cluster.set_elections(i, shard, false);
        }
        cluster.isolate(leader);
        let electable = || {
            figures(&cluster, old, shard).last_log_index
                >= figures(&cluster, third, shard).last_log_index
        };
        while !cluster.is_leader(old, shard) && electable() && Instant::now() < deadline {
            cluster.trigger_election(old, shard).await;
            let campaign = Instant::now() + Duration::from_secs(2);
            while !cluster.is_leader(old, shard) && Instant::now() < campaign {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    cluster.partition.heal();
    for &i in &others {
        cluster.set_elections(i, shard, true);
    }

    // --- and takes writes
    let started = Instant::now();
    let result = loop {
        let error = match put_at(
            shard_of_key(&cluster),
            old_address.clone(),
            KEY,
            b"led again",
        )
        .await
        {
            Ok(()) => break Ok(started.elapsed()),
            Err(e) => e,
        };
        if started.elapsed() > 4 * WRITE_TIMEOUT {
            break Err(error);
        }
        if !cluster.is_leader(old, shard) {
            // Deposed meanwhile: not this scenario's question.
            break Ok(started.elapsed());
        }
    };
    println!("    old leader's write after catching up: {result:?}");
    cluster.shutdown().await;
    result
}

fn figures(cluster: &ChaosCluster, i: usize, shard: ShardId) -> RaftFigures {
    cluster
        .figures(i, shard)
        .expect("the node runs a replica of the shard")
}

/// One PUT sent straight to the node at `node`.
async fn put_at(
    shard: kvdb::core::ShardInfo,
    node: String,
    key: &[u8],
    value: &[u8],
) -> Result<(), String> {
    let request = pb::NodePutRequest {
        target: Some(pb::ShardTarget {
            shard_id: shard.id.0,
            epoch: shard.epoch.0,
        }),
        request: Some(pb::PutRequest {
            key: key.to_vec().into(),
            value: value.to_vec().into(),
            ..Default::default()
        }),
    };
    let call = async {
        let mut client = KvNodeClient::connect(format!("http://{node}"))
            .await
            .map_err(|e| e.to_string())?;
        client.put(request).await.map_err(|s| s.to_string())
    };
    match tokio::time::timeout(WRITE_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {WRITE_TIMEOUT:?}")),
    }
}
