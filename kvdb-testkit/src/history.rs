//! Recording what clients did: invoke and complete events in real-time order.
//!
//! Every client task holds a clone of one [`Recorder`]. It calls
//! [`Recorder::invoke`] just before sending a request and
//! [`PendingOp::complete`] just after the answer arrives. Events are appended
//! under one mutex, and an event's position in the log is its logical
//! timestamp: if a completion is recorded before an invocation starts in real
//! time, it gets the smaller timestamp, which is all the checker needs. The
//! elapsed wall time is kept alongside for humans reading a report.
//!
//! A [`PendingOp`] dropped without completion (the task was cancelled or
//! panicked) records [`Outcome::Unknown`], which is what such an operation is.
//!
//! Out of scope: persisting histories, and checking that a client never has
//! two operations in flight (the workload's job).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::op::{ClientId, Key, Op, OpId, Outcome};

/// A thread-safe, cheaply cloneable recorder of one workload's history.
#[derive(Debug, Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    start: Instant,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<Event>,
    next_op: u64,
}

/// One entry of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The operation this event belongs to.
    pub op: OpId,
    /// Logical timestamp: the event's position in the log. Consistent with
    /// real time across all clients.
    pub time: u64,
    /// Wall time since the recorder started, for reports.
    pub elapsed: Duration,
    /// What happened.
    pub kind: EventKind,
}

/// Whether an event starts or ends an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A client sent a request.
    Invoke {
        /// The client that sent it.
        client: ClientId,
        /// The key it targets.
        key: Key,
        /// The request.
        op: Op,
    },
    /// The client learnt how the request ended.
    Complete(Outcome),
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            shared: Arc::new(Shared {
                start: Instant::now(),
                log: Mutex::new(Log::default()),
            }),
        }
    }

    /// Records that `client` is about to send `op` on `key`. Complete the
    /// returned handle when the answer arrives.
    pub fn invoke(&self, client: ClientId, key: impl Into<Key>, op: Op) -> PendingOp {
        let kind = EventKind::Invoke {
            client,
            key: key.into(),
            op,
        };
        let mut log = self.lock();
        let id = OpId(log.next_op);
        log.next_op += 1;
        self.push(&mut log, id, kind);
        PendingOp {
            recorder: self.clone(),
            id,
            completed: false,
        }
    }

    /// A snapshot of everything recorded so far. Operations still in flight
    /// appear with an [`Outcome::Unknown`] result.
    pub fn history(&self) -> History {
        History {
            events: self.lock().events.clone(),
        }
    }

    fn complete(&self, id: OpId, outcome: Outcome) {
        let mut log = self.lock();
        self.push(&mut log, id, EventKind::Complete(outcome));
    }

    fn push(&self, log: &mut Log, op: OpId, kind: EventKind) {
        let time = log.events.len() as u64;
        let elapsed = self.shared.start.elapsed();
        log.events.push(Event {
            op,
            time,
            elapsed,
            kind,
        });
    }

    /// Locks the log. A client task that panicked while holding the lock
    /// cannot have left it half-written (pushes are atomic), so poisoning is
    /// ignored rather than losing the history.
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// An invoked operation awaiting its outcome. Dropping it uncompleted records
/// [`Outcome::Unknown`].
#[derive(Debug)]
#[must_use = "complete the operation with its outcome"]
pub struct PendingOp {
    recorder: Recorder,
    id: OpId,
    completed: bool,
}

impl PendingOp {
    /// The operation's id in the history.
    pub fn id(&self) -> OpId {
        self.id
    }

    /// Records how the operation ended.
    pub fn complete(mut self, outcome: Outcome) {
        self.completed = true;
        self.recorder.complete(self.id, outcome);
    }
}

impl Drop for PendingOp {
    fn drop(&mut self) {
        if !self.completed {
            self.recorder.complete(self.id, Outcome::Unknown);
        }
    }
}

/// A recorded history: the raw events and their pairing into operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

/// One operation with both ends paired up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its id.
    pub id: OpId,
    /// The client that issued it.
    pub client: ClientId,
    /// The key it targeted.
    pub key: Key,
    /// The request.
    pub op: Op,
    /// How it ended ([`Outcome::Unknown`] if it never completed).
    pub outcome: Outcome,
    /// Logical time of the invocation.
    pub invoked_at: u64,
    /// Logical time of the completion, if it completed.
    pub completed_at: Option<u64>,
    /// Wall time of the invocation since the recorder started.
    pub invoked_after: Duration,
    /// Wall time of the completion since the recorder started.
    pub completed_after: Option<Duration>,
}

/// Counts of operations by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// All operations.
    pub operations: usize,
    /// Operations that completed with [`Outcome::Ok`].
    pub ok: usize,
    /// Operations that completed with [`Outcome::Fail`].
    pub failed: usize,
    /// Operations with an [`Outcome::Unknown`] result.
    pub unknown: usize,
}

impl History {
    /// The raw events, in logical-time order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The operations, in invocation order, each paired with its completion.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops: Vec<Operation> = Vec::new();
        // Op ids are assigned densely in invocation order, so an id indexes `ops`.
        for event in &self.events {
            match &event.kind {
                EventKind::Invoke { client, key, op } => ops.push(Operation {
                    id: event.op,
                    client: *client,
                    key: key.clone(),
                    op: op.clone(),
                    outcome: Outcome::Unknown,
                    invoked_at: event.time,
                    completed_at: None,
                    invoked_after: event.elapsed,
                    completed_after: None,
                }),
                EventKind::Complete(outcome) => {
                    if let Some(op) = ops.get_mut(event.op.0 as usize) {
                        op.outcome = outcome.clone();
                        op.completed_at = Some(event.time);
                        op.completed_after = Some(event.elapsed);
                    }
                }
            }
        }
        ops
    }

    /// The operations split per key, each list in invocation order.
    pub fn by_key(&self) -> BTreeMap<Key, Vec<Operation>> {
        let mut keys: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
        for op in self.operations() {
            keys.entry(op.key.clone()).or_default().push(op);
        }
        keys
    }

    /// How many operations ended which way.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for op in self.operations() {
            summary.operations += 1;
            match op.outcome {
                Outcome::Ok(_) => summary.ok += 1,
                Outcome::Fail => summary.failed += 1,
                Outcome::Unknown => summary.unknown += 1,
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Output;

    #[test]
    fn events_pair_into_operations_in_real_time_order() {
        let recorder = Recorder::new();
        let write = recorder.invoke(ClientId(1), "k", Op::write("a"));
        let read = recorder.invoke(ClientId(2), "k", Op::Read);
        write.complete(Outcome::Ok(Output::applied(3)));
        read.complete(Outcome::Ok(Output::read("a", 3)));

        let ops = recorder.history().operations();
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].invoked_at, ops[0].completed_at), (0, Some(2)));
        assert_eq!((ops[1].invoked_at, ops[1].completed_at), (1, Some(3)));
        assert_eq!(ops[1].outcome, Outcome::Ok(Output::read("a", 3)));
    }

    #[test]
    fn dropped_and_in_flight_operations_are_unknown() {
        let recorder = Recorder::new();
        drop(recorder.invoke(ClientId(1), "k", Op::write("a")));
        let _in_flight = recorder.invoke(ClientId(2), "k", Op::Delete);

        let history = recorder.history();
        let ops = history.operations();
        assert_eq!(ops[0].outcome, Outcome::Unknown);
        assert!(ops[0].completed_at.is_some());
        assert_eq!(ops[1].outcome, Outcome::Unknown);
        assert_eq!(ops[1].completed_at, None);
        assert_eq!(history.summary().unknown, 2);
    }

    #[test]
    fn by_key_splits_operations() {
        let recorder = Recorder::new();
        for key in ["a", "b", "a"] {
            recorder
                .invoke(ClientId(1), key, Op::Read)
                .complete(Outcome::Ok(Output::absent()));
        }
        let keys = recorder.history().by_key();
        assert_eq!(keys[b"a".as_slice()].len(), 2);
        assert_eq!(keys[b"b".as_slice()].len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_record_concurrently() {
        let recorder = Recorder::new();
        let tasks: Vec<_> = (0..8)
            .map(|client| {
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        recorder
                            .invoke(ClientId(client), "k", Op::Read)
                            .complete(Outcome::Fail);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let history = recorder.history();
        assert_eq!(history.events().len(), 1600);
        assert_eq!(history.summary().failed, 800);
    }
}
