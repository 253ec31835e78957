//! The scheduler: the coordinator leader keeps the cluster repaired and
//! balanced by itself.
//!
//! Every `interval` the leader derives a plan ([`plan::plan`], pure) from the
//! replicated map and starts its operations as ordinary commands
//! (`SetShardReplicas`, `SetShardLeader`, `SplitShard`), each carrying the
//! epoch it was planned against. Nothing about a running operation lives only
//! in memory: a moving shard is `Moving` in the map (a splitting one
//! `Splitting`), so a new leader re-derives the same picture and resumes where
//! the old one stopped. The shard's own Raft
//! leader carries out a move (learner first, then the membership change; see
//! the node's `reconfigure`).
//!
//! A few things are kept in the leader's memory only, and start fresh with a
//! new leadership: when each dead node was first seen dead (so a new leader
//! waits the full `repair_after` before replacing replicas, never less), the
//! leader transfers it started (a shard whose leadership it moved is left
//! alone by balancing for [`SHARD_COOLDOWN`]; a node a transfer failed to
//! reach gets no balancing work for [`UNFIT_FOR`]: its peers may not hear
//! it, and each failed transfer stalls the shard's writes for a moment), the
//! shards it split (neither half is split again for [`SHARD_COOLDOWN`]: the
//! figures the split was planned from describe the whole old range until the
//! leaders report again), and the log of recently started operations shown by
//! the Admin API. The figures splits are planned from (keys, request rates)
//! are the leader's memory too: the [`ShardStatsBook`] heartbeats fill.
//!
//! The pause switch is replicated (`Command::SetSchedulerPaused`), so it
//! survives leader changes and restarts.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvdb_core::{Epoch, NodeId, NodeStatus, ShardId, ShardInfo, ShardMap, ShardState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::command::{Command, Outcome};
use crate::coordinator::Coordinator;
use crate::error::CoordinatorError;
use crate::shard_stats::ShardStatsBook;

pub mod plan;
#[cfg(test)]
mod tests;

pub use plan::{Limits, Load, Operation, OperationKind, Reason, Recent};

/// How many started operations the leader remembers for the Admin API.
const RECENT_OPERATIONS: usize = 256;
/// How long balancing leaves a shard's leadership alone after moving it, and
/// how long both halves of a split are left unsplit.
pub const SHARD_COOLDOWN: Duration = Duration::from_secs(30);
/// How long after a transfer the new leader must have reported itself.
const TRANSFER_GRACE: Duration = Duration::from_secs(5);
/// How long a node a transfer failed to reach gets no balancing work.
pub const UNFIT_FOR: Duration = Duration::from_secs(20);
/// How long no shard may have changed leader, and no node status, before
/// leaderships are balanced: right after a failover or a restart the
/// cluster is still settling, and each balancing transfer stalls a shard.
pub const LEADER_SETTLE: Duration = Duration::from_secs(10);

/// How the scheduler runs on the coordinator leader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerConfig {
    /// How often the leader plans.
    pub interval: Duration,
    /// How long a node stays dead before its replicas are replaced.
    pub repair_after: Duration,
    /// How long a move may run before its new replica is placed elsewhere.
    pub move_timeout: Duration,
    /// What one plan may start.
    pub limits: Limits,
}

impl SchedulerConfig {
    /// Default [`interval`](Self::interval).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default [`repair_after`](Self::repair_after).
    pub const DEFAULT_REPAIR_AFTER: Duration = Duration::from_secs(30);
    /// Default [`move_timeout`](Self::move_timeout): room for a large snapshot.
    pub const DEFAULT_MOVE_TIMEOUT: Duration = Duration::from_secs(600);
    /// Default [`Limits::max_moves`].
    pub const DEFAULT_MAX_MOVES: usize = 4;
    /// Default [`Limits::max_leader_transfers`].
    pub const DEFAULT_MAX_LEADER_TRANSFERS: usize = 8;
    /// Default [`Limits::split_keys`]: a million keys, a shard whose snapshot
    /// (sent whole to a new replica) is still quick to move.
    pub const DEFAULT_SPLIT_KEYS: Option<u64> = Some(1_000_000);
    /// Default [`Limits::split_rate`]: off, since the rate a shard can take
    /// depends on the hardware and the request mix.
    pub const DEFAULT_SPLIT_RATE: Option<f64> = None;
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            interval: Self::DEFAULT_INTERVAL,
            repair_after: Self::DEFAULT_REPAIR_AFTER,
            move_timeout: Self::DEFAULT_MOVE_TIMEOUT,
            limits: Limits {
                max_moves: Self::DEFAULT_MAX_MOVES,
                max_leader_transfers: Self::DEFAULT_MAX_LEADER_TRANSFERS,
                split_keys: Self::DEFAULT_SPLIT_KEYS,
                split_rate: Self::DEFAULT_SPLIT_RATE,
            },
        }
    }
}

/// An operation the leader started, as the Admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedOperation {
    /// When it was started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// The operation.
    #[serde(flatten)]
    pub operation: Operation,
    /// `None` when the command was accepted; the refusal otherwise.
    pub error: Option<String>,
}

/// The leader's in-memory part of the scheduler.
#[derive(Debug, Default)]
pub(crate) struct SchedulerMemory {
    inner: Mutex<Memory>,
    /// Operations started since this member started, by kind and outcome, for its metrics.
    pub(crate) started_total: OperationCounts,
}

/// Counts of started operations by `(kind, outcome)` labels.
pub(crate) type OperationCounts = kvdb_core::metrics::client::metrics::family::Family<
    [(&'static str, &'static str); 2],
    kvdb_core::metrics::client::metrics::counter::Counter,
>;

#[derive(Debug, Default)]
struct Memory {
    /// The Raft term the clocks belong to.
    term: Option<u64>,
    /// When this leadership first saw each node dead.
    dead_since: HashMap<NodeId, Instant>,
    /// Leader transfers this leadership started, by shard.
    transfers: HashMap<ShardId, Transfer>,
    /// When this leadership split each shard, or made it by a split.
    splits: HashMap<ShardId, Instant>,
    /// Nodes a transfer failed to reach, and until when they are skipped.
    unfit_until: HashMap<NodeId, Instant>,
    /// When this leadership first saw each moving shard moving, by the
    /// move's epoch.
    moving_since: HashMap<(ShardId, Epoch), Instant>,
    /// Every shard's leader and term and every node's status at the last
    /// look, and since when they have been so.
    calm_since: Option<(CalmState, Instant)>,
    recent: VecDeque<StartedOperation>,
}

/// A leader transfer the scheduler started.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    to: NodeId,
    /// The shard's leader term when it started.
    term_before: u64,
    at: Instant,
    /// Whether it has been judged (taken, or its target marked unfit).
    judged: bool,
}

impl SchedulerMemory {
    /// What this leadership (`term`) remembers at `now` that the map does
    /// not say, with the shards' figures from `stats`; see [`Recent`].
    pub(crate) fn recent_facts(
        &self,
        map: &ShardMap,
        term: u64,
        now: Instant,
        config: &SchedulerConfig,
        stats: &ShardStatsBook,
    ) -> Recent {
        let mut memory = self.lock();
        if memory.term != Some(term) {
            *memory = Memory {
                term: Some(term),
                recent: std::mem::take(&mut memory.recent),
                ..Memory::default()
            };
        }
        let memory = &mut *memory;
        memory
            .dead_since
            .retain(|node, _| map.nodes.get(node).map(|n| n.status) == Some(NodeStatus::Dead));
        for node in map.nodes.values() {
            if node.status == NodeStatus::Dead {
                memory.dead_since.entry(node.id).or_insert(now);
            }
        }
        // A transfer took when the target reported itself leader in a newer
        // term; one that has not within the grace period marks its target once.
        for (shard, transfer) in memory.transfers.iter_mut().filter(|(_, t)| !t.judged) {
            let took = map.shards.get(shard).is_some_and(|i| {
                i.leader == Some(transfer.to) && i.leader_term > transfer.term_before
            });
            if took {
                transfer.judged = true;
            } else if now.saturating_duration_since(transfer.at) >= TRANSFER_GRACE {
                transfer.judged = true;
                memory.unfit_until.insert(transfer.to, now + UNFIT_FOR);
            }
        }
        memory
            .transfers
            .retain(|_, t| now.saturating_duration_since(t.at) < SHARD_COOLDOWN);
        memory
            .splits
            .retain(|_, at| now.saturating_duration_since(*at) < SHARD_COOLDOWN);
        let moving: Vec<(ShardId, Epoch)> = map
            .shards
            .values()
            .filter(|s| matches!(s.state, ShardState::Moving { .. }))
            .map(|s| (s.id, s.epoch))
            .collect();
        memory.moving_since.retain(|key, _| moving.contains(key));
        let mut stuck = BTreeSet::new();
        for key in moving {
            let since = *memory.moving_since.entry(key).or_insert(now);
            if now.saturating_duration_since(since) >= config.move_timeout {
                stuck.insert(key.0);
            }
        }
        memory.unfit_until.retain(|_, until| *until > now);
        let state = calm_state(map);
        let since = match memory.calm_since.take() {
            Some((old, since)) if old == state => since,
            _ => now,
        };
        memory.calm_since = Some((state, since));
        Recent {
            calm: now.saturating_duration_since(since) >= LEADER_SETTLE,
            repairable: memory
                .dead_since
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) >= config.repair_after)
                .map(|(node, _)| *node)
                .collect(),
            cooling: memory.transfers.keys().copied().collect(),
            unfit: memory.unfit_until.keys().copied().collect(),
            stuck,
            loads: stats.loads(now),
            recently_split: memory.splits.keys().copied().collect(),
        }
    }

    /// Notes what `operation`, planned from `map`, started at `now`, as the
    /// command's `outcome` says.
    fn started(&self, map: &ShardMap, operation: &Operation, outcome: &Outcome, now: Instant) {
        match (&operation.kind, outcome) {
            (OperationKind::TransferLeader { to, .. }, _) => {
                if let Some(shard) = map.shards.get(&operation.shard) {
                    self.transferred(shard, *to, now);
                }
            }
            (OperationKind::MoveReplica { from, .. }, _) if operation.reason == Reason::Stuck => {
                self.unfit(*from, now);
            }
            (OperationKind::Split { .. }, Outcome::Split { parent, child, .. }) => {
                let mut memory = self.lock();
                memory.splits.insert(parent.id, now);
                memory.splits.insert(child.id, now);
            }
            _ => {}
        }
    }

    /// Notes that `node` failed to take a replica or leadership at `now`.
    fn unfit(&self, node: NodeId, now: Instant) {
        self.lock().unfit_until.insert(node, now + UNFIT_FOR);
    }

    /// Notes a transfer of `shard`'s leadership to `to` started at `now`.
    fn transferred(&self, shard: &ShardInfo, to: NodeId, now: Instant) {
        let transfer = Transfer {
            to,
            term_before: shard.leader_term,
            at: now,
            judged: false,
        };
        self.lock().transfers.insert(shard.id, transfer);
    }

    fn record(&self, operation: Operation, error: Option<String>) {
        let kind = match operation.kind {
            OperationKind::MoveReplica { .. } => "move_replica",
            OperationKind::TransferLeader { .. } => "transfer_leader",
            OperationKind::Split { .. } => "split",
        };
        let outcome = if error.is_some() { "failed" } else { "started" };
        self.started_total
            .get_or_create(&[("kind", kind), ("outcome", outcome)])
            .inc();
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut memory = self.lock();
        if memory.recent.len() == RECENT_OPERATIONS {
            memory.recent.pop_front();
        }
        memory.recent.push_back(StartedOperation {
            started_at_ms,
            operation,
            error,
        });
    }

    /// The operations this member started while leading, newest first.
    pub(crate) fn recent(&self) -> Vec<StartedOperation> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What must stay unchanged for the cluster to count as calm: each shard's
/// `(id, leader, term)` and each node's `(MAX, id, status)`.
type CalmState = Vec<(u64, u64, u64)>;

fn calm_state(map: &ShardMap) -> CalmState {
    let shards = map
        .shards
        .values()
        .map(|s| (s.id.0, s.leader.map_or(0, |l| l.0), s.leader_term));
    let nodes = map
        .nodes
        .values()
        .map(|n| (u64::MAX, n.id.0, n.status as u64));
    shards.chain(nodes).collect()
}

/// The command that starts `operation`.
pub fn command(operation: &Operation) -> Command {
    match &operation.kind {
        OperationKind::MoveReplica { replicas, .. } => Command::SetShardReplicas {
            shard: operation.shard,
            epoch: Some(operation.epoch),
            replicas: replicas.clone(),
        },
        OperationKind::TransferLeader { to, .. } => Command::SetShardLeader {
            shard: operation.shard,
            epoch: operation.epoch,
            node: *to,
        },
        OperationKind::Split { at } => Command::SplitShard {
            shard: operation.shard,
            epoch: Some(operation.epoch),
            at: Some(*at),
        },
    }
}

/// The leader-side loop: every `config.interval`, while this member leads,
/// the map is initialized and the scheduler is not paused, starts what the
/// plan says. Ends when `stop` turns true.
pub(crate) async fn run(
    coordinator: Coordinator,
    config: SchedulerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if !coordinator.is_leader() || coordinator.scheduler_paused() {
            continue;
        }
        let map = coordinator.map();
        if !map.is_initialized() {
            continue;
        }
        let term = coordinator.raft_metrics().borrow().current_term;
        let memory = coordinator.scheduler_memory();
        let stats = coordinator.shard_stats();
        let recent = memory.recent_facts(&map, term, Instant::now(), &config, stats);
        for operation in plan::plan(&map, &recent, config.limits) {
            let result = coordinator.execute(command(&operation)).await;
            let error = match result {
                Ok(outcome) => {
                    tracing::info!(?operation, "scheduler started an operation");
                    memory.started(&map, &operation, &outcome, Instant::now());
                    None
                }
                // The map moved on since the plan: the next round replans.
                Err(
                    e @ (CoordinatorError::EpochMismatch { .. }
                    | CoordinatorError::ShardBusy { .. }),
                ) => Some(e.to_string()),
                Err(e) => {
                    tracing::warn!(?operation, error = %e, "scheduler operation refused");
                    Some(e.to_string())
                }
            };
            let stop_round = error.is_some();
            memory.record(operation, error);
            if stop_round {
                break;
            }
        }
    }
}
