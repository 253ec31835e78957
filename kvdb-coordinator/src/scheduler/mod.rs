//! The scheduler: the coordinator leader keeps the cluster repaired and
//! balanced by itself.
//!
//! Every `interval` the leader derives a plan ([`plan::plan`], pure) from the
//! replicated map and starts its operations as ordinary commands
//! (`SetShardReplicas`, `SetShardLeader`), each carrying the epoch it was
//! planned against. Nothing about a running operation lives only in memory:
//! a moving shard is `Moving` in the map, so a new leader re-derives the same
//! picture and resumes where the old one stopped. The shard's own Raft
//! leader carries out a move (learner first, then the membership change; see
//! the node's `reconfigure`).
//!
//! Two things are kept in the leader's memory only, and start fresh with a
//! new leadership: when each dead node was first seen dead (so a new leader
//! waits the full `repair_after` before replacing replicas, never less), and
//! the log of recently started operations shown by the Admin API.
//!
//! The pause switch is replicated (`Command::SetSchedulerPaused`), so it
//! survives leader changes and restarts.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvdb_core::{NodeId, NodeStatus, ShardMap};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::command::Command;
use crate::coordinator::Coordinator;
use crate::error::CoordinatorError;

pub mod plan;
#[cfg(test)]
mod tests;

pub use plan::{Limits, Load, Operation, OperationKind, Reason};

/// How many started operations the leader remembers for the Admin API.
const RECENT_OPERATIONS: usize = 256;

/// How the scheduler runs on the coordinator leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How often the leader plans.
    pub interval: Duration,
    /// How long a node stays dead before its replicas are replaced.
    pub repair_after: Duration,
    /// What one plan may start.
    pub limits: Limits,
}

impl SchedulerConfig {
    /// Default [`interval`](Self::interval).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default [`repair_after`](Self::repair_after).
    pub const DEFAULT_REPAIR_AFTER: Duration = Duration::from_secs(30);
    /// Default [`Limits::max_moves`].
    pub const DEFAULT_MAX_MOVES: usize = 4;
    /// Default [`Limits::max_leader_transfers`].
    pub const DEFAULT_MAX_LEADER_TRANSFERS: usize = 8;
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            interval: Self::DEFAULT_INTERVAL,
            repair_after: Self::DEFAULT_REPAIR_AFTER,
            limits: Limits {
                max_moves: Self::DEFAULT_MAX_MOVES,
                max_leader_transfers: Self::DEFAULT_MAX_LEADER_TRANSFERS,
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
}

#[derive(Debug, Default)]
struct Memory {
    /// The Raft term the clocks belong to.
    term: Option<u64>,
    /// When this leadership first saw each node dead.
    dead_since: HashMap<NodeId, Instant>,
    recent: VecDeque<StartedOperation>,
}

impl SchedulerMemory {
    /// The dead nodes of `map` whose replicas may be replaced at `now`:
    /// seen dead by this leadership (`term`) for at least `repair_after`.
    pub(crate) fn repairable(
        &self,
        map: &ShardMap,
        term: u64,
        now: Instant,
        repair_after: Duration,
    ) -> BTreeSet<NodeId> {
        let mut memory = self.lock();
        if memory.term != Some(term) {
            memory.term = Some(term);
            memory.dead_since.clear();
        }
        memory
            .dead_since
            .retain(|node, _| map.nodes.get(node).map(|n| n.status) == Some(NodeStatus::Dead));
        for node in map.nodes.values() {
            if node.status == NodeStatus::Dead {
                memory.dead_since.entry(node.id).or_insert(now);
            }
        }
        memory
            .dead_since
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= repair_after)
            .map(|(node, _)| *node)
            .collect()
    }

    fn record(&self, operation: Operation, error: Option<String>) {
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
        let repairable = memory.repairable(&map, term, Instant::now(), config.repair_after);
        for operation in plan::plan(&map, &repairable, config.limits) {
            let result = coordinator.execute(command(&operation)).await;
            let error = match result {
                Ok(_) => {
                    tracing::info!(?operation, "scheduler started an operation");
                    None
                }
                // The map moved on since the plan: the next round replans.
                Err(e @ CoordinatorError::EpochMismatch { .. }) => Some(e.to_string()),
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
