//! The commands of the coordinator's Raft log and what applying one returns.
//!
//! A [`Command`] is the unit of change of the cluster metadata: it is proposed
//! by the leader, replicated, and applied in log order by every member through
//! [`crate::state::MetaState::apply`]. Commands carry intent, not results
//! (the node id for a new node is assigned at apply time), so that applying
//! the same log always yields the same state.

use kvdb_core::{Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo};
use serde::{Deserialize, Serialize};

use crate::error::CoordinatorError;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a storage node, or updates its address and zone when the name is
    /// already registered. The id is assigned at apply time.
    RegisterNode {
        name: String,
        address: String,
        zone: String,
    },
    /// Splits the slot space into `num_shards` shards and places
    /// `replication_factor` replicas of each on the alive nodes.
    InitShards {
        num_shards: u32,
        replication_factor: u32,
    },
    /// Sets a node's status (operator or failure detector).
    SetNodeStatus { node: NodeId, status: NodeStatus },
    /// Starts moving a shard to a new replica set; `epoch` (when given) must
    /// be the shard's current epoch.
    SetShardReplicas {
        shard: ShardId,
        epoch: Option<Epoch>,
        replicas: Vec<NodeId>,
    },
    /// Asks the shard's current leader to hand leadership to `node`.
    SetShardLeader {
        shard: ShardId,
        epoch: Epoch,
        node: NodeId,
    },
    /// A shard leader reports itself, with its Raft term.
    ReportShardLeader {
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    },
    /// A shard leader reports that the replica set of a move is committed.
    ReportShardConfig {
        shard: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    },
    /// A coordinator member that became leader records its addresses, so
    /// every member can tell clients where the leader's APIs are.
    /// Not part of the shard map: does not bump the map version.
    AnnounceMember {
        id: u64,
        grpc_address: String,
        admin_address: Option<String>,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RegisterNode { .. } => "register_node",
            Command::InitShards { .. } => "init_shards",
            Command::SetNodeStatus { .. } => "set_node_status",
            Command::SetShardReplicas { .. } => "set_shard_replicas",
            Command::SetShardLeader { .. } => "set_shard_leader",
            Command::ReportShardLeader { .. } => "report_shard_leader",
            Command::ReportShardConfig { .. } => "report_shard_config",
            Command::AnnounceMember { .. } => "announce_member",
        }
    }
}

/// What a successfully applied command produced. `version` is the map
/// version after the command (unchanged for a no-op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The registered (or updated) node.
    Node { node: NodeInfo, version: MapVersion },
    /// The shard after the change.
    Shard {
        shard: ShardInfo,
        version: MapVersion,
    },
    /// A report was accepted or ignored (stale epoch or term).
    Report { accepted: bool, version: MapVersion },
    /// Anything else: the map version after the command.
    Version(MapVersion),
}

impl Outcome {
    /// The map version after the command.
    pub fn version(&self) -> MapVersion {
        match self {
            Outcome::Node { version, .. }
            | Outcome::Shard { version, .. }
            | Outcome::Report { version, .. }
            | Outcome::Version(version) => *version,
        }
    }
}

/// The Raft response of one command: rejections are values, not failures of
/// the log, so every member applies the same entry the same way.
pub type CommandResult = Result<Outcome, CoordinatorError>;
