//! The errors a KV request can end with, and what a caller should do next.
//!
//! [`RoutingError`] is what a node says when a request reached the wrong
//! place: the wrong node, the wrong epoch, or a follower. [`KvError`] is every
//! outcome a request can fail with once it crosses the wire; it is small on
//! purpose, so that a client can decide by matching rather than by reading
//! messages. The decision itself is a value, [`RetryAction`], computed by
//! [`KvError::retry_action`].
//!
//! Out of scope: the encoding of these errors as gRPC statuses and trailers
//! (see [`crate::status`]), and retry budgets, backoff timing and deadlines,
//! which belong to the client's executor.

use crate::ids::{Epoch, ShardId};

/// A request reached a node that cannot serve it as routed. Each variant says
/// which shard, and where to go next when the node knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// The node hosts the shard but is not its leader, and the request needs
    /// the leader (a write or a strong read).
    #[error("shard {shard}: not leader (hint: {leader:?})")]
    NotLeader {
        /// The shard the request named.
        shard: ShardId,
        /// The leader's data-plane address (`host:port`), if known.
        leader: Option<String>,
    },
    /// The node does not host the shard, or the key's slot is no longer in
    /// the shard's range: the caller's map is out of date.
    #[error("shard {shard} moved (try {to:?})")]
    ShardMoved {
        /// The shard the request named (not necessarily the key's owner now).
        shard: ShardId,
        /// A node (`host:port`) that serves the key per this node's map.
        to: Option<String>,
    },
    /// The request was routed with a different epoch of the shard than the
    /// node's replica has.
    #[error("shard {shard}: request epoch {request}, current {current}")]
    StaleEpoch {
        /// The shard the request named.
        shard: ShardId,
        /// The epoch the request carried.
        request: Epoch,
        /// The epoch of the node's replica.
        current: Epoch,
    },
}

/// Every error a KV request can end with, on either side of the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The request was misrouted; see [`RoutingError`].
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// The input is malformed or over a limit. Nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A transport failure, a shard without a leader yet, or a node shutting
    /// down. The request may or may not have been applied; retrying is safe
    /// because writes are deduplicated by (client id, sequence).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The caller's deadline passed before an answer arrived.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The cluster has no shard map yet (not initialized), or the caller's
    /// map does not cover the key.
    #[error("no shard map")]
    NoShardMap,
    /// A bug or a broken invariant; retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller presented no token the server accepts, or one whose role does not allow
    /// the operation (see `crate::auth`). Nothing was changed.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The node refuses writes for want of a resource: its data directory's disk is nearly
    /// full. Nothing was changed; reads still work, and writes are taken again once the
    /// resource is back.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
}

/// What a caller should do after a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAction {
    /// Retry once, directly, at this address (`host:port`), and remember it
    /// as the shard's leader.
    RetryAt(String),
    /// Refresh the shard map, then retry. `force` bypasses the refresh
    /// throttle: the map is known to be wrong, not merely possibly old.
    RefreshThenRetry {
        /// Skip the refresh throttle.
        force: bool,
    },
    /// Mark the node failed for a while, back off with jitter, then retry.
    Backoff,
    /// Give up and return the error to the caller.
    Fail,
}

impl KvError {
    /// The reaction to this error, following the routing-hint table in the
    /// architecture:
    ///
    /// - `NotLeader` with a hint: [`RetryAction::RetryAt`] the hinted leader.
    /// - `NotLeader` without a hint: refresh (throttled), then retry; the
    ///   leader may be mid-election.
    /// - `ShardMoved`: forced refresh, then retry; the map is known stale.
    /// - `StaleEpoch`: refresh (throttled), then retry; other requests are
    ///   likely seeing the same epoch change.
    /// - `Unavailable`: [`RetryAction::Backoff`].
    /// - `NoShardMap`: forced refresh, then retry.
    /// - `InvalidArgument`, `DeadlineExceeded`, `Internal`: [`RetryAction::Fail`];
    ///   retrying cannot change the outcome, or there is no time left.
    pub fn retry_action(&self) -> RetryAction {
        match self {
            KvError::Routing(RoutingError::NotLeader {
                leader: Some(addr), ..
            }) => RetryAction::RetryAt(addr.clone()),
            KvError::Routing(RoutingError::NotLeader { leader: None, .. }) => {
                RetryAction::RefreshThenRetry { force: false }
            }
            KvError::Routing(RoutingError::ShardMoved { .. }) => {
                RetryAction::RefreshThenRetry { force: true }
            }
            KvError::Routing(RoutingError::StaleEpoch { .. }) => {
                RetryAction::RefreshThenRetry { force: false }
            }
            KvError::Unavailable(_) => RetryAction::Backoff,
            KvError::NoShardMap => RetryAction::RefreshThenRetry { force: true },
            KvError::InvalidArgument(_)
            | KvError::DeadlineExceeded
            | KvError::Internal(_)
            | KvError::PermissionDenied(_)
            | KvError::ResourceExhausted(_) => RetryAction::Fail,
        }
    }

    /// Whether retrying (within the caller's deadline) may succeed: any
    /// action other than [`RetryAction::Fail`].
    pub fn is_retryable(&self) -> bool {
        self.retry_action() != RetryAction::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(e: RoutingError) -> KvError {
        KvError::Routing(e)
    }

    #[test]
    fn not_leader_with_a_hint_retries_at_the_hint() {
        let e = routing(RoutingError::NotLeader {
            shard: ShardId(3),
            leader: Some("10.0.0.2:7000".into()),
        });
        assert_eq!(
            e.retry_action(),
            RetryAction::RetryAt("10.0.0.2:7000".into())
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn not_leader_without_a_hint_refreshes_throttled() {
        let e = routing(RoutingError::NotLeader {
            shard: ShardId(3),
            leader: None,
        });
        assert_eq!(
            e.retry_action(),
            RetryAction::RefreshThenRetry { force: false }
        );
    }

    #[test]
    fn shard_moved_forces_a_refresh() {
        for to in [None, Some("10.0.0.9:7000".to_string())] {
            let e = routing(RoutingError::ShardMoved {
                shard: ShardId(1),
                to,
            });
            assert_eq!(
                e.retry_action(),
                RetryAction::RefreshThenRetry { force: true }
            );
        }
    }

    #[test]
    fn stale_epoch_refreshes_throttled() {
        let e = routing(RoutingError::StaleEpoch {
            shard: ShardId(1),
            request: Epoch(2),
            current: Epoch(3),
        });
        assert_eq!(
            e.retry_action(),
            RetryAction::RefreshThenRetry { force: false }
        );
    }

    #[test]
    fn unavailable_backs_off_and_no_map_forces_a_refresh() {
        assert_eq!(
            KvError::Unavailable("down".into()).retry_action(),
            RetryAction::Backoff
        );
        assert_eq!(
            KvError::NoShardMap.retry_action(),
            RetryAction::RefreshThenRetry { force: true }
        );
        assert!(KvError::Unavailable("down".into()).is_retryable());
        assert!(KvError::NoShardMap.is_retryable());
    }

    #[test]
    fn final_errors_fail() {
        for e in [
            KvError::InvalidArgument("key too large".into()),
            KvError::DeadlineExceeded,
            KvError::Internal("bug".into()),
        ] {
            assert_eq!(e.retry_action(), RetryAction::Fail, "{e}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn routing_errors_display_transparently() {
        let inner = RoutingError::StaleEpoch {
            shard: ShardId(7),
            request: Epoch(1),
            current: Epoch(2),
        };
        let outer = KvError::from(inner.clone());
        assert_eq!(outer.to_string(), inner.to_string());
        assert_eq!(outer.to_string(), "shard 7: request epoch 1, current 2");
    }
}
