//! The one mapping of [`CoordinatorError`] to and from [`tonic::Status`], in the trailer
//! scheme of the data plane (see the parent module): the code follows
//! [`CoordinatorError::grpc_code`], `x-kvdb-error` carries the coarse kind ([`codes`](crate::coordinator_error::codes)),
//! `x-kvdb-reason` the exact variant, and one trailer per field carries its data. Variants
//! holding one text carry it verbatim as the status message, as on the data plane.
//!
//! | `x-kvdb-reason`        | `x-kvdb-error`     | field trailers                                   |
//! |------------------------|--------------------|--------------------------------------------------|
//! | `INVALID_ARGUMENT`     | `INVALID_ARGUMENT` | (message)                                        |
//! | `NODE_NOT_FOUND`       | `NOT_FOUND`        | (message: the node's name or id)                 |
//! | `SHARD_NOT_FOUND`      | `NOT_FOUND`        | `x-shard-id`                                     |
//! | `NOT_INITIALIZED`      | `CONFLICT`         |                                                  |
//! | `ALREADY_INITIALIZED`  | `CONFLICT`         | `x-num-shards`, `x-replication-factor`           |
//! | `EPOCH_MISMATCH`       | `CONFLICT`         | `x-shard-id`, `x-request-epoch`, `x-shard-epoch` |
//! | `NOT_ENOUGH_NODES`     | `CONFLICT`         | `x-alive-nodes`, `x-replication-factor`          |
//! | `NODE_NOT_ASSIGNABLE`  | `CONFLICT`         | `x-node-id`, `x-node-status`                     |
//! | `ADDRESS_IN_USE`       | `CONFLICT`         | `x-address`, `x-node-name`                       |
//! | `SHARD_BUSY`           | `CONFLICT`         | `x-shard-id`, `x-busy-reason`, `x-related-shard` (split reasons) |
//! | `MEMBERSHIP_REFUSED`   | `CONFLICT`         | (message: why)                                   |
//! | `NOT_LEADER`           | `NOT_LEADER`       | `x-leader-id`, `x-leader-hint`, `x-leader-admin` (each if known) |
//! | `UNAVAILABLE`          | `UNAVAILABLE`      | (message)                                        |
//! | `INTERNAL`             | `INTERNAL`         | (message)                                        |
//!
//! A status without `x-kvdb-reason` (a transport failure, a proxy, an older server) or with a
//! field missing is classified by its code alone. Nothing travels in
//! `grpc-status-details-bin`, which standard gRPC clients parse as a `google.rpc.Status`.

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Code, Status};

use super::{LEADER_HINT, REQUEST_EPOCH, SHARD_EPOCH, SHARD_ID, insert_hint, number, text};
use crate::coordinator_error::{BusyReason, CoordinatorError};
use crate::proto::v1 as pb;
use crate::{Epoch, NodeId, NodeStatus, ShardId};

/// Trailer naming the exact control-plane error.
pub const REASON: &str = "x-kvdb-reason";
/// Trailer with the coordinator leader's Raft id on `NOT_LEADER`.
pub const LEADER_ID: &str = "x-leader-id";
/// Trailer with the coordinator leader's Admin API address on `NOT_LEADER`.
pub const LEADER_ADMIN: &str = "x-leader-admin";
/// Trailer with a shard count.
pub const NUM_SHARDS: &str = "x-num-shards";
/// Trailer with a replication factor.
pub const REPLICATION_FACTOR: &str = "x-replication-factor";
/// Trailer with the number of alive nodes.
pub const ALIVE_NODES: &str = "x-alive-nodes";
/// Trailer with a storage node's id.
pub const NODE_ID: &str = "x-node-id";
/// Trailer with a storage node's status (`NODE_STATUS_DRAINING`, ...).
pub const NODE_STATUS: &str = "x-node-status";
/// Trailer with a data-plane address.
pub const ADDRESS: &str = "x-address";
/// Trailer with a storage node's name.
pub const NODE_NAME: &str = "x-node-name";
/// Trailer with what a busy shard is doing (`MOVING`, `SPLITTING`, `SPLIT_CHILD`).
pub const BUSY_REASON: &str = "x-busy-reason";
/// Trailer with the other shard of a split: the parent of a splitting shard, or the child
/// being split off a busy parent.
pub const RELATED_SHARD: &str = "x-related-shard";

fn reason(err: &CoordinatorError) -> &'static str {
    use CoordinatorError::*;
    match err {
        InvalidArgument(_) => "INVALID_ARGUMENT",
        NodeNotFound(_) => "NODE_NOT_FOUND",
        ShardNotFound(_) => "SHARD_NOT_FOUND",
        NotInitialized => "NOT_INITIALIZED",
        AlreadyInitialized { .. } => "ALREADY_INITIALIZED",
        EpochMismatch { .. } => "EPOCH_MISMATCH",
        NotEnoughNodes { .. } => "NOT_ENOUGH_NODES",
        NodeNotAssignable { .. } => "NODE_NOT_ASSIGNABLE",
        AddressInUse { .. } => "ADDRESS_IN_USE",
        ShardBusy { .. } => "SHARD_BUSY",
        MembershipRefused { .. } => "MEMBERSHIP_REFUSED",
        NotLeader { .. } => "NOT_LEADER",
        Unavailable(_) => "UNAVAILABLE",
        Internal(_) => "INTERNAL",
    }
}

impl From<CoordinatorError> for Status {
    /// Encodes `err` as a status with the trailers above. A field that is not a valid header
    /// value (not visible ASCII) is left out; the receiver then classifies by the code.
    fn from(err: CoordinatorError) -> Status {
        use CoordinatorError::*;
        let mut md = MetadataMap::new();
        md.insert(
            super::ERROR_KIND,
            AsciiMetadataValue::from_static(err.code()),
        );
        md.insert(REASON, AsciiMetadataValue::from_static(reason(&err)));
        match &err {
            ShardNotFound(shard) => {
                md.insert(SHARD_ID, shard.0.into());
            }
            AlreadyInitialized {
                num_shards,
                replication_factor,
            } => {
                md.insert(NUM_SHARDS, (*num_shards).into());
                md.insert(REPLICATION_FACTOR, (*replication_factor).into());
            }
            EpochMismatch {
                shard,
                expected,
                current,
            } => {
                md.insert(SHARD_ID, shard.0.into());
                md.insert(REQUEST_EPOCH, expected.0.into());
                md.insert(SHARD_EPOCH, current.0.into());
            }
            NotEnoughNodes {
                alive,
                replication_factor,
            } => {
                md.insert(ALIVE_NODES, (*alive).into());
                md.insert(REPLICATION_FACTOR, (*replication_factor).into());
            }
            NodeNotAssignable { node, status } => {
                md.insert(NODE_ID, node.0.into());
                let status = pb::NodeStatus::from(*status).as_str_name();
                md.insert(NODE_STATUS, AsciiMetadataValue::from_static(status));
            }
            AddressInUse { address, node } => {
                insert_hint(&mut md, ADDRESS, Some(address));
                insert_hint(&mut md, NODE_NAME, Some(node));
            }
            ShardBusy { shard, reason } => {
                md.insert(SHARD_ID, shard.0.into());
                let (name, related) = busy_reason_fields(*reason);
                md.insert(BUSY_REASON, AsciiMetadataValue::from_static(name));
                if let Some(related) = related {
                    md.insert(RELATED_SHARD, related.0.into());
                }
            }
            NotLeader {
                leader_id,
                leader_grpc,
                leader_admin,
            } => {
                if let Some(id) = leader_id {
                    md.insert(LEADER_ID, (*id).into());
                }
                insert_hint(&mut md, LEADER_HINT, leader_grpc.as_deref());
                insert_hint(&mut md, LEADER_ADMIN, leader_admin.as_deref());
            }
            InvalidArgument(_)
            | NodeNotFound(_)
            | NotInitialized
            | Unavailable(_)
            | Internal(_)
            | MembershipRefused { .. } => {}
        }
        let code = err.grpc_code();
        let message = match err {
            InvalidArgument(m)
            | NodeNotFound(m)
            | Unavailable(m)
            | Internal(m)
            | MembershipRefused { reason: m } => m,
            other => other.to_string(),
        };
        Status::with_metadata(code, message, md)
    }
}

impl From<Status> for CoordinatorError {
    fn from(status: Status) -> CoordinatorError {
        from_status(&status)
    }
}

/// Decodes a status made by the `From` above exactly; any other status by its code.
pub fn from_status(status: &Status) -> CoordinatorError {
    decode(status).unwrap_or_else(|| from_code(status))
}

fn decode(status: &Status) -> Option<CoordinatorError> {
    use CoordinatorError::*;
    let md = status.metadata();
    let message = status.message().to_owned();
    let shard = || number(md, SHARD_ID).map(ShardId);
    let u32_of = |key| number(md, key).and_then(|n| u32::try_from(n).ok());
    Some(match text(md, REASON)? {
        "INVALID_ARGUMENT" => InvalidArgument(message),
        "NODE_NOT_FOUND" => NodeNotFound(message),
        "SHARD_NOT_FOUND" => ShardNotFound(shard()?),
        "NOT_INITIALIZED" => NotInitialized,
        "ALREADY_INITIALIZED" => AlreadyInitialized {
            num_shards: u32_of(NUM_SHARDS)?,
            replication_factor: u32_of(REPLICATION_FACTOR)?,
        },
        "EPOCH_MISMATCH" => EpochMismatch {
            shard: shard()?,
            expected: Epoch(number(md, REQUEST_EPOCH)?),
            current: Epoch(number(md, SHARD_EPOCH)?),
        },
        "NOT_ENOUGH_NODES" => NotEnoughNodes {
            alive: u32_of(ALIVE_NODES)?,
            replication_factor: u32_of(REPLICATION_FACTOR)?,
        },
        "NODE_NOT_ASSIGNABLE" => NodeNotAssignable {
            node: NodeId(number(md, NODE_ID)?),
            status: pb::NodeStatus::from_str_name(text(md, NODE_STATUS)?)
                .and_then(|s| NodeStatus::try_from(s).ok())?,
        },
        "ADDRESS_IN_USE" => AddressInUse {
            address: text(md, ADDRESS)?.to_owned(),
            node: text(md, NODE_NAME)?.to_owned(),
        },
        "SHARD_BUSY" => ShardBusy {
            shard: shard()?,
            reason: busy_reason(
                text(md, BUSY_REASON)?,
                number(md, RELATED_SHARD).map(ShardId),
            )?,
        },
        "NOT_LEADER" => NotLeader {
            leader_id: number(md, LEADER_ID),
            leader_grpc: text(md, LEADER_HINT).map(str::to_owned),
            leader_admin: text(md, LEADER_ADMIN).map(str::to_owned),
        },
        "MEMBERSHIP_REFUSED" => MembershipRefused { reason: message },
        "UNAVAILABLE" => Unavailable(message),
        "INTERNAL" => Internal(message),
        _ => return None,
    })
}

/// The trailer values of a [`BusyReason`]: its name and the other shard of a split.
fn busy_reason_fields(reason: BusyReason) -> (&'static str, Option<ShardId>) {
    match reason {
        BusyReason::Moving => ("MOVING", None),
        BusyReason::Splitting { from } => ("SPLITTING", Some(from)),
        BusyReason::SplitChild { child } => ("SPLIT_CHILD", Some(child)),
    }
}

fn busy_reason(name: &str, related: Option<ShardId>) -> Option<BusyReason> {
    Some(match name {
        "MOVING" => BusyReason::Moving,
        "SPLITTING" => BusyReason::Splitting { from: related? },
        "SPLIT_CHILD" => BusyReason::SplitChild { child: related? },
        _ => return None,
    })
}

/// A status from a transport failure, a proxy or a foreign server, by its code: the codes a
/// failing connection or an overloaded server gives are worth retrying, the others are not.
fn from_code(status: &Status) -> CoordinatorError {
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => CoordinatorError::InvalidArgument(message),
        Code::NotFound => CoordinatorError::NodeNotFound(message),
        code @ (Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled
        | Code::Aborted
        | Code::ResourceExhausted) => CoordinatorError::Unavailable(format!("{code:?}: {message}")),
        code => CoordinatorError::Internal(format!("{code:?}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator_error::codes;

    fn every_error() -> Vec<CoordinatorError> {
        vec![
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
            CoordinatorError::NodeNotAssignable {
                node: NodeId(5),
                status: NodeStatus::Draining,
            },
            CoordinatorError::AddressInUse {
                address: "127.0.0.1:7001".into(),
                node: "node-1".into(),
            },
            CoordinatorError::ShardBusy {
                shard: ShardId(3),
                reason: BusyReason::Moving,
            },
            CoordinatorError::MembershipRefused {
                reason: "member 1 is the last one".into(),
            },
            CoordinatorError::ShardBusy {
                shard: ShardId(8),
                reason: BusyReason::Splitting { from: ShardId(3) },
            },
            CoordinatorError::ShardBusy {
                shard: ShardId(3),
                reason: BusyReason::SplitChild { child: ShardId(8) },
            },
            CoordinatorError::NotLeader {
                leader_id: Some(2),
                leader_grpc: Some("127.0.0.1:7001".into()),
                leader_admin: Some("127.0.0.1:8081".into()),
            },
            CoordinatorError::NotLeader {
                leader_id: None,
                leader_grpc: None,
                leader_admin: None,
            },
            CoordinatorError::Unavailable("no quorum".into()),
            CoordinatorError::Internal("bug".into()),
        ]
    }

    #[test]
    fn every_error_survives_the_wire() {
        for err in every_error() {
            assert_eq!(CoordinatorError::from(Status::from(err.clone())), err);
        }
    }

    #[test]
    fn every_error_keeps_its_code_and_leaves_the_details_empty() {
        for err in every_error() {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), err.grpc_code(), "{err:?}");
            let kind = status.metadata().get(super::super::ERROR_KIND).unwrap();
            assert_eq!(kind, err.code(), "{err:?}");
            assert!(status.details().is_empty(), "{err:?} filled the details");
        }
    }

    #[test]
    fn not_leader_carries_the_hint_in_trailers() {
        let status = Status::from(CoordinatorError::NotLeader {
            leader_id: Some(3),
            leader_grpc: Some("10.0.0.3:7000".into()),
            leader_admin: Some("10.0.0.3:8080".into()),
        });
        assert_eq!(status.code(), Code::Unavailable);
        let meta = status.metadata();
        assert_eq!(meta.get(LEADER_HINT).unwrap(), "10.0.0.3:7000");
        assert_eq!(meta.get(LEADER_ID).unwrap(), "3");
        assert_eq!(meta.get(LEADER_ADMIN).unwrap(), "10.0.0.3:8080");
        assert_eq!(meta.get(REASON).unwrap(), "NOT_LEADER");
    }

    #[test]
    fn a_busy_shard_is_a_failed_precondition_naming_the_other_shard() {
        let status = Status::from(CoordinatorError::ShardBusy {
            shard: ShardId(3),
            reason: BusyReason::SplitChild { child: ShardId(8) },
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        let meta = status.metadata();
        assert_eq!(meta.get(REASON).unwrap(), "SHARD_BUSY");
        assert_eq!(meta.get(BUSY_REASON).unwrap(), "SPLIT_CHILD");
        assert_eq!(meta.get(RELATED_SHARD).unwrap(), "8");
        assert!(status.message().contains("retry once shard 8 is stable"));
    }

    #[test]
    fn foreign_statuses_map_by_code() {
        let err = CoordinatorError::from(Status::unavailable("connection refused"));
        assert!(err.is_retryable());
        let err = CoordinatorError::from(Status::invalid_argument("bad"));
        assert_eq!(err, CoordinatorError::InvalidArgument("bad".into()));
        let err = CoordinatorError::from(Status::not_found("node-3"));
        assert_eq!(err.code(), codes::NOT_FOUND);
    }

    #[test]
    fn a_missing_field_falls_back_to_the_code() {
        let mut status = Status::from(CoordinatorError::EpochMismatch {
            shard: ShardId(1),
            expected: Epoch(2),
            current: Epoch(3),
        });
        status.metadata_mut().remove(SHARD_EPOCH);
        let err = CoordinatorError::from(status);
        assert_eq!(err.code(), codes::INTERNAL, "{err:?}");
        assert!(!err.is_retryable());
    }
}
