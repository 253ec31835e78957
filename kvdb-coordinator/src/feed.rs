//! What the applier publishes after every applied batch: a lock-free
//! [`View`] of the applied state, and a broadcast of the new deltas.
//!
//! The broadcast is a bounded ring shared by all watchers: sending never
//! waits, so neither the applier nor a fast watcher ever waits for a slow
//! one. A watcher that falls more than the ring's capacity behind loses its
//! place (`Lagged`) and resynchronizes from a snapshot of the [`View`].
//!
//! Ordering contract: the view is stored before the deltas that produced it
//! are sent, so a watcher that reads the view at version V can skip every
//! delta up to V and miss nothing after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use kvdb_core::{ShardMap, ShardMapDelta};
use openraft::LogId;
use tokio::sync::broadcast;

use crate::state::{InitParams, MemberAddress};

/// The applied state, as readers see it.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The applied shard map.
    pub map: Arc<ShardMap>,
    /// Shard initialization parameters, once initialized.
    pub init: Option<InitParams>,
    /// Addresses of coordinator members that have led.
    pub members: BTreeMap<u64, MemberAddress>,
    /// The last applied Raft log id.
    pub applied: Option<LogId<u64>>,
}

/// One event for watchers.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// The change that produced one map version.
    Delta(Arc<ShardMapDelta>),
    /// The state was replaced (a Raft snapshot was installed): deltas may
    /// have been skipped, resynchronize from the view.
    Reset,
}

/// The publishing side, shared by the state machine and every reader.
#[derive(Debug)]
pub struct Feed {
    view: ArcSwap<View>,
    events: broadcast::Sender<FeedEvent>,
}

impl Feed {
    /// A feed whose watchers may fall `buffer` events behind.
    pub fn new(buffer: usize) -> Self {
        let (events, _) = broadcast::channel(buffer.max(1));
        Self {
            view: ArcSwap::from_pointee(View::default()),
            events,
        }
    }

    /// The current view; never blocks.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.events.subscribe()
    }

    /// Stores `view`, then sends `events` (see the ordering contract).
    pub fn publish(&self, view: View, events: impl IntoIterator<Item = FeedEvent>) {
        self.view.store(Arc::new(view));
        for event in events {
            // An error only means there is no watcher right now.
            let _ = self.events.send(event);
        }
    }
}
