//! The typed operations of [`Coordinator`]: one method per command, plus
//! heartbeats (which are not commands).

use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo, Slot};
use serde::Serialize;
use tokio::time::Instant;

use super::Coordinator;
use crate::command::{Command, Outcome};
use crate::error::CoordinatorError;
use crate::forward;
use crate::liveness;

/// The answer to a shard leader's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    /// False when the report was stale (old epoch or term) and ignored.
    pub accepted: bool,
    /// The map version after the report.
    pub map_version: MapVersion,
}

/// Both halves of a split, as the command wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardSplit {
    /// The shard that was split: its narrowed range and next epoch.
    pub parent: ShardInfo,
    /// The new shard, `Splitting` until its first leader reports.
    pub child: ShardInfo,
    /// The map version that holds both.
    pub map_version: MapVersion,
}

/// A split point as the APIs carry it (gRPC `uint32`, JSON number), as a slot. A number
/// no slot has is refused here; one outside the shard, when the command is applied.
pub(crate) fn split_point(shard: ShardId, at: u32) -> Result<Slot, CoordinatorError> {
    u16::try_from(at).map(Slot).map_err(|_| {
        CoordinatorError::InvalidArgument(format!(
            "slot {at} is not a slot (0..{}), so it cannot split shard {shard}",
            kvdb_core::SLOT_COUNT
        ))
    })
}

fn unexpected(outcome: Outcome) -> CoordinatorError {
    CoordinatorError::Internal(format!("unexpected command outcome {outcome:?}"))
}

impl Coordinator {
    /// Registers a storage node, or updates the address and zone of the node
    /// registered under `name`. Returns the node with its assigned id.
    pub async fn register_node(
        &self,
        name: String,
        address: String,
        zone: String,
    ) -> Result<NodeInfo, CoordinatorError> {
        let command = Command::RegisterNode {
            name,
            address,
            zone,
        };
        match self.execute(command).await? {
            Outcome::Node { node, .. } => Ok(node),
            other => Err(unexpected(other)),
        }
    }

    /// Creates the shards (once). Repeating it with the same parameters is a
    /// no-op; other parameters are `AlreadyInitialized`.
    pub async fn init_shards(
        &self,
        num_shards: u32,
        replication_factor: u32,
    ) -> Result<MapVersion, CoordinatorError> {
        let command = Command::InitShards {
            num_shards,
            replication_factor,
        };
        Ok(self.execute(command).await?.version())
    }

    /// Sets a node's status.
    pub async fn set_node_status(
        &self,
        node: NodeId,
        status: NodeStatus,
    ) -> Result<MapVersion, CoordinatorError> {
        let command = Command::SetNodeStatus { node, status };
        Ok(self.execute(command).await?.version())
    }

    /// Starts moving a shard to `replicas`. `epoch`, when given, must be the
    /// shard's current epoch. Returns the shard, now moving (or unchanged
    /// when `replicas` is already its stable set).
    pub async fn set_shard_replicas(
        &self,
        shard: ShardId,
        epoch: Option<Epoch>,
        replicas: Vec<NodeId>,
    ) -> Result<ShardInfo, CoordinatorError> {
        let command = Command::SetShardReplicas {
            shard,
            epoch,
            replicas,
        };
        match self.execute(command).await? {
            Outcome::Shard { shard, .. } => Ok(shard),
            other => Err(unexpected(other)),
        }
    }

    /// Splits `shard` at slot `at` (the middle of its range when `None`): it keeps the
    /// slots below `at`, and a new shard on the same replicas takes the rest. `epoch`, when
    /// given, must be the shard's current epoch. The new shard is `Splitting` until its
    /// first leader reports; see [`crate::command::Command::SplitShard`].
    pub async fn split_shard(
        &self,
        shard: ShardId,
        epoch: Option<Epoch>,
        at: Option<Slot>,
    ) -> Result<ShardSplit, CoordinatorError> {
        let command = Command::SplitShard { shard, epoch, at };
        match self.execute(command).await? {
            Outcome::Split {
                parent,
                child,
                version,
            } => Ok(ShardSplit {
                parent,
                child,
                map_version: version,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Pauses (`true`) or resumes the scheduler, for every member and
    /// across restarts. Moves already started finish.
    pub async fn set_scheduler_paused(&self, paused: bool) -> Result<(), CoordinatorError> {
        self.execute(Command::SetSchedulerPaused { paused }).await?;
        Ok(())
    }

    /// Asks the shard's leader to hand leadership to `node`, a replica.
    pub async fn set_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        node: NodeId,
    ) -> Result<MapVersion, CoordinatorError> {
        let command = Command::SetShardLeader { shard, epoch, node };
        Ok(self.execute(command).await?.version())
    }

    /// A shard leader reports itself; accepted for the current epoch and a
    /// newer term only.
    pub async fn report_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> Result<Report, CoordinatorError> {
        let command = Command::ReportShardLeader {
            shard,
            epoch,
            leader,
            term,
        };
        report(self.execute(command).await?)
    }

    /// A shard leader reports the replica set of a move committed; accepted
    /// for the current epoch and the move's target set only.
    pub async fn report_shard_config(
        &self,
        shard: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    ) -> Result<Report, CoordinatorError> {
        let command = Command::ReportShardConfig {
            shard,
            epoch,
            replicas,
        };
        report(self.execute(command).await?)
    }

    /// A storage node's heartbeat. Kept in the leader's memory (a follower
    /// relays it); brings a suspect or dead node back to alive. Returns the
    /// map version, so the node can tell whether its map is current.
    pub async fn heartbeat(
        &self,
        node: NodeId,
        stats: &[ShardStats],
    ) -> Result<MapVersion, CoordinatorError> {
        if !self.is_leader() {
            if !self.forwards() {
                return Err(self.not_leader());
            }
            let leader = self.leader();
            let Some(addr) = leader
                .grpc_address
                .filter(|_| leader.id != Some(self.config().id))
            else {
                return Err(self.not_leader());
            };
            let channel = self.channel(&openraft::BasicNode::new(addr))?;
            return forward::heartbeat(channel, node, stats).await;
        }
        let map = self.map();
        let info = map
            .nodes
            .get(&node)
            .ok_or_else(|| CoordinatorError::NodeNotFound(node.to_string()))?;
        self.record_heartbeat(node, Instant::now());
        self.shard_stats().record(node, stats, Instant::now());
        match liveness::after_heartbeat(info.status) {
            Some(status) => {
                tracing::info!(%node, ?status, "node is heartbeating again");
                self.propose_status(node, status).await
            }
            None => Ok(map.version),
        }
    }

    /// Proposes a status change from this member (the leader), never forwarded.
    pub(crate) async fn propose_status(
        &self,
        node: NodeId,
        status: NodeStatus,
    ) -> Result<MapVersion, CoordinatorError> {
        let command = Command::SetNodeStatus { node, status };
        let version = self.execute_local(command).await?.version();
        self.inner
            .liveness_changes
            .get_or_create(&[("to", crate::admin::status_name::name(status))])
            .inc();
        Ok(version)
    }
}

fn report(outcome: Outcome) -> Result<Report, CoordinatorError> {
    match outcome {
        Outcome::Report { accepted, version } => Ok(Report {
            accepted,
            map_version: version,
        }),
        other => Err(unexpected(other)),
    }
}
