//! The shard-map cache: the one place a process keeps its view of the
//! cluster's shard map. The gateway, the smart client and the storage nodes
//! all use it.
//!
//! The current map is an immutable `Arc<ShardMap>`, published together with
//! the [`Router`] built from it behind one [`ArcSwap`], so readers never lock
//! and never see a router from one version and a map from another:
//! [`ShardMapCache::current`] and [`ShardMapCache::router`] are pointer
//! loads, and lookup tables are built once per map, not per request. Writers
//! (installs, deltas, leader hints) are rare; a small writer lock makes each
//! one a read-modify-write, and a [`watch`] channel republishes the map so
//! tasks can await a version ([`ShardMapCache::wait_for_version`]).
//!
//! Invariants:
//! - The map version never decreases. A map or delta that is not newer than
//!   the cached one is ignored; a delta that skips a version is reported as a
//!   gap, and the driver answers it with a snapshot fetch.
//! - The cached map is always valid ([`ShardMap::validate`]); a map or delta
//!   whose result is invalid is rejected and the previous map stays.
//!
//! A background driver ([`ShardMapCache::spawn`]) loads the map from a
//! [`ShardMapSource`], follows its watch stream, and polls while the stream
//! is down. Callers that learn the map is out of date (a routing error)
//! ask for a [`Refresh`]; refreshes are single-flight and throttled.
//!
//! Out of scope: talking to the coordinator (the gRPC source is
//! [`CoordinatorClient`](crate::coordinator_client::CoordinatorClient), in
//! `coordinator_client/source.rs`), routing itself (`router`), and the retry
//! policy that decides when to refresh or note a leader (the request
//! executor's job).
//!
//! # Layout
//! - `source`: the [`ShardMapSource`] trait and its events and errors.
//! - `config`: [`CacheConfig`] and its defaults.
//! - `refresh`: single-flight, throttled [`ShardMapCache::refresh`].
//! - `driver`: the background watch/poll task and its [`DriverHandle`].
//! - `metrics`: [`Mode`] and [`CacheStats`].

mod config;
mod driver;
mod metrics;
mod refresh;
mod source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::watch;

pub use config::{
    CacheConfig, ConfigError, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_POLL_INTERVAL,
    DEFAULT_WATCH_RETRY_MAX, DEFAULT_WATCH_RETRY_MIN,
};
pub use driver::DriverHandle;
pub use metrics::{CacheStats, Mode};
pub use refresh::{Refresh, RefreshError};
pub use source::{ShardMapSource, SourceError, WatchEvent, WatchStream};

use crate::ids::{MapVersion, NodeId, ShardId};
use crate::router::Router;
use crate::shard_map::{DeltaError, MapError, ShardMap, ShardMapDelta};
use metrics::{Counters, bump};

/// Why a map or delta was not installed. None of these change the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Not newer than the cached map; ignoring it is correct.
    #[error("map version {offered} is not newer than cached version {current}")]
    Stale {
        /// The cached map's version.
        current: MapVersion,
        /// The version that was offered.
        offered: MapVersion,
    },
    /// A delta skipped versions; the caller must fetch a full map.
    #[error("delta version {delta} skips versions after cached version {current}")]
    Gap {
        /// The cached map's version.
        current: MapVersion,
        /// The version the delta produces (more than `current + 1`).
        delta: MapVersion,
    },
    /// The resulting map breaks the shard-map invariants.
    #[error("shard map version {version} is invalid: {error}")]
    Invalid {
        /// The version of the rejected map.
        version: MapVersion,
        /// The first invariant it breaks.
        #[source]
        error: MapError,
    },
}

impl From<DeltaError> for UpdateError {
    fn from(e: DeltaError) -> Self {
        match e {
            DeltaError::Stale { map, delta } => Self::Stale {
                current: map,
                offered: delta,
            },
            DeltaError::Gap { map, delta } => Self::Gap {
                current: map,
                delta,
            },
        }
    }
}

/// What [`ShardMapCache::note_leader`] did with a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderHint {
    /// The shard's leader was replaced in a new copy of the map.
    Installed,
    /// The map already names that leader.
    Unchanged,
    /// The map has no such shard (the hint is about a newer map).
    UnknownShard,
    /// The node is not a member of the shard in the cached map.
    NotMember,
}

/// A lock-free, never-older cache of the shard map. See the module docs.
pub struct ShardMapCache {
    /// What readers load: the current map and its router, swapped as one.
    current: ArcSwap<Router>,
    /// The same map, for waiters.
    published: watch::Sender<Arc<ShardMap>>,
    /// Serialises writers; readers never take it.
    writer: Mutex<()>,
    source: Arc<dyn ShardMapSource>,
    config: CacheConfig,
    flights: refresh::SingleFlight,
    counters: Arc<Counters>,
    mode: watch::Sender<Mode>,
    /// Set to stop the driver; dropping the cache closes it, which also stops it.
    stop: watch::Sender<bool>,
}

impl ShardMapCache {
    /// A cache holding the empty map (version 0), with no driver running.
    /// Fill it with [`install`](Self::install) or [`refresh`](Self::refresh),
    /// or use [`spawn`](Self::spawn) to keep it up to date.
    pub fn new(
        source: Arc<dyn ShardMapSource>,
        config: CacheConfig,
    ) -> Result<Arc<Self>, ConfigError> {
        config.validate()?;
        let empty = Arc::new(ShardMap::default());
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(Router::new(Arc::clone(&empty))),
            published: watch::Sender::new(empty),
            writer: Mutex::new(()),
            source,
            config,
            flights: refresh::SingleFlight::default(),
            counters: Arc::default(),
            mode: watch::Sender::new(Mode::Idle),
            stop: watch::Sender::new(false),
        }))
    }

    /// The current map. Lock-free: a pointer load and a reference-count
    /// increment.
    pub fn current(&self) -> Arc<ShardMap> {
        Arc::clone(self.current.load().map())
    }

    /// The router over the current map; `router().map()` is the same map.
    /// Lock-free like [`current`](Self::current).
    pub fn router(&self) -> Arc<Router> {
        self.current.load_full()
    }

    /// The current map's version.
    pub fn version(&self) -> MapVersion {
        self.current.load().map().version
    }

    /// A receiver that sees every map the cache publishes, leader hints
    /// included.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ShardMap>> {
        self.published.subscribe()
    }

    /// Waits until the cached map is at `version` or newer and returns it.
    pub async fn wait_for_version(&self, version: MapVersion) -> Arc<ShardMap> {
        let mut rx = self.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        match rx.wait_for(|map| map.version >= version).await {
            Ok(map) => Arc::clone(&map),
            Err(_) => self.current(),
        }
    }

    /// Installs `map` if it is newer than the cached map and valid.
    pub fn install(&self, map: ShardMap) -> Result<MapVersion, UpdateError> {
        self.install_arc(Arc::new(map))
    }

    fn install_arc(&self, map: Arc<ShardMap>) -> Result<MapVersion, UpdateError> {
        let result = self.publish_with(|current| {
            if map.version <= current.version {
                return (
                    None,
                    Err(UpdateError::Stale {
                        current: current.version,
                        offered: map.version,
                    }),
                );
            }
            if let Err(error) = map.validate() {
                let version = map.version;
                return (None, Err(UpdateError::Invalid { version, error }));
            }
            let version = map.version;
            (Some(map), Ok(version))
        });
        self.count(&result, &self.counters.maps_installed);
        result
    }

    /// Applies the delta for the next version to a copy of the cached map
    /// and installs the copy. [`UpdateError::Gap`] asks the caller to fetch
    /// a full map.
    pub fn apply_delta(&self, delta: &ShardMapDelta) -> Result<MapVersion, UpdateError> {
        let result = self.publish_with(|current| {
            let mut next = ShardMap::clone(current);
            if let Err(e) = next.apply(delta) {
                return (None, Err(e.into()));
            }
            if let Err(error) = next.validate() {
                let version = next.version;
                return (None, Err(UpdateError::Invalid { version, error }));
            }
            let version = next.version;
            (Some(Arc::new(next)), Ok(version))
        });
        self.count(&result, &self.counters.deltas_applied);
        result
    }

    /// Records that `leader` leads `shard`, learned from a NOT_LEADER hint.
    ///
    /// The hint is local: it installs a copy of the map with only that
    /// shard's leader replaced and the *same* map version (and leader term),
    /// so it can never make the map older, and the next map or delta from
    /// the source supersedes it (a delta carries the full shard record).
    /// A hint naming a node outside the shard is ignored, so the map stays
    /// valid. Each hint copies the map and rebuilds its router; hints are
    /// rare next to reads.
    pub fn note_leader(&self, shard: ShardId, leader: NodeId) -> LeaderHint {
        let outcome = self.publish_with(|current| {
            let Some(info) = current.shards.get(&shard) else {
                return (None, LeaderHint::UnknownShard);
            };
            if info.leader == Some(leader) {
                return (None, LeaderHint::Unchanged);
            }
            if !info.members().contains(&leader) {
                return (None, LeaderHint::NotMember);
            }
            let mut next = ShardMap::clone(current);
            if let Some(info) = next.shards.get_mut(&shard) {
                info.leader = Some(leader);
            }
            (Some(Arc::new(next)), LeaderHint::Installed)
        });
        if outcome == LeaderHint::Installed {
            bump(&self.counters.leader_hints);
        }
        outcome
    }

    /// How the driver is keeping the cache up to date right now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// A receiver that sees every mode change, for tests and metrics.
    pub fn watch_mode(&self) -> watch::Receiver<Mode> {
        self.mode.subscribe()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// Exports this cache's version, mode and counters as `kvdb_<scope>_shard_map_*` series in
    /// `registry`, read at scrape time (see [`crate::metrics`]).
    pub fn register_metrics(
        self: &Arc<Self>,
        registry: &mut crate::metrics::Registry,
        scope: &str,
    ) {
        registry.register_collector(Box::new(metrics::CacheCollector {
            cache: self.clone(),
            scope: scope.to_owned(),
        }));
    }

    /// The configuration the cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Stops the driver, if one runs. Final: a stopped driver does not
    /// restart. The cache stays readable and still accepts installs and
    /// refreshes.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// The single write path. `change` sees the current map under the
    /// writer lock and returns the map to publish, if any, plus a result.
    fn publish_with<R>(
        &self,
        change: impl FnOnce(&Arc<ShardMap>) -> (Option<Arc<ShardMap>>, R),
    ) -> R {
        // The lock guards no data, only the read-modify-write sequence, so a
        // panic elsewhere cannot leave anything half-updated.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current();
        let (next, result) = change(&current);
        if let Some(next) = next {
            debug_assert!(next.version >= current.version, "map went back");
            self.current.store(Arc::new(Router::new(Arc::clone(&next))));
            self.published.send_replace(next);
        }
        result
    }

    fn count(&self, result: &Result<MapVersion, UpdateError>, applied: &AtomicU64) {
        match result {
            Ok(_) => bump(applied),
            Err(UpdateError::Invalid { version, error }) => {
                bump(&self.counters.maps_rejected);
                tracing::warn!(%version, %error, "shard-map cache rejected an invalid map");
            }
            Err(UpdateError::Stale { .. } | UpdateError::Gap { .. }) => {}
        }
    }

    fn set_mode(&self, mode: Mode) {
        self.mode
            .send_if_modified(|m| std::mem::replace(m, mode) != mode);
    }
}

impl fmt::Debug for ShardMapCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardMapCache")
            .field("version", &self.version())
            .field("mode", &self.mode())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
