//! What can go wrong moving a Raft message between two processes, on either end.
//!
//! The sending side reports [`TransportError`] and decides how openraft should
//! react (back off, retry at once, shrink the batch) from its variant and gRPC
//! code, never from a message. The serving side reports [`DispatchError`],
//! which becomes the gRPC status the sender classifies.

use std::time::Duration;

use tonic::{Code, Status};

use crate::raft::codec::CodecError;

/// A Raft message that did not reach its group, or whose reply could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer's address does not form a valid endpoint URI.
    #[error("raft peer address {addr:?} is invalid: {source}")]
    InvalidAddress {
        /// The address as given in the peer's `BasicNode`.
        addr: String,
        /// Why tonic rejected it.
        source: tonic::transport::Error,
    },
    /// The call failed with a gRPC status: connection trouble, an unknown
    /// group on the peer, an oversized message, or a malformed request.
    #[error("raft group {group} at {addr}: {status}")]
    Rpc {
        /// The Raft group the message was for.
        group: u64,
        /// The peer's address.
        addr: String,
        /// The status the call ended with.
        status: Status,
    },
    /// No reply arrived within the time openraft allowed for the call.
    #[error("raft group {group} at {addr}: no reply within {timeout:?}")]
    Timeout {
        /// The Raft group the message was for.
        group: u64,
        /// The peer's address.
        addr: String,
        /// The deadline that elapsed.
        timeout: Duration,
    },
    /// The request could not be encoded or the reply could not be decoded.
    #[error("raft group {group} at {addr}: {source}")]
    Codec {
        /// The Raft group the message was for.
        group: u64,
        /// The peer's address.
        addr: String,
        /// The codec failure.
        source: CodecError,
    },
}

/// How openraft should treat a [`TransportError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The peer (or its replica of the group) is not there: back off.
    Unreachable,
    /// The message exceeded a size limit: send fewer entries.
    TooLarge,
    /// Anything else: openraft retries on its next round.
    Network,
}

impl TransportError {
    /// Classifies this failure by variant and gRPC code.
    /// Whether the call never reached the peer's process (it is down, cut off, or does not
    /// answer), as opposed to an answer that refused it.
    pub(crate) fn is_unreachable_peer(&self) -> bool {
        match self {
            // Unknown: the connection broke under the call (reset, broken pipe).
            Self::Rpc { status, .. } => matches!(status.code(), Code::Unavailable | Code::Unknown),
            Self::Timeout { .. } => true,
            Self::InvalidAddress { .. } | Self::Codec { .. } => false,
        }
    }

    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            Self::InvalidAddress { .. } => FailureKind::Unreachable,
            Self::Rpc { status, .. } => match status.code() {
                Code::Unavailable | Code::NotFound => FailureKind::Unreachable,
                Code::OutOfRange | Code::ResourceExhausted => FailureKind::TooLarge,
                _ => FailureKind::Network,
            },
            Self::Timeout { .. } | Self::Codec { .. } => FailureKind::Network,
        }
    }
}

/// A Raft message the transport service could not hand to a group.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// This process hosts no replica of the group (yet, or any more).
    #[error("raft group {group} is not hosted by this node")]
    UnknownGroup {
        /// The requested group.
        group: u64,
    },
    /// The request payload is not a valid encoded openraft request.
    #[error("raft group {group}: malformed request: {source}")]
    BadRequest {
        /// The requested group.
        group: u64,
        /// The decoding failure.
        source: CodecError,
    },
    /// The group's reply could not be encoded.
    #[error("raft group {group}: reply could not be encoded: {source}")]
    BadReply {
        /// The requested group.
        group: u64,
        /// The encoding failure.
        source: CodecError,
    },
}

impl From<DispatchError> for Status {
    fn from(err: DispatchError) -> Self {
        let code = match &err {
            DispatchError::UnknownGroup { .. } => Code::NotFound,
            DispatchError::BadRequest { .. } => Code::InvalidArgument,
            DispatchError::BadReply { .. } => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: Code) -> TransportError {
        TransportError::Rpc {
            group: 3,
            addr: "127.0.0.1:1".to_owned(),
            status: Status::new(code, "test"),
        }
    }

    #[test]
    fn missing_peers_and_groups_are_unreachable() {
        assert_eq!(rpc(Code::Unavailable).kind(), FailureKind::Unreachable);
        assert_eq!(rpc(Code::NotFound).kind(), FailureKind::Unreachable);
    }

    #[test]
    fn size_limits_ask_for_smaller_batches() {
        assert_eq!(rpc(Code::OutOfRange).kind(), FailureKind::TooLarge);
        assert_eq!(rpc(Code::ResourceExhausted).kind(), FailureKind::TooLarge);
    }

    #[test]
    fn other_failures_are_plain_network_errors() {
        assert_eq!(rpc(Code::Internal).kind(), FailureKind::Network);
        assert_eq!(rpc(Code::Cancelled).kind(), FailureKind::Network);
        let timeout = TransportError::Timeout {
            group: 3,
            addr: "127.0.0.1:1".to_owned(),
            timeout: Duration::from_millis(50),
        };
        assert_eq!(timeout.kind(), FailureKind::Network);
    }

    #[test]
    fn unknown_group_is_not_found() {
        let status = Status::from(DispatchError::UnknownGroup { group: 9 });
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("group 9"));
    }
}
