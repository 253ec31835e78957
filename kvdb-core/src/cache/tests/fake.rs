//! An in-memory [`ShardMapSource`] the tests steer: commit changes, break
//! and restore the watch, hold fetches in the air, and count calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::cache::{ShardMapSource, SourceError, WatchEvent, WatchStream};
use crate::ids::{Epoch, MapVersion, NodeId, ShardId, Slot};
use crate::shard_map::{NodeInfo, NodeStatus, ShardInfo, ShardMap, ShardMapDelta, ShardState};

type Watcher = mpsc::UnboundedSender<Result<WatchEvent, SourceError>>;

pub(super) struct FakeSource {
    state: Mutex<State>,
    /// Fetches wait while this is false.
    fetch_gate: watch::Sender<bool>,
    fail_fetches: AtomicBool,
    fetch_calls: watch::Sender<u64>,
    watch_calls: watch::Sender<u64>,
}

struct State {
    map: ShardMap,
    /// Version of the map the source started with; watchers older than it
    /// get a snapshot.
    first: MapVersion,
    history: Vec<ShardMapDelta>,
    watchers: Vec<Watcher>,
    watch_up: bool,
}

impl FakeSource {
    pub(super) fn new(map: ShardMap) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                first: map.version,
                map,
                history: Vec::new(),
                watchers: Vec::new(),
                watch_up: true,
            }),
            fetch_gate: watch::Sender::new(true),
            fail_fetches: AtomicBool::new(false),
            fetch_calls: watch::Sender::new(0),
            watch_calls: watch::Sender::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The source's current map.
    pub(super) fn map(&self) -> ShardMap {
        self.state().map.clone()
    }

    /// Applies `delta` and streams it to every watcher.
    pub(super) fn commit(&self, delta: ShardMapDelta) {
        self.commit_unannounced(delta.clone());
        self.send(WatchEvent::Delta(delta));
    }

    /// Applies `delta` without telling watchers, so they see a gap.
    pub(super) fn commit_unannounced(&self, delta: ShardMapDelta) {
        let mut state = self.state();
        state.map.apply(&delta).unwrap();
        state.history.push(delta);
    }

    /// Sends `event` as is to every watcher (for stale or bogus events).
    pub(super) fn send(&self, event: WatchEvent) {
        let mut state = self.state();
        state.watchers.retain(|w| w.send(Ok(event.clone())).is_ok());
    }

    /// Fails every open stream and refuses new watches.
    pub(super) fn break_watch(&self) {
        let mut state = self.state();
        state.watch_up = false;
        for watcher in state.watchers.drain(..) {
            let _ = watcher.send(Err(SourceError::Unavailable {
                reason: "watch broken by test".into(),
            }));
        }
    }

    /// Accepts watches again.
    pub(super) fn restore_watch(&self) {
        self.state().watch_up = true;
    }

    /// Makes fetches wait (after reading the map) until released.
    pub(super) fn hold_fetches(&self) {
        self.fetch_gate.send_replace(false);
    }

    pub(super) fn release_fetches(&self) {
        self.fetch_gate.send_replace(true);
    }

    pub(super) fn fail_fetches(&self, fail: bool) {
        self.fail_fetches.store(fail, Ordering::SeqCst);
    }

    pub(super) fn fetches(&self) -> u64 {
        *self.fetch_calls.borrow()
    }

    pub(super) fn watches(&self) -> u64 {
        *self.watch_calls.borrow()
    }

    /// Waits until at least `n` fetches have started.
    pub(super) async fn wait_fetches(&self, n: u64) {
        let mut rx = self.fetch_calls.subscribe();
        rx.wait_for(|calls| *calls >= n).await.unwrap();
    }
}

impl ShardMapSource for FakeSource {
    fn fetch(
        &self,
        newer_than: MapVersion,
    ) -> BoxFuture<'_, Result<Option<ShardMap>, SourceError>> {
        async move {
            self.fetch_calls.send_modify(|n| *n += 1);
            // Read first, answer later: a held fetch returns a map that may
            // be older than the source by the time it lands.
            let map = self.map();
            let mut gate = self.fetch_gate.subscribe();
            gate.wait_for(|open| *open).await.unwrap();
            if self.fail_fetches.load(Ordering::SeqCst) {
                return Err(SourceError::Unavailable {
                    reason: "fetch failed by test".into(),
                });
            }
            Ok((map.version > newer_than).then_some(map))
        }
        .boxed()
    }

    fn watch(&self, from: MapVersion) -> BoxFuture<'_, Result<WatchStream, SourceError>> {
        async move {
            self.watch_calls.send_modify(|n| *n += 1);
            let mut state = self.state();
            if !state.watch_up {
                return Err(SourceError::Unavailable {
                    reason: "watch down".into(),
                });
            }
            let (tx, rx) = mpsc::unbounded_channel();
            if from < state.first {
                tx.send(Ok(WatchEvent::Snapshot(state.map.clone())))
                    .unwrap();
            } else {
                for delta in state.history.iter().filter(|d| d.version > from) {
                    tx.send(Ok(WatchEvent::Delta(delta.clone()))).unwrap();
                }
            }
            state.watchers.push(tx);
            let stream: WatchStream = Box::pin(UnboundedReceiverStream::new(rx));
            Ok(stream)
        }
        .boxed()
    }
}

/// A valid map: nodes 1-3; shard 1 (slots 0-8191) on 1, 2, 3 led by 1;
/// shard 2 (slots 8192-16383) on 1, 2 led by 2.
pub(super) fn map_at(version: u64) -> ShardMap {
    let mut map = ShardMap {
        version: MapVersion(version),
        ..ShardMap::default()
    };
    for id in 1..=3 {
        map.nodes.insert(NodeId(id), node(id));
    }
    map.shards
        .insert(ShardId(1), shard(1, 0, 8191, &[1, 2, 3], 1));
    map.shards
        .insert(ShardId(2), shard(2, 8192, 16383, &[1, 2], 2));
    map
}

/// The delta for `version` that sets shard 1's leader.
pub(super) fn leader_delta(version: u64, leader: u64) -> ShardMapDelta {
    ShardMapDelta {
        version: MapVersion(version),
        shards: vec![shard(1, 0, 8191, &[1, 2, 3], leader)],
        ..ShardMapDelta::default()
    }
}

fn node(id: u64) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        name: format!("node-{id}"),
        address: format!("127.0.0.1:{}", 7000 + id),
        zone: "z1".into(),
        status: NodeStatus::Alive,
        resp_address: String::new(),
    }
}

fn shard(id: u64, start: u16, end: u16, replicas: &[u64], leader: u64) -> ShardInfo {
    ShardInfo {
        id: ShardId(id),
        slot_start: Slot(start),
        slot_end: Slot(end),
        replicas: replicas.iter().copied().map(NodeId).collect(),
        leader: Some(NodeId(leader)),
        epoch: Epoch(1),
        state: ShardState::Stable,
        leader_term: 1,
    }
}
