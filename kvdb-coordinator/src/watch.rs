//! One shard-map watcher: every change after a version, in order, with a
//! snapshot whenever deltas cannot be delivered.
//!
//! A [`Watcher`] starts from the state machine's delta history (or a snapshot
//! when the requested version is older than the history, or 0) and then
//! follows the [`Feed`] broadcast. It falls back to a snapshot of the current
//! view when it lagged behind the broadcast's bounded buffer, when the state
//! was replaced by a Raft snapshot, or when it sees a version gap; after a
//! snapshot it skips every delta the snapshot already contains. Versions seen
//! by a watcher therefore only increase, and deltas are contiguous between
//! snapshots.
//!
//! Events travel as [`SharedEvent`]s: the broadcast deltas and the view's
//! snapshot are the same allocations for every watcher, so their wire
//! encoding is built once. Out of scope: sharing the history deltas replayed
//! to a watcher that resumes from an older version (each such watcher gets
//! its own copies; resuming is rare next to following the feed).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::Fuse;
use futures::future::{FusedFuture, FutureExt};
use kvdb_core::MapVersion;
use tokio::sync::{RwLock, broadcast, watch};

pub use crate::event::MapEvent;
use crate::event::SharedEvent;
use crate::feed::{Feed, FeedEvent};
use crate::machine::MetaMachine;

/// Completes once the coordinator stops. Kept across calls to
/// [`Watcher::next`] so that it registers its interest once, not per event.
type Stopped = Fuse<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>;

/// A stream of [`MapEvent`]s for one watcher; see the module docs.
pub struct Watcher {
    feed: Arc<Feed>,
    events: broadcast::Receiver<FeedEvent>,
    pending: VecDeque<Arc<SharedEvent>>,
    last: MapVersion,
    stopped: Stopped,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("last", &self.last)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher of the changes after `from` (a snapshot first when `from`
    /// is 0 or older than the history). Ends when `stop` turns true.
    pub(crate) async fn start(
        feed: Arc<Feed>,
        machine: &RwLock<MetaMachine>,
        from: MapVersion,
        mut stop: watch::Receiver<bool>,
    ) -> Self {
        // Subscribe before reading the history, so nothing falls in between.
        let events = feed.subscribe();
        let machine = machine.read().await;
        let state = machine.state();
        let history = (from > MapVersion(0))
            .then(|| state.deltas_after(from))
            .flatten();
        let (pending, last): (VecDeque<Arc<SharedEvent>>, MapVersion) = match history {
            Some(deltas) => {
                let last = deltas.last().map_or(from, |d| d.version);
                (deltas.into_iter().map(SharedEvent::delta).collect(), last)
            }
            None => {
                // The view is published while the machine is locked for
                // applying, so under the read lock it matches the state.
                let view = feed.view();
                let snapshot = if view.map.version == state.version() {
                    view.snapshot.clone()
                } else {
                    SharedEvent::snapshot(state.map().clone())
                };
                let last = snapshot.version();
                (VecDeque::from([snapshot]), last)
            }
        };
        drop(machine);
        let stopped: Pin<Box<dyn Future<Output = ()> + Send + Sync>> = Box::pin(async move {
            // An error means the coordinator is gone: stopped as well.
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        Self {
            feed,
            events,
            pending,
            last,
            stopped: stopped.fuse(),
        }
    }

    /// The version of the last event returned (or the starting version).
    pub fn version(&self) -> MapVersion {
        self.last
    }

    /// The next event, or `None` once the coordinator stops.
    pub async fn next(&mut self) -> Option<MapEvent> {
        let shared = self.next_shared().await?;
        Some(shared.event().clone())
    }

    /// The next event in its shared form (see [`SharedEvent`]), or `None`
    /// once the coordinator stops.
    pub(crate) async fn next_shared(&mut self) -> Option<Arc<SharedEvent>> {
        let event = self.next_event().await;
        if event.is_some() {
            self.feed.sent.events.fetch_add(1, Ordering::Relaxed);
        }
        event
    }

    async fn next_event(&mut self) -> Option<Arc<SharedEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.stopped.is_terminated() {
                return None;
            }
            let received = tokio::select! {
                received = self.events.recv() => received,
                _ = &mut self.stopped => return None,
            };
            let resync = match received {
                Ok(FeedEvent::Delta(delta)) if delta.version() <= self.last => continue,
                Ok(FeedEvent::Delta(delta)) if delta.version() == self.last.next() => {
                    self.last = delta.version();
                    return Some(delta);
                }
                Ok(FeedEvent::Delta(_)) | Ok(FeedEvent::Reset) => true,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "watcher fell behind; sending a snapshot");
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if resync {
                let snapshot = self.feed.view().snapshot.clone();
                if snapshot.version() > self.last {
                    self.feed.sent.resyncs.fetch_add(1, Ordering::Relaxed);
                    self.last = snapshot.version();
                    return Some(snapshot);
                }
            }
        }
    }
}
