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

use std::collections::VecDeque;
use std::sync::Arc;

use kvdb_core::{MapVersion, ShardMap, ShardMapDelta};
use tokio::sync::{RwLock, broadcast, watch};

use crate::feed::{Feed, FeedEvent};
use crate::machine::MetaMachine;

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEvent {
    /// The full map; the watcher resumes after its version.
    Snapshot(Arc<ShardMap>),
    /// The change that produced the next map version.
    Delta(Arc<ShardMapDelta>),
}

impl MapEvent {
    /// The map version after this event.
    pub fn version(&self) -> MapVersion {
        match self {
            MapEvent::Snapshot(map) => map.version,
            MapEvent::Delta(delta) => delta.version,
        }
    }
}

/// A stream of [`MapEvent`]s for one watcher; see the module docs.
#[derive(Debug)]
pub struct Watcher {
    feed: Arc<Feed>,
    events: broadcast::Receiver<FeedEvent>,
    pending: VecDeque<MapEvent>,
    last: MapVersion,
    stop: watch::Receiver<bool>,
}

impl Watcher {
    /// A watcher of the changes after `from` (a snapshot first when `from`
    /// is 0 or older than the history). Ends when `stop` turns true.
    pub(crate) async fn start(
        feed: Arc<Feed>,
        machine: &RwLock<MetaMachine>,
        from: MapVersion,
        stop: watch::Receiver<bool>,
    ) -> Self {
        // Subscribe before reading the history, so nothing falls in between.
        let events = feed.subscribe();
        let machine = machine.read().await;
        let state = machine.state();
        let history = (from > MapVersion(0))
            .then(|| state.deltas_after(from))
            .flatten();
        let (pending, last): (VecDeque<MapEvent>, MapVersion) = match history {
            Some(deltas) => {
                let last = deltas.last().map_or(from, |d| d.version);
                (deltas.into_iter().map(MapEvent::Delta).collect(), last)
            }
            None => {
                let map = state.map().clone();
                let last = map.version;
                (VecDeque::from([MapEvent::Snapshot(map)]), last)
            }
        };
        drop(machine);
        Self {
            feed,
            events,
            pending,
            last,
            stop,
        }
    }

    /// The version of the last event returned (or the starting version).
    pub fn version(&self) -> MapVersion {
        self.last
    }

    /// The next event, or `None` once the coordinator stops.
    pub async fn next(&mut self) -> Option<MapEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let received = tokio::select! {
                received = self.events.recv() => received,
                _ = self.stop.wait_for(|stopped| *stopped) => return None,
            };
            let resync = match received {
                Ok(FeedEvent::Delta(delta)) if delta.version <= self.last => continue,
                Ok(FeedEvent::Delta(delta)) if delta.version == self.last.next() => {
                    self.last = delta.version;
                    return Some(MapEvent::Delta(delta));
                }
                Ok(FeedEvent::Delta(_)) | Ok(FeedEvent::Reset) => true,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "watcher fell behind; sending a snapshot");
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if resync {
                let map = self.feed.view().map.clone();
                if map.version > self.last {
                    self.last = map.version;
                    return Some(MapEvent::Snapshot(map));
                }
            }
        }
    }
}
