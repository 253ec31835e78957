//! On-demand refreshes: single-flight and throttled.
//!
//! Every fetch the cache makes (callers' refreshes, the driver's initial
//! load, polls and gap repairs) is a *flight*: one call to
//! [`ShardMapSource::fetch`](super::ShardMapSource::fetch) wrapped in a
//! shared future. While a flight is in the air, new requests join it instead
//! of calling the source again, so a burst of routing errors costs one fetch.
//!
//! - [`Refresh::Throttled`] joins the flight in the air; otherwise it starts
//!   one only if no flight started within `min_refresh_interval`, and
//!   returns at once if one did.
//! - [`Refresh::Forced`] is not throttled, but it must see the source's
//!   answer to a fetch that started *after* the request (the caller knows the
//!   map changed): it waits out an older flight and then joins a newer one,
//!   in the air or just landed, or starts one.
//!
//! Flights are not tied to one caller: if every waiter is cancelled the
//! flight pauses, and the next request joins and drives it.

use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::metrics::bump;
use super::{ShardMapCache, SourceError, UpdateError};
use crate::ids::MapVersion;
use crate::shard_map::{MapError, ShardMap};

/// How urgently a caller wants a fresh map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refresh {
    /// After STALE_EPOCH or a transport error: at most one fetch per
    /// `min_refresh_interval`, shared by all callers.
    Throttled,
    /// After SHARD_MOVED: fetch now, sharing only a fetch that starts after
    /// this request.
    Forced,
}

/// Why a refresh did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The source could not answer; retryable.
    #[error("shard-map refresh failed: {0}")]
    Source(#[from] SourceError),
    /// The source answered with a map that breaks the shard-map invariants;
    /// the cache kept its previous map.
    #[error("shard-map refresh fetched invalid map version {version}: {error}")]
    InvalidMap {
        /// The version of the rejected map.
        version: MapVersion,
        /// The first invariant it breaks.
        #[source]
        error: MapError,
    },
}

type FetchResult = Result<Option<Arc<ShardMap>>, SourceError>;

/// One fetch, shared by every request that joins it.
#[derive(Clone)]
struct Flight {
    /// Flights are numbered in start order.
    id: u64,
    fetch: Shared<BoxFuture<'static, FetchResult>>,
}

/// The refresh bookkeeping of one cache.
#[derive(Default)]
pub(super) struct SingleFlight {
    state: Mutex<FlightState>,
}

#[derive(Default)]
struct FlightState {
    /// Number of flights started; the id of the next one.
    started: u64,
    last_start: Option<Instant>,
    in_flight: Option<Flight>,
    /// The most recent flight that has landed; its result is kept so a
    /// forced request can use it if it started after the request.
    landed: Option<Flight>,
}

impl SingleFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, FlightState> {
        // Every critical section leaves the state consistent, so a panic
        // elsewhere does not invalidate it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ShardMapCache {
    /// Brings the cache up to date with the source and returns the map
    /// version afterwards. See the module docs of `refresh` for how
    /// concurrent requests share fetches.
    ///
    /// A throttled request inside `min_refresh_interval` of the last fetch
    /// returns the current version without fetching.
    pub async fn refresh(&self, kind: Refresh) -> Result<MapVersion, RefreshError> {
        // Flights numbered at or above this started after the request.
        let fresh_from = self.flights.lock().started;
        loop {
            let Some(flight) = self.join_or_start(kind, fresh_from) else {
                return Ok(self.version());
            };
            let result = flight.fetch.clone().await;
            {
                let mut state = self.flights.lock();
                if state.in_flight.as_ref().is_some_and(|f| f.id == flight.id) {
                    state.landed = state.in_flight.take();
                }
            }
            let outcome = self.absorb(result);
            if kind == Refresh::Throttled || flight.id >= fresh_from {
                return outcome;
            }
            // The flight started before a forced request: its answer may
            // predate what the caller knows. Go again.
        }
    }

    /// The flight to wait on: the one in the air; for a forced request, one
    /// that landed but started after `fresh_from`; else a new one, unless a
    /// throttled request falls inside the interval (then `None`).
    fn join_or_start(&self, kind: Refresh, fresh_from: u64) -> Option<Flight> {
        let mut state = self.flights.lock();
        if let Some(flight) = &state.in_flight {
            return Some(flight.clone());
        }
        let now = Instant::now();
        match kind {
            Refresh::Forced => {
                if let Some(landed) = state.landed.as_ref().filter(|f| f.id >= fresh_from) {
                    return Some(landed.clone());
                }
            }
            Refresh::Throttled => {
                let interval = self.config.min_refresh_interval;
                if state
                    .last_start
                    .is_some_and(|t| now.duration_since(t) < interval)
                {
                    return None;
                }
            }
        }
        let flight = Flight {
            id: state.started,
            fetch: self.start_fetch(),
        };
        state.started += 1;
        state.last_start = Some(now);
        state.in_flight = Some(flight.clone());
        Some(flight)
    }

    fn start_fetch(&self) -> Shared<BoxFuture<'static, FetchResult>> {
        let source = Arc::clone(&self.source);
        let counters = Arc::clone(&self.counters);
        let newer_than = self.version();
        async move {
            bump(&counters.fetches);
            let result = source.fetch(newer_than).await;
            if result.is_err() {
                bump(&counters.fetch_errors);
            }
            result.map(|map| map.map(Arc::new))
        }
        .boxed()
        .shared()
    }

    /// Installs what a flight brought back. Every joiner calls this; all but
    /// the first find the map already installed.
    fn absorb(&self, result: FetchResult) -> Result<MapVersion, RefreshError> {
        let Some(map) = result? else {
            return Ok(self.version());
        };
        match self.install_arc(map) {
            Ok(version) => Ok(version),
            Err(UpdateError::Invalid { version, error }) => {
                Err(RefreshError::InvalidMap { version, error })
            }
            Err(UpdateError::Stale { .. } | UpdateError::Gap { .. }) => Ok(self.version()),
        }
    }
}
