//! The background task that keeps a cache up to date.
//!
//! It fetches the map once, then follows the source's watch stream. When the
//! stream fails or ends it switches to [`Mode::Polling`]: it calls `fetch`
//! every `poll_interval` and reopens the watch after a backoff delay
//! (exponential between `watch_retry_min` and `watch_retry_max`, with
//! jitter so a fleet of clients does not reconnect in step). Once a watch
//! opens it stops polling and is back in [`Mode::Watching`].
//!
//! The task holds only a weak reference to the cache between steps, so it
//! stops when the last `Arc<ShardMapCache>` is dropped, as well as on
//! [`ShardMapCache::shutdown`] or [`DriverHandle::shutdown`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, sleep_until};

use super::metrics::bump;
use super::{
    CacheConfig, ConfigError, Mode, Refresh, ShardMapCache, ShardMapSource, UpdateError,
    WatchEvent, WatchStream,
};
use crate::backoff::{Backoff, Jitter};

/// Controls the driver task started by [`ShardMapCache::spawn`].
///
/// Dropping the handle detaches it: the driver keeps running until the
/// cache is dropped or shut down.
#[derive(Debug)]
pub struct DriverHandle {
    cache: Weak<ShardMapCache>,
    task: JoinHandle<()>,
}

impl DriverHandle {
    /// Stops the driver and waits for it to finish. An error means the
    /// driver panicked.
    pub async fn shutdown(self) -> Result<(), JoinError> {
        if let Some(cache) = self.cache.upgrade() {
            cache.shutdown();
        }
        self.task.await
    }

    /// Whether the driver has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl ShardMapCache {
    /// Creates a cache and starts its driver on the current Tokio runtime.
    ///
    /// The cache starts empty (version 0); await
    /// [`wait_for_version`](Self::wait_for_version) for the first load.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn(
        source: Arc<dyn ShardMapSource>,
        config: CacheConfig,
    ) -> Result<(Arc<Self>, DriverHandle), ConfigError> {
        let cache = Self::new(source, config)?;
        let weak = Arc::downgrade(&cache);
        let mut stop = cache.stop.subscribe();
        cache.set_mode(Mode::Polling);
        let task = tokio::spawn({
            let weak = weak.clone();
            async move {
                tokio::select! {
                    // Also completes when the cache is dropped and the channel closes.
                    _ = stop.wait_for(|stopped| *stopped) => {}
                    _ = drive(&weak) => {}
                }
                if let Some(cache) = weak.upgrade() {
                    cache.set_mode(Mode::Idle);
                }
            }
        });
        Ok((cache, DriverHandle { cache: weak, task }))
    }
}

/// The driver loop. Returns `None` once the cache is gone.
async fn drive(weak: &Weak<ShardMapCache>) -> Option<()> {
    let config = weak.upgrade()?.config.clone();
    let backoff = Backoff::new(config.watch_retry_min, config.watch_retry_max, Jitter::Half);
    let mut failed_watches = 0;
    let mut next_poll = Instant::now();
    let mut watched_before = false;
    loop {
        if Instant::now() >= next_poll {
            poll(weak).await?;
            next_poll = Instant::now() + config.poll_interval;
        }
        if let Some(stream) = open_watch(weak).await? {
            if watched_before {
                bump(&weak.upgrade()?.counters.watch_restarts);
            }
            watched_before = true;
            weak.upgrade()?.set_mode(Mode::Watching);
            let healthy = follow(weak, stream, config.watch_retry_max).await?;
            weak.upgrade()?.set_mode(Mode::Polling);
            if healthy {
                failed_watches = 0;
            }
            // Changes may have been missed while the stream was dying.
            next_poll = Instant::now();
        }
        let retry_at = Instant::now() + backoff.delay(failed_watches);
        failed_watches = failed_watches.saturating_add(1);
        while next_poll < retry_at {
            sleep_until(next_poll).await;
            poll(weak).await?;
            next_poll = Instant::now() + config.poll_interval;
        }
        sleep_until(retry_at).await;
    }
}

async fn poll(weak: &Weak<ShardMapCache>) -> Option<()> {
    let cache = weak.upgrade()?;
    if let Err(error) = cache.refresh(Refresh::Forced).await {
        tracing::debug!(%error, "shard-map poll failed");
    }
    Some(())
}

/// Opens a watch from the cached version; `Some(None)` when the source
/// refused.
async fn open_watch(weak: &Weak<ShardMapCache>) -> Option<Option<WatchStream>> {
    let cache = weak.upgrade()?;
    let from = cache.version();
    match cache.source.watch(from).await {
        Ok(stream) => Some(Some(stream)),
        Err(error) => {
            tracing::debug!(%error, %from, "shard-map watch could not open");
            Some(None)
        }
    }
}

/// Applies the stream's events until it fails or ends. Returns whether the
/// stream was healthy (delivered an event or stayed up for `long_enough`),
/// which resets the reopen backoff.
async fn follow(
    weak: &Weak<ShardMapCache>,
    mut stream: WatchStream,
    long_enough: Duration,
) -> Option<bool> {
    let opened = Instant::now();
    let mut delivered = false;
    loop {
        let Some(item) = stream.next().await else {
            tracing::info!("shard-map watch ended; polling");
            break;
        };
        let cache = weak.upgrade()?;
        match item {
            Ok(event) => {
                delivered = true;
                absorb_event(&cache, event).await;
            }
            Err(error) => {
                tracing::info!(%error, "shard-map watch failed; polling");
                break;
            }
        }
    }
    Some(delivered || opened.elapsed() >= long_enough)
}

async fn absorb_event(cache: &ShardMapCache, event: WatchEvent) {
    let result = match event {
        WatchEvent::Snapshot(map) => cache.install(map),
        WatchEvent::Delta(delta) => cache.apply_delta(&delta),
    };
    match result {
        Ok(_) | Err(UpdateError::Invalid { .. }) => {}
        Err(UpdateError::Stale { current, offered }) => {
            bump(&cache.counters.stale_events);
            tracing::debug!(%current, %offered, "ignored a stale shard-map event");
        }
        Err(UpdateError::Gap { current, delta }) => {
            bump(&cache.counters.gaps);
            tracing::debug!(%current, %delta, "shard-map delta gap; fetching the map");
            if let Err(error) = cache.refresh(Refresh::Forced).await {
                tracing::warn!(%error, "shard-map fetch after a gap failed");
            }
        }
    }
}
