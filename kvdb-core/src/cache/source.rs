//! Where a [`ShardMapCache`](super::ShardMapCache) gets its maps from.
//!
//! The trait is deliberately small: one "give me the map if it is newer"
//! call and one event stream. The coordinator-backed gRPC implementation is
//! [`CoordinatorClient`](crate::coordinator_client::CoordinatorClient), in
//! `kvdb-core/src/coordinator_client/source.rs`; tests use an in-memory fake.

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::convert::ConvertError;
use crate::ids::MapVersion;
use crate::shard_map::{ShardMap, ShardMapDelta};

/// One event on a shard-map watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The full map; sent when the watcher is older than the source's
    /// retained history, and whenever the source cannot send deltas.
    Snapshot(ShardMap),
    /// The change that produced one map version.
    Delta(ShardMapDelta),
}

/// Why a source could not answer.
///
/// Every variant is retryable from the cache's point of view: the driver
/// falls back to polling and retries the watch with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source (e.g. the coordinator) could not be reached or refused.
    #[error("shard-map source unavailable: {reason}")]
    Unavailable {
        /// Human-readable cause, for logs only.
        reason: String,
    },
    /// The source answered with something that is not a shard map.
    #[error("shard-map source sent an invalid record: {0}")]
    Invalid(#[from] ConvertError),
    /// The source has shut down and will not answer again.
    #[error("shard-map source closed")]
    Closed,
}

/// A stream of watch events, as returned by [`ShardMapSource::watch`].
pub type WatchStream = BoxStream<'static, Result<WatchEvent, SourceError>>;

/// Supplies shard maps to a [`ShardMapCache`](super::ShardMapCache).
///
/// Contract:
/// - `fetch` returns the source's current map if its version is greater than
///   `newer_than`, else `None`. It never returns an older map than one it
///   returned before, but the cache does not rely on that.
/// - `watch(from)` returns a stream of the changes after `from`: a
///   [`WatchEvent::Snapshot`] first when `from` is older than the retained
///   history, then [`WatchEvent::Delta`]s in version order. The stream ends or
///   yields an error when the source loses the watch; the cache then polls
///   `fetch` and reopens the watch with backoff.
/// - Implementations bound their own I/O with timeouts: a call that never
///   completes stalls the cache's refreshes.
pub trait ShardMapSource: Send + Sync + 'static {
    /// The map if newer than `newer_than` (`None` when not newer).
    fn fetch(&self, newer_than: MapVersion)
    -> BoxFuture<'_, Result<Option<ShardMap>, SourceError>>;

    /// A stream of events after `from`.
    fn watch(&self, from: MapVersion) -> BoxFuture<'_, Result<WatchStream, SourceError>>;
}
