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

/// Exports a cache's state as `kvdb_<scope>_shard_map_*` series, read at scrape time. Every
/// process that routes (node, gateway, smart client) registers one, so how far behind the
/// coordinators a cache is reads as `max(kvdb_coordinator_map_version) -
/// kvdb_<scope>_shard_map_version`, and a cache stuck polling shows as `watching` at 0.
pub(super) struct CacheCollector {
    pub(super) cache: std::sync::Arc<super::ShardMapCache>,
    pub(super) scope: String,
}

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCollector")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl crate::metrics::Collector for CacheCollector {
    fn encode(
        &self,
        mut encoder: crate::metrics::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::metrics::{ConstCounter, ConstGauge, encode_family};
        let e = &mut encoder;
        let scope = &self.scope;
        let none: [(&str, &str); 0] = [];
        let version = self.cache.current().version.0;
        encode_family(
            e,
            &format!("{scope}_shard_map_version"),
            "Version of the shard map this process routes by",
            [(
                none,
                ConstGauge::new(i64::try_from(version).unwrap_or(i64::MAX)),
            )],
        )?;
        let watching = self.cache.mode() == Mode::Watching;
        encode_family(
            e,
            &format!("{scope}_shard_map_watching"),
            "1 while the map follows the coordinators' watch stream, 0 while it polls or stopped",
            [(none, ConstGauge::new(i64::from(watching)))],
        )?;
        let stats = self.cache.stats();
        encode_family(
            e,
            &format!("{scope}_shard_map_updates"),
            "Changes taken into the map: whole maps, deltas from the watch, leader hints",
            [
                ("map", stats.maps_installed),
                ("delta", stats.deltas_applied),
                ("leader_hint", stats.leader_hints),
            ]
            .map(|(kind, n)| ([("kind", kind)], ConstCounter::new(n))),
        )?;
        encode_family(
            e,
            &format!("{scope}_shard_map_faults"),
            "Trouble following the map: failed fetches, reopened watches, skipped versions, \
             maps refused as invalid",
            [
                ("fetch_error", stats.fetch_errors),
                ("watch_restart", stats.watch_restarts),
                ("gap", stats.gaps),
                ("rejected", stats.maps_rejected),
            ]
            .map(|(kind, n)| ([("kind", kind)], ConstCounter::new(n))),
        )
    }
}
