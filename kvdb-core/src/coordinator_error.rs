//! The errors a control-plane (coordinator) operation can end with, shared by the coordinator
//! that raises them, the members that forward them and every client that receives them.
//!
//! [`CoordinatorError`] is produced by the coordinator's metadata state machine (so it is
//! serde: it travels inside Raft responses), by its Raft group (no leader, storage failure)
//! and by forwarding. It crosses the gRPC wire through the codec in
//! [`crate::status::control`], as a code plus trailers, like [`crate::error::KvError`] on the
//! data plane; [`codes`] are the values of its `x-kvdb-error` trailer, shared with the Admin
//! HTTP API.

use serde::{Deserialize, Serialize};

use crate::{Epoch, NodeId, NodeStatus, ShardId};

/// Every way a coordinator operation can fail. Variants carry what the
/// caller needs to react without reading the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// Malformed or out-of-range input. Nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No node with this name or id.
    #[error("node not found: {0}")]
    NodeNotFound(String),
    /// No shard with this id (or shards are not initialized).
    #[error("shard not found: {0}")]
    ShardNotFound(ShardId),
    /// The shards are not initialized yet.
    #[error("shards are not initialized")]
    NotInitialized,
    /// Shards were already initialized with other parameters.
    #[error(
        "already initialized with {num_shards} shards and replication factor {replication_factor}"
    )]
    AlreadyInitialized {
        /// The shard count the cluster was initialized with.
        num_shards: u32,
        /// The replication factor it was initialized with.
        replication_factor: u32,
    },
    /// The request was made against another epoch of the shard.
    #[error("shard {shard}: request epoch {expected}, current {current}")]
    EpochMismatch {
        /// The shard the request named.
        shard: ShardId,
        /// The epoch the request expected.
        expected: Epoch,
        /// The shard's epoch now; retry against it after re-reading the shard.
        current: Epoch,
    },
    /// Fewer alive nodes than the replication factor: at init, or when a
    /// drain would leave too few nodes able to hold every shard's replicas.
    #[error(
        "only {alive} alive nodes could hold replicas, but the replication factor is {replication_factor}"
    )]
    NotEnoughNodes {
        /// Nodes that could receive a replica.
        alive: u32,
        /// Replicas asked for per shard.
        replication_factor: u32,
    },
    /// The node cannot receive a new replica in its current status.
    #[error("node {node} is {status:?} and cannot receive new replicas")]
    NodeNotAssignable {
        /// The node named as a new replica.
        node: NodeId,
        /// Its status (not `Alive`).
        status: NodeStatus,
    },
    /// Another node is already registered with this data-plane address.
    #[error("address {address} is already registered by node {node}")]
    AddressInUse {
        /// The contested data-plane address.
        address: String,
        /// The name of the node that already holds it.
        node: String,
    },
    /// This member cannot take the write; retry at the leader when known.
    #[error("not the coordinator leader (leader: {leader_id:?} at {leader_grpc:?})")]
    NotLeader {
        /// Raft id of the leader, if known.
        leader_id: Option<u64>,
        /// The leader's gRPC address, if known.
        leader_grpc: Option<String>,
        /// The leader's admin HTTP address, if known.
        leader_admin: Option<String>,
    },
    /// Transient: no quorum, shutting down, or a transport failure. The
    /// operation may or may not have been applied; every command is safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a storage failure; retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
    /// The shard is in the middle of a change (a move, a split) that must settle before
    /// this one can start. Nothing was changed; retry once the shard is stable again.
    /// Last in the enum so that older members decode the variants before it unchanged.
    #[error("shard {shard} is busy: {reason}")]
    ShardBusy {
        /// The shard the request named.
        shard: ShardId,
        /// What it is in the middle of.
        reason: BusyReason,
    },
    /// A change of the coordinator group's membership that would leave it unable to serve
    /// (its last member, or fewer answering members than a majority). Nothing was changed.
    /// Last in the enum, as `ShardBusy` before it.
    #[error("membership change refused: {reason}")]
    MembershipRefused {
        /// Why, and what to do first.
        reason: String,
    },
}

/// What a [`CoordinatorError::ShardBusy`] shard is in the middle of. Its text says what to
/// wait for, since the operator cannot act on the shard before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BusyReason {
    /// A replica move has started and its new configuration is not committed yet.
    Moving,
    /// The shard is being carved out of shard `from` and has no Raft group of its own until
    /// its first leader reports.
    Splitting {
        /// The shard it is split from.
        from: ShardId,
    },
    /// Shard `child` is being carved out of this one; its group is built from this shard's
    /// replicas, so their set must not change until it settles.
    SplitChild {
        /// The shard being split off.
        child: ShardId,
    },
}

impl std::fmt::Display for BusyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Moving => f.write_str(
                "a replica move is in progress; retry once it is committed \
                 (the shard's state is stable again)",
            ),
            Self::Splitting { from } => write!(
                f,
                "it is being split off shard {from}; retry once its first leader has \
                 reported (the shard's state is stable)"
            ),
            Self::SplitChild { child } => write!(
                f,
                "shard {child} is being split off it; retry once shard {child} is stable"
            ),
        }
    }
}

/// Machine-readable error codes, shared by gRPC and the admin API.
pub mod codes {
    /// Bad input.
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    /// Unknown node or shard.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The request conflicts with the current state.
    pub const CONFLICT: &str = "CONFLICT";
    /// Not the leader; see the leader hint.
    pub const NOT_LEADER: &str = "NOT_LEADER";
    /// Transient failure.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// Bug or storage failure.
    pub const INTERNAL: &str = "INTERNAL";
}

impl CoordinatorError {
    /// The stable code of this error, for clients that branch on it.
    pub fn code(&self) -> &'static str {
        use CoordinatorError::*;
        match self {
            InvalidArgument(_) => codes::INVALID_ARGUMENT,
            NodeNotFound(_) | ShardNotFound(_) => codes::NOT_FOUND,
            NotInitialized
            | AlreadyInitialized { .. }
            | EpochMismatch { .. }
            | NotEnoughNodes { .. }
            | NodeNotAssignable { .. }
            | AddressInUse { .. }
            | ShardBusy { .. }
            | MembershipRefused { .. } => codes::CONFLICT,
            NotLeader { .. } => codes::NOT_LEADER,
            Unavailable(_) => codes::UNAVAILABLE,
            Internal(_) => codes::INTERNAL,
        }
    }

    /// Whether retrying (at the leader, after a pause) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NotLeader { .. } | Self::Unavailable(_))
    }

    /// The gRPC code this error travels with.
    pub fn grpc_code(&self) -> tonic::Code {
        match self.code() {
            codes::INVALID_ARGUMENT => tonic::Code::InvalidArgument,
            codes::NOT_FOUND => tonic::Code::NotFound,
            codes::CONFLICT => tonic::Code::FailedPrecondition,
            codes::NOT_LEADER | codes::UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        }
    }
}
