//! The commands of the coordinator's Raft log and what applying one returns.
//!
//! A [`Command`] is the unit of change of the cluster metadata: it is proposed
//! by the leader, replicated, and applied in log order by every member through
//! [`crate::state::MetaState::apply`]. Commands carry intent, not results
//! (the node id for a new node is assigned at apply time), so that applying
//! the same log always yields the same state.

use kvdb_core::{Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo, Slot};
use serde::{Deserialize, Serialize};

use crate::error::CoordinatorError;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a storage node, or updates its address and zone when the name is
    /// already registered. The id is assigned at apply time.
    RegisterNode {
        /// Unique node name; the key that makes re-registration an update.
        name: String,
        /// Data-plane `host:port`; must not belong to another node.
        address: String,
        /// Failure zone.
        zone: String,
    },
    /// Splits the slot space into `num_shards` shards and places
    /// `replication_factor` replicas of each on the alive nodes.
    InitShards {
        /// How many shards, `1..=SLOT_COUNT`.
        num_shards: u32,
        /// Replicas per shard; at least this many nodes must be alive.
        replication_factor: u32,
    },
    /// Sets a node's status (operator or failure detector).
    SetNodeStatus {
        /// The node to change.
        node: NodeId,
        /// Its new status.
        status: NodeStatus,
    },
    /// Starts moving a shard to a new replica set; `epoch` (when given) must
    /// be the shard's current epoch.
    SetShardReplicas {
        /// The shard to move.
        shard: ShardId,
        /// The epoch the caller saw; `None` skips the check.
        epoch: Option<Epoch>,
        /// The target replica set; nodes not already replicas must be alive.
        replicas: Vec<NodeId>,
    },
    /// Asks the shard's current leader to hand leadership to `node`.
    SetShardLeader {
        /// The shard whose leader should change.
        shard: ShardId,
        /// Must be the shard's current epoch.
        epoch: Epoch,
        /// The replica that should lead.
        node: NodeId,
    },
    /// A shard leader reports itself, with its Raft term.
    ReportShardLeader {
        /// The shard being reported.
        shard: ShardId,
        /// The epoch the leader serves; a report for another epoch is ignored.
        epoch: Epoch,
        /// The reporting leader.
        leader: NodeId,
        /// Its Raft term; a report older than the map's term is ignored.
        term: u64,
    },
    /// A shard leader reports that the replica set of a move is committed.
    ReportShardConfig {
        /// The shard being reported.
        shard: ShardId,
        /// The epoch of the move; a report for another epoch is ignored.
        epoch: Epoch,
        /// The committed replica set; must equal the move's target.
        replicas: Vec<NodeId>,
    },
    /// A coordinator member that became leader records its addresses, so
    /// every member can tell clients where the leader's APIs are.
    /// Not part of the shard map: does not bump the map version.
    AnnounceMember {
        /// The member's Raft id.
        id: u64,
        /// Its gRPC address (Coordinator service and Raft transport).
        grpc_address: String,
        /// Its Admin API address, when it serves one.
        admin_address: Option<String>,
    },
    /// Pauses or resumes the scheduler (repair, drain, balancing and splits).
    /// Not part of the shard map: does not bump the map version.
    SetSchedulerPaused {
        /// True to pause, false to resume.
        paused: bool,
    },
    /// Splits a stable shard in two at slot `at`: the shard keeps the slots below it and a
    /// new shard, `Splitting` from it on the same replicas, takes the rest. The split point
    /// and the new shard's id are decided at apply time. Last in the enum, so that logs
    /// written before it existed decode unchanged.
    SplitShard {
        /// The shard to split.
        shard: ShardId,
        /// The epoch the caller saw; `None` skips the check.
        epoch: Option<Epoch>,
        /// The new shard's first slot, in `slot_start + 1..=slot_end`; `None` is the
        /// midpoint of the range.
        at: Option<Slot>,
    },
    /// [`Command::RegisterNode`] with the node's Redis Cluster-mode address, which is
    /// empty when it serves none. What registration proposes now; the older variant stays
    /// so that logs written before this one decode, and applies with no RESP address.
    RegisterNodeResp {
        /// Unique node name; the key that makes re-registration an update.
        name: String,
        /// Data-plane `host:port`; must not belong to another node.
        address: String,
        /// Failure zone.
        zone: String,
        /// The node's RESP listener, `host:port`, or empty.
        resp_address: String,
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
            Command::SetSchedulerPaused { .. } => "set_scheduler_paused",
            Command::SplitShard { .. } => "split_shard",
            Command::RegisterNodeResp { .. } => "register_node",
        }
    }
}

/// What a successfully applied command produced. `version` is the map
/// version after the command (unchanged for a no-op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The registered (or updated) node.
    Node {
        /// The node's record as stored.
        node: NodeInfo,
        /// The map version after the command.
        version: MapVersion,
    },
    /// The shard after the change.
    Shard {
        /// The shard's record as stored.
        shard: ShardInfo,
        /// The map version after the command.
        version: MapVersion,
    },
    /// A report was accepted or ignored (stale epoch or term).
    Report {
        /// False when the report was stale and changed nothing.
        accepted: bool,
        /// The map version after the command.
        version: MapVersion,
    },
    /// Anything else: the map version after the command.
    Version(MapVersion),
    /// A shard was split: both halves, written in one map version.
    Split {
        /// The shard that was split, with its narrowed range and next epoch.
        parent: ShardInfo,
        /// The new shard, `Splitting` from `parent` until its first leader reports.
        child: ShardInfo,
        /// The map version after the command.
        version: MapVersion,
    },
}

impl Outcome {
    /// The map version after the command.
    pub fn version(&self) -> MapVersion {
        match self {
            Outcome::Node { version, .. }
            | Outcome::Shard { version, .. }
            | Outcome::Report { version, .. }
            | Outcome::Version(version)
            | Outcome::Split { version, .. } => *version,
        }
    }
}

/// The Raft response of one command: rejections are values, not failures of
/// the log, so every member applies the same entry the same way.
pub type CommandResult = Result<Outcome, CoordinatorError>;
