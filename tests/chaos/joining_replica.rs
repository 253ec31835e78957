//! A targeted scenario for replicas that join a shard: EVENTUAL reads sent straight to a
//! replica a move has created but not yet caught up.
//!
//! The new replica exists as soon as the map names its node in the move's target, and it is in
//! the clients' routes as soon as the move commits, whether or not it has applied what it was
//! sent. An EVENTUAL read may be stale, but never older than the replica's joining: "not found"
//! for a key written before the move is wrong. The scenario cuts the joining node's Raft links
//! so that its replica stays empty, reads from it, then heals and reads again until it caught
//! up.
//!
//! Out of scope: lag after the joining (any replica may lag; that is what EVENTUAL allows).

use kvdb::core::NodeId;
use kvdb::core::error::{KvError, RoutingError};
use kvdb::core::proto::v1 as pb;
use kvdb_client::Kv;
use tokio::time::Instant;

use super::cluster::{ChaosCluster, ChaosOptions};
use super::stale_read::{KEY, get, node_address, shard_of_key};
use super::{DEADLINE, init_tracing, wait_until};

/// What the joining replica answered to EVENTUAL reads of a key written before the move.
#[derive(Debug, Default)]
pub struct JoiningReport {
    /// Answers while the replica was cut off and empty: refusals with NOT_LEADER, or
    /// what it served (`None` for "not found").
    pub while_cut_off: Vec<Result<Option<Vec<u8>>, String>>,
    /// Whether the replica served the written value once healed, within the deadline.
    pub caught_up: bool,
    /// Values it served after the heal other than the written one (`None` for "not found").
    pub wrong_after_heal: Vec<Option<Vec<u8>>>,
}

/// Runs the scenario on a fresh four-node, one-shard cluster without the scheduler.
pub async fn eventual_reads_on_a_joining_replica() -> JoiningReport {
    init_tracing();
    let options = ChaosOptions {
        nodes: 4,
        shards: 1,
        scheduler: false,
        slow_leader: None,
        ..ChaosOptions::default()
    };
    let cluster = ChaosCluster::start(options).await;
    let client = cluster.patient_client().await;
    let written = b"before-the-move".to_vec();
    client.put(KEY, &written).await.expect("the write");

    let shard = shard_of_key(&cluster);
    let spare = (0..cluster.node_count())
        .find(|&i| !shard.replicas.contains(&cluster.id_of(i)))
        .expect("a node without the shard");
    let leader = cluster.elected_leader(shard.id).await;
    let leaving = shard
        .replicas
        .iter()
        .copied()
        .find(|&n| n != cluster.id_of(leader))
        .expect("a follower");
    let target: Vec<NodeId> = shard
        .replicas
        .iter()
        .map(|&n| {
            if n == leaving {
                cluster.id_of(spare)
            } else {
                n
            }
        })
        .collect();
    println!("--- joining-replica scenario: node {spare} joins, cut off, replacing {leaving}");
    cluster.isolate(spare);
    cluster
        .coordinator()
        .set_shard_replicas(shard.id, Some(shard.epoch), target)
        .await
        .expect("the move starts");
    wait_until("the joining node to open its replica", || {
        cluster.figures(spare, shard.id).is_some()
    })
    .await;

    let node = node_address(&cluster, spare);
    let mut report = JoiningReport::default();
    for _ in 0..3 {
        let answer = match get(&cluster, &node, pb::Consistency::Eventual).await {
            Ok(seen) => Ok(seen.map(|(value, _)| value)),
            Err(KvError::Routing(RoutingError::NotLeader { .. })) => Err("NOT_LEADER".into()),
            Err(other) => Err(other.to_string()),
        };
        report.while_cut_off.push(answer);
    }

    cluster.partition.heal();
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline && !report.caught_up {
        match get(&cluster, &node, pb::Consistency::Eventual).await {
            Ok(Some((value, _))) if value == written => report.caught_up = true,
            Ok(seen) => report.wrong_after_heal.push(seen.map(|(value, _)| value)),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    println!("    {report:?}");
    cluster.shutdown().await;
    report
}
