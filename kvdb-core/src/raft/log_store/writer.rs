//! The one thread that writes the Raft log, and its group commit.
//!
//! A dedicated OS thread rather than a tokio task: every commit ends in an fsync, which
//! must not stall an async worker, and the thread outlives any one runtime (tests run each case
//! in a fresh runtime). Requests arrive on a channel in submission order and are applied in that
//! order, so one group's writes never overtake each other.
//!
//! A request's completion runs on this thread right after its commit is durable (or failed):
//! appends settle their overlay entries there and report themselves flushed, other writes wake
//! their waiting submitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;

use super::journal::Journal;
use super::record::{Op, WriteOp};
use super::{LogDbError, LogDbOptions};

/// The outcome of the commit that held a request.
pub(super) type CommitResult = Result<(), Arc<LogDbError>>;

/// What runs on the writer thread once the commit holding a request is durable or failed. It
/// must be quick: the next commit waits for it.
pub(super) type Completion = Box<dyn FnOnce(CommitResult) + Send>;

struct WriteRequest {
    op: WriteOp,
    done: Completion,
}

/// Counters of a [`super::LogDb`]'s writes since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogDbStats {
    /// Write requests (appends, votes, committed ids, truncations, purges) completed.
    pub requests: u64,
    /// Append requests among them.
    pub appends: u64,
    /// Log entries written.
    pub entries: u64,
    /// Durable (fsync'd) commits. With group commit, fewer than `requests`.
    pub commits: u64,
    /// Committed-id saves that arrived with nothing to sync and waited for a later commit
    /// (every shard saves one per commit round: alone they would double the commits).
    pub held_saves: u64,
    /// Transactions that failed, failing every request in them.
    pub failed_commits: u64,
}

/// The writer's figures, shared with metrics collectors (which must not keep the writer, and
/// with it the log's files, open).
pub(super) struct Counters {
    requests: AtomicU64,
    appends: AtomicU64,
    entries: AtomicU64,
    commits: AtomicU64,
    held_saves: AtomicU64,
    failed_commits: AtomicU64,
    /// How long each durable commit took, fsync included.
    commit_seconds: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests: AtomicU64::default(),
            appends: AtomicU64::default(),
            entries: AtomicU64::default(),
            commits: AtomicU64::default(),
            held_saves: AtomicU64::default(),
            failed_commits: AtomicU64::default(),
            commit_seconds: crate::metrics::latency_histogram(),
        }
    }
}

/// The handle to the writer thread. Dropping it lets the thread finish what is queued, then
/// waits for it, so the log is closed when the last handle is gone.
pub(super) struct Writer {
    requests: Option<mpsc::Sender<WriteRequest>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    #[cfg(test)]
    gate: Arc<gate::Gate>,
}

impl Writer {
    pub(super) fn start(mut journal: Journal, options: LogDbOptions) -> Result<Self, LogDbError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        #[cfg(test)]
        let gate = Arc::new(gate::Gate::default());
        #[cfg(test)]
        let thread_gate = gate.clone();
        let thread = std::thread::Builder::new()
            .name("kvdb-raft-log-writer".to_owned())
            .spawn(move || {
                let mut ctx = Context {
                    journal: &mut journal,
                    options,
                    counters: &thread_counters,
                    #[cfg(test)]
                    gate: &thread_gate,
                };
                run(&mut ctx, &rx);
            })
            .map_err(LogDbError::SpawnWriter)?;
        Ok(Self {
            requests: Some(tx),
            thread: Some(thread),
            counters,
            #[cfg(test)]
            gate,
        })
    }

    /// Queues `op`; `done` runs on the writer thread once its commit is durable or failed.
    /// On error `done` is dropped without running.
    pub(super) fn enqueue(&self, op: WriteOp, done: Completion) -> Result<(), LogDbError> {
        let requests = self.requests.as_ref().ok_or(LogDbError::WriterStopped)?;
        requests
            .send(WriteRequest { op, done })
            .map_err(|_| LogDbError::WriterStopped)
    }

    /// Queues `op` and waits until the commit holding it is durable.
    pub(super) async fn submit(&self, op: WriteOp) -> Result<(), LogDbError> {
        let (done, wait) = oneshot::channel();
        self.enqueue(
            op,
            Box::new(move |result| {
                // The submitter may have given up waiting; the write stands either way.
                let _ = done.send(result);
            }),
        )?;
        match wait.await {
            Ok(result) => result.map_err(|source| LogDbError::Commit { source }),
            Err(_) => Err(LogDbError::WriterStopped),
        }
    }

    /// The test hook that holds or abandons commits.
    #[cfg(test)]
    pub(super) fn gate(&self) -> &gate::Gate {
        &self.gate
    }

    /// The latency of every durable commit so far.
    pub(super) fn commit_seconds(&self) -> Histogram {
        self.counters.commit_seconds.clone()
    }

    pub(super) fn stats(&self) -> LogDbStats {
        self.counters.stats()
    }

    /// The counters, to read after the writer is gone.
    pub(super) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

impl Counters {
    pub(super) fn stats(&self) -> LogDbStats {
        LogDbStats {
            requests: self.requests.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            held_saves: self.held_saves.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the queue is drained.
        self.requests.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("raft log writer thread panicked");
        }
    }
}

/// What the writer thread works with.
struct Context<'a> {
    journal: &'a mut Journal,
    options: LogDbOptions,
    counters: &'a Counters,
    #[cfg(test)]
    gate: &'a gate::Gate,
}

/// The writer loop: take a request, with group commit also everything queued behind it, write
/// them in one durable commit, then complete each.
fn run(ctx: &mut Context<'_>, requests: &mpsc::Receiver<WriteRequest>) {
    let counters = ctx.counters;
    let max_batch = if ctx.options.group_commit {
        ctx.options.max_batch
    } else {
        1
    };
    // Committed-id saves waiting for a commit that something else needs.
    let mut held: Vec<WriteRequest> = Vec::new();
    while let Ok(first) = requests.recv() {
        let mut batch = std::mem::take(&mut held);
        batch.push(first);
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if !batch.iter().any(|request| request.op.needs_fsync()) {
            counters.held_saves.fetch_add(1, Ordering::Relaxed);
            held = batch;
            continue;
        }
        #[cfg(test)]
        if !ctx.gate.pass() {
            // A simulated crash: nothing queued reaches the disk, nobody hears back.
            return;
        }
        commit_and_answer(ctx.journal, counters, batch);
    }
    // Shutting down: make the held committed-id saves durable too.
    if !held.is_empty() {
        commit_and_answer(ctx.journal, counters, held);
    }
}

/// Commits `batch` durably and tells every request the outcome.
fn commit_and_answer(journal: &mut Journal, counters: &Counters, batch: Vec<WriteRequest>) {
    let started = std::time::Instant::now();
    let ops: Vec<&WriteOp> = batch.iter().map(|request| &request.op).collect();
    let result = journal.commit(&ops).map_err(Arc::new);
    counters
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    record(counters, &batch, result.is_ok());
    if let Err(e) = &result {
        tracing::error!(error = %e, requests = batch.len(), "raft log commit failed");
    }
    for request in batch {
        (request.done)(result.clone());
    }
}

fn record(counters: &Counters, batch: &[WriteRequest], ok: bool) {
    if !ok {
        counters.failed_commits.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let (mut appends, mut entries) = (0, 0);
    for request in batch {
        if let Op::Append { entries: e, .. } = &request.op {
            appends += 1;
            entries += e.len() as u64;
        }
    }
    counters.commits.fetch_add(1, Ordering::Relaxed);
    counters
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    counters.appends.fetch_add(appends, Ordering::Relaxed);
    counters.entries.fetch_add(entries, Ordering::Relaxed);
}

/// A test hook in front of every commit: tests hold the writer to observe pending appends, or
/// make it stop as a crash would, dropping what is queued.
#[cfg(test)]
pub(super) mod gate {
    use std::sync::{Condvar, Mutex};

    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    enum State {
        #[default]
        Open,
        Held,
        Crashed,
    }

    /// Whether the writer may commit.
    #[derive(Default)]
    pub(in crate::raft) struct Gate {
        state: Mutex<State>,
        changed: Condvar,
    }

    impl Gate {
        /// Stops commits until [`Gate::open`] or [`Gate::crash`].
        pub(in crate::raft) fn hold(&self) {
            self.set(State::Held);
        }

        /// Lets commits through again.
        pub(in crate::raft) fn open(&self) {
            self.set(State::Open);
        }

        /// Makes the writer stop without committing anything more.
        pub(in crate::raft) fn crash(&self) {
            self.set(State::Crashed);
        }

        fn set(&self, state: State) {
            *self.state.lock().unwrap() = state;
            self.changed.notify_all();
        }

        /// Waits while held; false once crashed.
        pub(super) fn pass(&self) -> bool {
            let state = self.state.lock().unwrap();
            let state = self
                .changed
                .wait_while(state, |s| *s == State::Held)
                .unwrap();
            *state == State::Open
        }
    }
}
