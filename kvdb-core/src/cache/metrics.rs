//! What the cache reports about itself: its mode and its counters, for
//! tests and metrics endpoints.

use std::sync::atomic::{AtomicU64, Ordering};

/// How the cache is currently being kept up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No driver is running (never started, or shut down); the map changes
    /// only through explicit installs and refreshes.
    Idle,
    /// Following the source's watch stream.
    Watching,
    /// The watch stream is down: polling `fetch` while reopening the watch.
    Polling,
}

/// A point-in-time copy of the cache's counters. All counts are since the
/// cache was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls to [`ShardMapSource::fetch`](super::ShardMapSource::fetch).
    pub fetches: u64,
    /// Fetches that returned an error.
    pub fetch_errors: u64,
    /// Watch streams opened after the first one.
    pub watch_restarts: u64,
    /// Full maps installed (snapshots, fetches, direct installs).
    pub maps_installed: u64,
    /// Deltas applied.
    pub deltas_applied: u64,
    /// Leader hints that changed the map.
    pub leader_hints: u64,
    /// Watch events ignored because they were not newer than the cache.
    pub stale_events: u64,
    /// Deltas that skipped a version and forced a snapshot fetch.
    pub gaps: u64,
    /// Maps or deltas rejected because the result failed validation.
    pub maps_rejected: u64,
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) fetches: AtomicU64,
    pub(super) fetch_errors: AtomicU64,
    pub(super) watch_restarts: AtomicU64,
    pub(super) maps_installed: AtomicU64,
    pub(super) deltas_applied: AtomicU64,
    pub(super) leader_hints: AtomicU64,
    pub(super) stale_events: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) maps_rejected: AtomicU64,
}

/// Adds one to a counter; counters are statistics, so relaxed ordering.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            fetches: get(&self.fetches),
            fetch_errors: get(&self.fetch_errors),
            watch_restarts: get(&self.watch_restarts),
            maps_installed: get(&self.maps_installed),
            deltas_applied: get(&self.deltas_applied),
            leader_hints: get(&self.leader_hints),
            stale_events: get(&self.stale_events),
            gaps: get(&self.gaps),
            maps_rejected: get(&self.maps_rejected),
        }
    }
}
