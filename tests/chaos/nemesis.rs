//! The nemesis: named fault schedules over a [`ChaosCluster`].
//!
//! A schedule is a loop of cycles: inject one fault, hold it a few seconds
//! while the workload runs, heal it, then measure how long every shard takes
//! to accept a write again. Random choices (which shard, which node, how
//! long) come from the run's seed, so a printed seed names the schedule.
//!
//! Partitions cut node-to-node links only: clients keep reaching every node,
//! like clients on the minority side of a real partition, which is what lets
//! a deposed leader be asked for stale data. Leader transfers are not
//! injected: KvDB's SetShardLeader is only a best-effort transfer built on
//! openraft 0.9 elections (see kvdb-node's `transfer` module), so moving the
//! leader's replica away stands in for one.

use std::time::Duration;

use kvdb::core::{NodeId, NodeStatus, ShardId, ShardInfo, ShardMap, ShardState, Slot};
use kvdb_testkit::Fault;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::cluster::{ChaosCluster, Endpoint};
use super::{wait_until, wait_until_or_report};

/// A named fault schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Alternate: cut a shard leader's node off from its peers (clients
    /// still reach it), or cut the smart clients off it while another node
    /// is cut off from its peers (a partial partition).
    PartitionLeader,
    /// Alternate: split the nodes in two halves, or arrange them in a ring
    /// where each node sees only its neighbours (five nodes).
    SplitAndRing,
    /// Stop a node (a crash, data kept) and restart it.
    KillRestart,
    /// Stop the coordinator, and meanwhile crash and restart a node.
    CoordinatorDown,
    /// Move a shard's leader replica to the spare node while writes run.
    ReplicaMove,
    /// The scheduler at work: split a shard, then alternately drain a node
    /// while another is crashed, or crash a node long enough for its replicas
    /// to be replaced while a third is cut off from its peers; then bring
    /// everything back and let the scheduler rebalance onto it.
    DrainRepair,
    /// Split a shard at the slot of a workload key (so that keys change
    /// shards under load), every other time while a replica is crashed.
    Split,
    /// Let the scheduler split shards by their request rate (run with
    /// `ChaosOptions::auto_split`): each cycle waits for the next split.
    AutoSplit,
}

impl Schedule {
    /// Whether the schedule splits shards.
    pub fn splits(self) -> bool {
        matches!(
            self,
            Schedule::Split | Schedule::AutoSplit | Schedule::DrainRepair
        )
    }

    /// The schedule's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::PartitionLeader => "partition-leader",
            Schedule::SplitAndRing => "split-halves/majority-ring",
            Schedule::KillRestart => "kill-restart",
            Schedule::CoordinatorDown => "coordinator-down",
            Schedule::ReplicaMove => "replica-move-under-load",
            Schedule::DrainRepair => "drain-repair-split",
            Schedule::Split => "split",
            Schedule::AutoSplit => "auto-split",
        }
    }
}

/// How long a fault is held.
fn hold(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.random_range(2_000..4_000))
}

/// Injects one fault of `schedule`, holds it, and heals it. Returns a
/// description of what was done.
pub async fn cycle(
    schedule: Schedule,
    cluster: &mut ChaosCluster,
    rng: &mut StdRng,
    cycle: usize,
) -> String {
    let held = hold(rng);
    let done = match schedule {
        Schedule::PartitionLeader if cycle.is_multiple_of(2) => {
            let node = leader_or_any(cluster, rng);
            cut_nodes(cluster, |a, b| a == node || b == node);
            tokio::time::sleep(held).await;
            format!("isolated leader node {node} from its peers for {held:?}")
        }
        Schedule::PartitionLeader => {
            // A partial partition: the smart clients lose the leader
            // (connections reset) and turn to followers, one of which is
            // cut off from its peers; the gateway still reaches the leader.
            let node = leader_or_any(cluster, rng);
            let follower =
                first_follower(cluster, node).unwrap_or((node + 1) % cluster.node_count());
            cut_nodes(cluster, |a, b| a == follower || b == follower);
            let leader = Endpoint::Node(node);
            cluster.partition.set_where(Fault::Drop, |from, to| {
                *from == Endpoint::Clients && *to == leader
            });
            tokio::time::sleep(held).await;
            format!(
                "cut the smart clients off leader node {node} and node {follower} off its peers for {held:?}"
            )
        }
        Schedule::SplitAndRing => {
            let mut nodes: Vec<usize> = (0..cluster.node_count()).collect();
            nodes.shuffle(rng);
            let what = if cycle.is_multiple_of(2) {
                let (a, b) = nodes.split_at(nodes.len() / 2);
                cut_nodes(cluster, |x, y| a.contains(&x) != a.contains(&y));
                format!("split {a:?} | {b:?}")
            } else {
                let ring: Vec<Endpoint> = nodes.iter().map(|&n| Endpoint::Node(n)).collect();
                cluster.partition.ring(&ring);
                format!("ring {nodes:?}")
            };
            tokio::time::sleep(held).await;
            format!("{what} for {held:?}")
        }
        Schedule::KillRestart => {
            let node = leader_or_any(cluster, rng);
            cluster.stop_node(node).await;
            tokio::time::sleep(held).await;
            cluster.restart_node(node).await;
            format!("crashed node {node} for {held:?}")
        }
        Schedule::CoordinatorDown => {
            cluster.stop_coordinator().await;
            let node = rng.random_range(0..cluster.node_count());
            cluster.stop_node(node).await;
            tokio::time::sleep(held).await;
            // A node registers at start-up, so it needs the coordinator back.
            cluster.restart_coordinator().await;
            cluster.restart_node(node).await;
            format!("coordinator down, crashed node {node}, for {held:?}")
        }
        Schedule::ReplicaMove => move_leader_replica(cluster, rng).await,
        Schedule::DrainRepair => {
            let split = split_a_shard(cluster, rng).await;
            let what = drain_or_repair(cluster, rng, cycle).await;
            format!("{split}; {what}")
        }
        Schedule::Split => {
            let crashed = (cycle % 2 == 1).then(|| rng.random_range(0..cluster.node_count()));
            if let Some(node) = crashed {
                cluster.stop_node(node).await;
            }
            let split = split_a_shard(cluster, rng).await;
            let coordinator = cluster.coordinator().clone();
            wait_until("the split to settle", || {
                no_split_pending(&coordinator.map())
            })
            .await;
            if let Some(node) = crashed {
                tokio::time::sleep(held).await;
                cluster.restart_node(node).await;
                format!("{split} while node {node} was down")
            } else {
                split
            }
        }
        Schedule::AutoSplit => {
            let coordinator = cluster.coordinator().clone();
            let before = coordinator.map().shards.len();
            let deadline = tokio::time::Instant::now() + AUTO_SPLIT_WAIT;
            loop {
                let map = coordinator.map();
                if map.shards.len() > before && no_split_pending(&map) {
                    break format!(
                        "the scheduler split {before} shards into {}",
                        map.shards.len()
                    );
                }
                if tokio::time::Instant::now() > deadline {
                    break format!("no automatic split of {before} shards in {AUTO_SPLIT_WAIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    cluster.partition.heal();
    done
}

/// How long an auto-split cycle waits for the scheduler: past the cooldown after a split.
const AUTO_SPLIT_WAIT: Duration = Duration::from_secs(40);

/// The node leading a random shard, or a random node.
fn leader_or_any(cluster: &ChaosCluster, rng: &mut StdRng) -> usize {
    let shards = cluster
        .map()
        .map(|m| m.shards.keys().copied().collect::<Vec<_>>());
    let shard = shards.and_then(|s| s.choose(rng).copied());
    shard
        .and_then(|s| cluster.leader_of(s))
        .unwrap_or_else(|| rng.random_range(0..cluster.node_count()))
}

/// The first replica other than `leader` of a shard `leader` leads: the
/// one a smart client turns to when it cannot reach the leader.
fn first_follower(cluster: &ChaosCluster, leader: usize) -> Option<usize> {
    let map = cluster.map()?;
    let shard = map
        .shards
        .values()
        .find(|s| cluster.leader_of(s.id) == Some(leader))?;
    let id = cluster.id_of(leader);
    let follower = shard.replicas.iter().find(|r| **r != id)?;
    cluster.index_of(*follower)
}

/// Blackholes every node-to-node link between nodes `a` and `b` for which
/// `cut(a, b)` holds.
fn cut_nodes(cluster: &ChaosCluster, cut: impl Fn(usize, usize) -> bool) {
    cluster
        .partition
        .set_where(Fault::Blackhole, |from, to| match (from, to) {
            (Endpoint::Node(a), Endpoint::Node(b)) => cut(*a, *b),
            _ => false,
        });
}

/// One drain-repair cycle (see [`Schedule::DrainRepair`]). The scheduler
/// needs the coordinator, so it stays up; faults hit nodes and their links.
async fn drain_or_repair(cluster: &mut ChaosCluster, rng: &mut StdRng, cycle: usize) -> String {
    let mut nodes: Vec<usize> = (0..cluster.node_count()).collect();
    nodes.shuffle(rng);
    let coordinator = cluster.coordinator().clone();
    let what = if cycle.is_multiple_of(2) {
        let (drained, crashed) = (nodes[0], nodes[1]);
        let id = cluster.id_of(drained);
        // Refused when it would leave too few alive nodes: a fault the
        // cluster must also survive.
        let accepted = coordinator
            .set_node_status(id, NodeStatus::Draining)
            .await
            .is_ok();
        cluster.stop_node(crashed).await;
        let held = Duration::from_millis(rng.random_range(3_000..6_000));
        tokio::time::sleep(held).await;
        cluster.restart_node(crashed).await;
        let _ = coordinator.set_node_status(id, NodeStatus::Alive).await;
        format!(
            "drained node {drained} (accepted: {accepted}) while node {crashed} was down for {held:?}"
        )
    } else {
        let (crashed, isolated) = (nodes[0], nodes[1]);
        let id = cluster.id_of(crashed);
        cluster.stop_node(crashed).await;
        cut_nodes(cluster, |a, b| a == isolated || b == isolated);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.partition.heal();
        wait_until_or_report(
            "the crashed node's replicas to be replaced",
            || {
                let map = coordinator.map();
                map.shards.values().all(|s| !s.members().contains(&id))
            },
            || cluster.raft_report(),
        )
        .await;
        cluster.restart_node(crashed).await;
        format!("crashed node {crashed} until repaired, node {isolated} cut off for 2s")
    };
    wait_until_or_report(
        "the cluster to settle",
        || {
            let map = coordinator.map();
            map.nodes.values().all(|n| n.status == NodeStatus::Alive)
                && map.shards.values().all(|s| s.state == ShardState::Stable)
        },
        || cluster.raft_report(),
    )
    .await;
    what
}

/// Keys of the schedules that split: enough that every split moves some of them.
pub const SPLIT_KEYS: usize = 32;

/// Whether every split has settled (each new shard elected a leader).
fn no_split_pending(map: &ShardMap) -> bool {
    map.shards
        .values()
        .all(|s| !matches!(s.state, ShardState::Splitting { .. }))
}

/// Splits a random stable shard at the slot of one of the workload's keys it holds (or in
/// the middle when it holds none past its first slot), without waiting for the split to
/// settle. Refusals (the shard started moving meanwhile) are part of the schedule.
async fn split_a_shard(cluster: &ChaosCluster, rng: &mut StdRng) -> String {
    let Some(map) = cluster.map() else {
        return "no map to split".to_owned();
    };
    let splittable: Vec<&ShardInfo> = map
        .shards
        .values()
        .filter(|s| s.state == ShardState::Stable && s.slot_start < s.slot_end)
        .filter(|s| map.splitting_from(s.id).next().is_none())
        .collect();
    let Some(shard) = splittable.choose(rng) else {
        return "no shard to split".to_owned();
    };
    let key_slots: Vec<Slot> = super::workload::keys(SPLIT_KEYS)
        .iter()
        .map(|k| kvdb::core::slot::slot(k))
        .filter(|slot| shard.slot_start < *slot && *slot <= shard.slot_end)
        .collect();
    let at = key_slots.choose(rng).copied();
    let split = cluster
        .coordinator()
        .split_shard(shard.id, Some(shard.epoch), at)
        .await;
    match split {
        Ok(split) => format!(
            "split shard {} at slot {} into {}",
            shard.id, split.child.slot_start.0, split.child.id
        ),
        Err(e) => format!("split of shard {} refused: {e}", shard.id),
    }
}

/// Replaces a random shard's leader replica by a node outside its replica
/// set, and waits until the move completes.
async fn move_leader_replica(cluster: &mut ChaosCluster, rng: &mut StdRng) -> String {
    let map = cluster.map().expect("coordinator runs");
    let mut shards: Vec<ShardId> = map.shards.keys().copied().collect();
    shards.shuffle(rng);
    let shard = shards[0];
    let info = &map.shards[&shard];
    let leader = cluster
        .leader_of(shard)
        .map(|i| cluster.id_of(i))
        .or(info.leader)
        .unwrap_or(info.replicas[0]);
    let spare: Vec<NodeId> = (0..cluster.node_count())
        .map(|i| cluster.id_of(i))
        .filter(|id| !info.replicas.contains(id))
        .collect();
    let Some(&to) = spare.choose(rng) else {
        return "no spare node for a move".to_owned();
    };
    let replicas: Vec<NodeId> = info
        .replicas
        .iter()
        .map(|&r| if r == leader { to } else { r })
        .collect();
    cluster
        .coordinator()
        .set_shard_replicas(shard, Some(info.epoch), replicas.clone())
        .await
        .expect("move accepted");
    let coordinator = cluster.coordinator().clone();
    wait_until("the replica move to finish", || {
        let map = coordinator.map();
        let s = &map.shards[&shard];
        s.state == ShardState::Stable && s.replicas == replicas
    })
    .await;
    format!("moved shard {shard} from leader {leader} to {to}")
}
