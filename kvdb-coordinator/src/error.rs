//! The errors a coordinator operation can end with.
//!
//! [`CoordinatorError`] is produced by the metadata state machine (so it is
//! serde: it travels inside Raft responses), by the Raft group (no leader,
//! storage failure) and by forwarding. It crosses the gRPC wire as a
//! `tonic::Status` whose code follows [`CoordinatorError::code`], whose
//! details carry the error itself (JSON) so a forwarding member gets back the
//! exact error, and whose trailers carry the leader hint a plain client needs
//! (see [`kvdb_core::coordinator_client`]).
//!
//! Out of scope: HTTP status codes, which the admin API derives from
//! [`CoordinatorError::code`].

use kvdb_core::coordinator_client::LEADER_ID_HEADER;
use kvdb_core::status::{ERROR_KIND, LEADER_HINT};
use kvdb_core::{Epoch, NodeId, NodeStatus, ShardId};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;

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
        num_shards: u32,
        replication_factor: u32,
    },
    /// The request was made against another epoch of the shard.
    #[error("shard {shard}: request epoch {expected}, current {current}")]
    EpochMismatch {
        shard: ShardId,
        expected: Epoch,
        current: Epoch,
    },
    /// Fewer alive nodes than the requested replication factor.
    #[error("{alive} alive nodes, replication factor {replication_factor}")]
    NotEnoughNodes { alive: u32, replication_factor: u32 },
    /// The node cannot receive a new replica in its current status.
    #[error("node {node} is {status:?} and cannot receive new replicas")]
    NodeNotAssignable { node: NodeId, status: NodeStatus },
    /// Another node is already registered with this data-plane address.
    #[error("address {address} is already registered by node {node}")]
    AddressInUse { address: String, node: String },
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
            | AddressInUse { .. } => codes::CONFLICT,
            NotLeader { .. } => codes::NOT_LEADER,
            Unavailable(_) => codes::UNAVAILABLE,
            Internal(_) => codes::INTERNAL,
        }
    }

    /// Whether retrying (at the leader, after a pause) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NotLeader { .. } | Self::Unavailable(_))
    }

    fn grpc_code(&self) -> tonic::Code {
        match self.code() {
            codes::INVALID_ARGUMENT => tonic::Code::InvalidArgument,
            codes::NOT_FOUND => tonic::Code::NotFound,
            codes::CONFLICT => tonic::Code::FailedPrecondition,
            codes::NOT_LEADER | codes::UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        }
    }
}

impl From<CoordinatorError> for tonic::Status {
    fn from(err: CoordinatorError) -> Self {
        let details = serde_json::to_vec(&err).unwrap_or_default();
        let mut status =
            tonic::Status::with_details(err.grpc_code(), err.to_string(), details.into());
        let meta = status.metadata_mut();
        meta.insert(ERROR_KIND, MetadataValue::from_static(err.code()));
        if let CoordinatorError::NotLeader {
            leader_id,
            leader_grpc,
            ..
        } = &err
        {
            if let Some(id) = leader_id {
                meta.insert(LEADER_ID_HEADER, MetadataValue::from(*id));
            }
            if let Some(value) = leader_grpc.as_deref().and_then(|a| a.parse().ok()) {
                meta.insert(LEADER_HINT, value);
            }
        }
        status
    }
}

impl From<tonic::Status> for CoordinatorError {
    /// Recovers the exact error from a status made by the `From` above;
    /// any other status (a transport failure, a proxy) maps by its code.
    fn from(status: tonic::Status) -> Self {
        if let Ok(err) = serde_json::from_slice::<CoordinatorError>(status.details()) {
            return err;
        }
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::InvalidArgument => Self::InvalidArgument(message),
            tonic::Code::NotFound => Self::NodeNotFound(message),
            tonic::Code::Internal | tonic::Code::Unimplemented | tonic::Code::DataLoss => {
                Self::Internal(message)
            }
            _ => Self::Unavailable(format!("{:?}: {message}", status.code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: CoordinatorError) -> CoordinatorError {
        CoordinatorError::from(tonic::Status::from(err))
    }

    #[test]
    fn every_error_survives_the_wire() {
        let all = [
            CoordinatorError::InvalidArgument("rf 0".into()),
            CoordinatorError::NodeNotFound("node-9".into()),
            CoordinatorError::ShardNotFound(ShardId(4)),
            CoordinatorError::NotInitialized,
            CoordinatorError::AlreadyInitialized {
                num_shards: 8,
                replication_factor: 3,
            },
            CoordinatorError::EpochMismatch {
                shard: ShardId(1),
                expected: Epoch(2),
                current: Epoch(3),
            },
            CoordinatorError::NotEnoughNodes {
                alive: 2,
                replication_factor: 3,
            },
            CoordinatorError::NotLeader {
                leader_id: Some(2),
                leader_grpc: Some("127.0.0.1:7001".into()),
                leader_admin: None,
            },
            CoordinatorError::Unavailable("no quorum".into()),
            CoordinatorError::Internal("bug".into()),
        ];
        for err in all {
            assert_eq!(round_trip(err.clone()), err);
        }
    }

    #[test]
    fn not_leader_carries_the_hint_in_trailers() {
        let status = tonic::Status::from(CoordinatorError::NotLeader {
            leader_id: Some(3),
            leader_grpc: Some("10.0.0.3:7000".into()),
            leader_admin: Some("10.0.0.3:8080".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let meta = status.metadata();
        assert_eq!(meta.get(LEADER_HINT).unwrap(), "10.0.0.3:7000");
        assert_eq!(meta.get(LEADER_ID_HEADER).unwrap(), "3");
        assert_eq!(meta.get(ERROR_KIND).unwrap(), codes::NOT_LEADER);
    }

    #[test]
    fn foreign_statuses_map_by_code() {
        let err = CoordinatorError::from(tonic::Status::unavailable("connection refused"));
        assert!(err.is_retryable());
        let err = CoordinatorError::from(tonic::Status::invalid_argument("bad"));
        assert_eq!(err.code(), codes::INVALID_ARGUMENT);
    }
}
