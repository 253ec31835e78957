//! Shard commands: replica moves, leader transfers, and the reports with
//! which shard leaders settle them.
//!
//! A move is two steps. `SetShardReplicas` bumps the epoch and marks the
//! shard `Moving { target }`, keeping `replicas` as the committed set that
//! still serves. The shard's leader changes its Raft membership and then
//! `ReportShardConfig`s the new set for the same epoch, which makes the shard
//! `Stable` on the target. Leader changes never bump the epoch.
//!
//! A leader report is accepted for the current epoch with a newer term, or
//! with the same term when it names a leader other than the map's (only that
//! term's real leader can send it: the map then heals after a transfer that
//! did not happen). The first report of a shard being split off another one
//! (see the `split` module) also settles it: its group exists once it has a leader.
//!
//! While a split is unsettled, neither of its shards may change replicas: the
//! new shard's group is built by the parent's replicas, as they were at the split.

use kvdb_core::{Epoch, NodeId, NodeStatus, ShardId, ShardInfo, ShardState};

use super::{Change, MetaState};
use crate::command::{CommandResult, Outcome};
use crate::error::{BusyReason, CoordinatorError};

impl MetaState {
    pub(super) fn shard(&self, id: ShardId) -> Result<&ShardInfo, CoordinatorError> {
        self.map
            .shards
            .get(&id)
            .ok_or(CoordinatorError::ShardNotFound(id))
    }

    /// The split `shard` takes part in and that has not settled: it is being split off
    /// another shard, or a shard is being split off it.
    pub(super) fn unsettled_split(&self, shard: &ShardInfo) -> Option<BusyReason> {
        if let ShardState::Splitting { from } = shard.state {
            return Some(BusyReason::Splitting { from });
        }
        let child = self.map.splitting_from(shard.id).next()?;
        Some(BusyReason::SplitChild { child: child.id })
    }

    fn commit_shard(&mut self, shard: ShardInfo) -> CommandResult {
        let version = self.commit(Change {
            nodes: Vec::new(),
            shards: vec![shard.clone()],
        });
        Ok(Outcome::Shard { shard, version })
    }

    pub(super) fn set_shard_replicas(
        &mut self,
        id: ShardId,
        epoch: Option<Epoch>,
        replicas: Vec<NodeId>,
    ) -> CommandResult {
        let shard = self.shard(id)?;
        check_epoch(shard, epoch)?;
        if let Some(reason) = self.unsettled_split(shard) {
            return Err(CoordinatorError::ShardBusy { shard: id, reason });
        }
        let replication_factor = self.init.map_or(1, |i| i.replication_factor) as usize;
        if replicas.len() < replication_factor {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a shard needs at least {replication_factor} replicas (the replication factor), got {}",
                replicas.len()
            )));
        }
        for (i, node) in replicas.iter().enumerate() {
            if replicas[..i].contains(node) {
                return Err(CoordinatorError::InvalidArgument(format!(
                    "node {node} is listed twice"
                )));
            }
            let info = self
                .map
                .nodes
                .get(node)
                .ok_or_else(|| CoordinatorError::NodeNotFound(node.to_string()))?;
            let added = !shard.replicas.contains(node);
            if added && info.status != NodeStatus::Alive {
                return Err(CoordinatorError::NodeNotAssignable {
                    node: *node,
                    status: info.status,
                });
            }
        }
        if shard.state == ShardState::Stable && same_set(&shard.replicas, &replicas) {
            return Ok(Outcome::Shard {
                shard: shard.clone(),
                version: self.version(),
            });
        }
        let moved = ShardInfo {
            epoch: shard.epoch.next(),
            state: ShardState::Moving { target: replicas },
            ..shard.clone()
        };
        self.commit_shard(moved)
    }

    pub(super) fn set_shard_leader(
        &mut self,
        id: ShardId,
        epoch: Epoch,
        node: NodeId,
    ) -> CommandResult {
        let shard = self.shard(id)?;
        check_epoch(shard, Some(epoch))?;
        // The new group elects its first leader by itself; the map names none to hand over from.
        if let ShardState::Splitting { from } = shard.state {
            let reason = BusyReason::Splitting { from };
            return Err(CoordinatorError::ShardBusy { shard: id, reason });
        }
        if !self.map.nodes.contains_key(&node) {
            return Err(CoordinatorError::NodeNotFound(node.to_string()));
        }
        if !shard.replicas.contains(&node) {
            return Err(CoordinatorError::InvalidArgument(format!(
                "node {node} is not a replica of shard {id}"
            )));
        }
        if shard.leader == Some(node) {
            return Ok(Outcome::Version(self.version()));
        }
        // The map now names the desired leader; the shard's current leader
        // sees it and hands over (best effort, see the node's `transfer`
        // module). `leader_term` is kept, so the new leader's report (a
        // higher term) is accepted, stale ones are not, and the old leader
        // can reclaim the entry with its own term if the transfer fails.
        let shard = ShardInfo {
            leader: Some(node),
            ..shard.clone()
        };
        let version = self.commit_shard(shard)?.version();
        Ok(Outcome::Version(version))
    }

    pub(super) fn report_shard_leader(
        &mut self,
        id: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> CommandResult {
        let shard = self.shard(id)?;
        let version = self.version();
        if shard.epoch == epoch && shard.leader == Some(leader) && shard.leader_term == term {
            // The same report again (a retry): accepted, nothing changes.
            return Ok(Outcome::Report {
                accepted: true,
                version,
            });
        }
        // A newer term always wins. The same term is accepted too when it
        // names another leader: Raft elects one leader per term, so such a
        // report can only come from that term's real leader, and the map's
        // `leader` was set by a `SetShardLeader` that has not (yet) happened.
        // This is how the map heals after a transfer that did not take place.
        if shard.epoch != epoch || term < shard.leader_term || !shard.members().contains(&leader) {
            return Ok(Outcome::Report {
                accepted: false,
                version,
            });
        }
        let state = match &shard.state {
            // A group split off another exists once it has a leader: the split is done.
            ShardState::Splitting { .. } => ShardState::Stable,
            other => other.clone(),
        };
        let shard = ShardInfo {
            leader: Some(leader),
            leader_term: term,
            state,
            ..shard.clone()
        };
        let version = self.commit_shard(shard)?.version();
        Ok(Outcome::Report {
            accepted: true,
            version,
        })
    }

    pub(super) fn report_shard_config(
        &mut self,
        id: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    ) -> CommandResult {
        let shard = self.shard(id)?;
        let version = self.version();
        let rejected = Ok(Outcome::Report {
            accepted: false,
            version,
        });
        if shard.epoch != epoch {
            return rejected;
        }
        let target = match &shard.state {
            ShardState::Moving { target } if same_set(target, &replicas) => target.clone(),
            ShardState::Moving { .. } => return rejected,
            // Already settled on this set: a retried report.
            ShardState::Stable if same_set(&shard.replicas, &replicas) => {
                return Ok(Outcome::Report {
                    accepted: true,
                    version,
                });
            }
            ShardState::Stable | ShardState::Splitting { .. } => return rejected,
        };
        let leader = shard.leader.filter(|l| target.contains(l));
        let shard = ShardInfo {
            replicas: target,
            leader,
            state: ShardState::Stable,
            ..shard.clone()
        };
        let version = self.commit_shard(shard)?.version();
        Ok(Outcome::Report {
            accepted: true,
            version,
        })
    }
}

pub(super) fn check_epoch(
    shard: &ShardInfo,
    expected: Option<Epoch>,
) -> Result<(), CoordinatorError> {
    match expected {
        Some(expected) if expected != shard.epoch => Err(CoordinatorError::EpochMismatch {
            shard: shard.id,
            expected,
            current: shard.epoch,
        }),
        _ => Ok(()),
    }
}

fn same_set(a: &[NodeId], b: &[NodeId]) -> bool {
    a.len() == b.len() && a.iter().all(|n| b.contains(n)) && b.iter().all(|n| a.contains(n))
}
