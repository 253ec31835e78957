//! [`ControlledSource`]: the coordinator as a shard-map source, with switches
//! a test flips to cut the watch stream or freeze what a client learns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kvdb::core::cache::{ShardMapSource, SourceError, WatchStream};
use kvdb::core::coordinator_client::CoordinatorClient;
use kvdb::core::{MapVersion, ShardMap};
use tokio::sync::watch;

/// What the source does with watch streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchGate {
    /// Events flow from the coordinator.
    Open,
    /// Open streams fail at once and new ones are refused, so the cache
    /// falls back to polling `fetch`.
    Cut,
    /// Streams stay open but deliver nothing (events wait at the
    /// coordinator), so the cache believes it is watching and never polls.
    Frozen,
}

/// A [`CoordinatorClient`] whose watch can be cut or frozen and whose
/// `fetch` can be frozen (answering "nothing newer").
pub struct ControlledSource {
    inner: CoordinatorClient,
    gate: watch::Sender<WatchGate>,
    fetch_frozen: AtomicBool,
    fetches: Arc<AtomicU64>,
}

impl ControlledSource {
    /// A source passing everything through to `inner`.
    pub fn new(inner: CoordinatorClient) -> ControlledSource {
        ControlledSource {
            inner,
            gate: watch::Sender::new(WatchGate::Open),
            fetch_frozen: AtomicBool::new(false),
            fetches: Arc::default(),
        }
    }

    /// Switches what watch streams do, including the open ones.
    pub fn set_watch(&self, gate: WatchGate) {
        self.gate.send_replace(gate);
    }

    /// While frozen, `fetch` answers "nothing newer" without asking.
    pub fn freeze_fetch(&self, frozen: bool) {
        self.fetch_frozen.store(frozen, Ordering::SeqCst);
    }

    /// Fetches that reached the coordinator.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl ShardMapSource for ControlledSource {
    fn fetch(
        &self,
        newer_than: MapVersion,
    ) -> BoxFuture<'_, Result<Option<ShardMap>, SourceError>> {
        if self.fetch_frozen.load(Ordering::SeqCst) {
            return futures::future::ready(Ok(None)).boxed();
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(newer_than)
    }

    fn watch(&self, from: MapVersion) -> BoxFuture<'_, Result<WatchStream, SourceError>> {
        async move {
            if *self.gate.borrow() == WatchGate::Cut {
                return Err(cut());
            }
            let inner = self.inner.watch(from).await?;
            Ok(gated(inner, self.gate.subscribe()))
        }
        .boxed()
    }
}

fn cut() -> SourceError {
    SourceError::Unavailable {
        reason: "watch cut by the test".into(),
    }
}

/// `inner`, obeying `gate`: passes events while open, holds them while
/// frozen, and fails then ends once cut.
fn gated(inner: WatchStream, gate: watch::Receiver<WatchGate>) -> WatchStream {
    futures::stream::unfold(Some((inner, gate)), |state| async move {
        let (mut inner, mut gate) = state?;
        loop {
            let now = *gate.borrow_and_update();
            match now {
                WatchGate::Cut => return Some((Err(cut()), None)),
                WatchGate::Frozen => {
                    if gate.changed().await.is_err() {
                        return None;
                    }
                }
                WatchGate::Open => {
                    tokio::select! {
                        item = inner.next() => {
                            let item = item?;
                            return Some((item, Some((inner, gate))));
                        }
                        changed = gate.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                        }
                    }
                }
            }
        }
    })
    .boxed()
}
