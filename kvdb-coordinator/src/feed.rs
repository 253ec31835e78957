//! What the applier publishes after every applied batch: a lock-free
//! [`View`] of the applied state, and a broadcast of the new deltas.
//!
//! Publishing does constant work per event, whatever the number of
//! watchers: the applier stores the view and queues the events in a small
//! inbox, and a [`Distributor`] task moves them to the broadcast, which is
//! where every waiting watcher gets woken. The applier (and so the Raft
//! commit path, which holds the state machine while applying) never wakes
//! watchers itself.
//!
//! The broadcast is a bounded ring shared by all watchers: sending never
//! waits, so neither the distributor nor a fast watcher ever waits for a
//! slow one. A watcher that falls more than the ring's capacity behind loses
//! its place (`Lagged`) and resynchronizes from the [`View`]'s shared
//! snapshot. Should the distributor itself fall as far behind, the inbox
//! collapses into one [`FeedEvent::Reset`], with the same effect.
//!
//! Ordering contract: the view is stored before the deltas that produced it
//! are queued, so a watcher that reads the view at version V can skip every
//! delta up to V and miss nothing after it.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use kvdb_core::ShardMap;
use openraft::LogId;
use tokio::sync::{Notify, broadcast};

use crate::event::SharedEvent;
use crate::state::{InitParams, MemberAddress};

/// The applied state, as readers see it.
#[derive(Debug, Clone)]
pub struct View {
    /// The applied shard map.
    pub map: Arc<ShardMap>,
    /// [`View::map`] as a watch snapshot, encoded at most once for all the
    /// watchers that need it.
    pub snapshot: Arc<SharedEvent>,
    /// Shard initialization parameters, once initialized.
    pub init: Option<InitParams>,
    /// Addresses of coordinator members that have led.
    pub members: BTreeMap<u64, MemberAddress>,
    /// The last applied Raft log id.
    pub applied: Option<LogId<u64>>,
    /// Whether an operator paused the scheduler.
    pub scheduler_paused: bool,
}

impl View {
    /// The view of `map` and the rest of the applied state.
    pub fn new(
        map: Arc<ShardMap>,
        init: Option<InitParams>,
        members: BTreeMap<u64, MemberAddress>,
        applied: Option<LogId<u64>>,
    ) -> Self {
        Self {
            snapshot: SharedEvent::snapshot(map.clone()),
            map,
            init,
            members,
            applied,
            scheduler_paused: false,
        }
    }
}

impl Default for View {
    fn default() -> Self {
        Self::new(Arc::default(), None, BTreeMap::new(), None)
    }
}

/// One event for watchers.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// The change that produced one map version.
    Delta(Arc<SharedEvent>),
    /// The state was replaced (a Raft snapshot was installed), or events
    /// were dropped: resynchronize from the view.
    Reset,
}

/// Events published but not yet broadcast.
#[derive(Debug)]
struct Inbox {
    queue: Mutex<VecDeque<FeedEvent>>,
    /// Signalled after every push; holds a permit while nobody waits.
    ready: Notify,
    capacity: usize,
}

/// The publishing side, shared by the state machine and every reader.
#[derive(Debug)]
pub struct Feed {
    view: ArcSwap<View>,
    inbox: Arc<Inbox>,
    events: broadcast::Sender<FeedEvent>,
    /// What the watchers were sent, for the coordinator's metrics.
    pub(crate) sent: WatchCounts,
}

/// Counts of what watchers were sent.
#[derive(Debug, Default)]
pub(crate) struct WatchCounts {
    /// Events (snapshots and deltas) handed to watchers.
    pub(crate) events: std::sync::atomic::AtomicU64,
    /// Snapshots sent because a watcher fell behind the feed's buffer or saw a gap.
    pub(crate) resyncs: std::sync::atomic::AtomicU64,
}

/// Moves published events from the [`Feed`]'s inbox to its broadcast; run
/// it with [`Distributor::run`] for as long as the feed is in use.
#[derive(Debug)]
pub struct Distributor {
    inbox: Arc<Inbox>,
    events: broadcast::Sender<FeedEvent>,
}

impl Feed {
    /// A feed whose watchers may fall `buffer` events behind, and the
    /// distributor that must run for its events to reach them.
    pub fn new(buffer: usize) -> (Self, Distributor) {
        let capacity = buffer.max(1);
        let (events, _) = broadcast::channel(capacity);
        let inbox = Arc::new(Inbox {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity,
        });
        let feed = Self {
            view: ArcSwap::from_pointee(View::default()),
            inbox: inbox.clone(),
            events: events.clone(),
            sent: WatchCounts::default(),
        };
        (feed, Distributor { inbox, events })
    }

    /// The current view; never blocks.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// How many watchers follow the feed now.
    pub fn watchers(&self) -> usize {
        self.events.receiver_count()
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.events.subscribe()
    }

    /// Stores `view`, then queues `events` for the distributor (see the
    /// ordering contract). Never waits, and costs the same with any number
    /// of watchers.
    pub fn publish(&self, view: View, events: impl IntoIterator<Item = FeedEvent>) {
        self.view.store(Arc::new(view));
        let mut queue = self
            .inbox
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queue.extend(events);
        if queue.len() > self.inbox.capacity {
            // Watchers would lag past these anyway; they resync from the view.
            queue.clear();
            queue.push_back(FeedEvent::Reset);
        }
        drop(queue);
        self.inbox.ready.notify_one();
    }
}

impl Distributor {
    /// Broadcasts published events until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = self.inbox.ready.notified() => {}
                _ = &mut stop => return,
            }
            let batch = std::mem::take(
                &mut *self
                    .inbox
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for event in batch {
                // An error only means there is no watcher right now.
                let _ = self.events.send(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::{MapVersion, ShardMapDelta};

    fn delta(version: u64) -> FeedEvent {
        FeedEvent::Delta(SharedEvent::delta(Arc::new(ShardMapDelta {
            version: MapVersion(version),
            ..ShardMapDelta::default()
        })))
    }

    fn version(event: &FeedEvent) -> Option<u64> {
        match event {
            FeedEvent::Delta(shared) => Some(shared.version().0),
            FeedEvent::Reset => None,
        }
    }

    #[tokio::test]
    async fn the_distributor_broadcasts_published_events_in_order() {
        let (feed, distributor) = Feed::new(8);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(distributor.run(async {
            let _ = stopped.await;
        }));
        let mut events = feed.subscribe();
        feed.publish(View::default(), [delta(1), delta(2)]);
        feed.publish(View::default(), [delta(3)]);
        for expected in 1..=3 {
            assert_eq!(version(&events.recv().await.unwrap()), Some(expected));
        }
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_overfull_inbox_collapses_into_a_reset() {
        let (feed, distributor) = Feed::new(2);
        let mut events = feed.subscribe();
        // The distributor is not running yet: the inbox fills up.
        feed.publish(View::default(), [delta(1), delta(2)]);
        feed.publish(View::default(), [delta(3)]);
        feed.publish(View::default(), [delta(4)]);
        let task = tokio::spawn(distributor.run(std::future::pending()));
        assert_eq!(version(&events.recv().await.unwrap()), None);
        assert_eq!(version(&events.recv().await.unwrap()), Some(4));
        task.abort();
    }
}
