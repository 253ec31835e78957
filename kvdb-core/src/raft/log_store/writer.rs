//! The one thread that writes the Raft log database, and its group commit.
//!
//! A dedicated OS thread rather than a tokio task: every transaction ends in an fsync, which
//! must not stall an async worker, and the thread outlives any one runtime (tests run each case
//! in a fresh runtime). Requests arrive on a channel in submission order and are applied in that
//! order, so one group's writes never overtake each other.
//!
//! A request's completion runs on this thread right after its transaction commits (or fails):
//! appends settle their overlay entries there and report themselves flushed, other writes wake
//! their waiting submitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use prometheus_client::metrics::histogram::Histogram;
use redb::{Database, Durability, Table};
use tokio::sync::oneshot;

use super::overlay::EncodedEntry;
use super::{LOG_TABLE, LogDbError, LogDbOptions, META_TABLE, RowKey};

/// Per-group metadata rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum MetaKey {
    Vote = 1,
    Committed = 2,
    Purged = 3,
    /// The last log id of a removed replica of the group (see `LogDb::remove_group`).
    VoteFloor = 4,
}

/// One write, already encoded.
pub(super) enum WriteOp {
    /// Insert (or overwrite) entries, as `(index, encoded entry)`.
    Append {
        group: u64,
        entries: Vec<(u64, EncodedEntry)>,
    },
    /// Set a metadata row, or delete it when `value` is `None`.
    PutMeta {
        group: u64,
        key: MetaKey,
        value: Option<Vec<u8>>,
    },
    /// Delete entries from index `since` on.
    Truncate { group: u64, since: u64 },
    /// Record `purged` (an encoded log id) as last purged and delete entries up to `upto`.
    Purge {
        group: u64,
        upto: u64,
        purged: Vec<u8>,
    },
    /// Delete the group's entries and log state, replace its vote by `vote` (the same vote,
    /// no longer committed), and record `floor` (an encoded log id) as its vote floor.
    RemoveGroup {
        group: u64,
        floor: Option<Vec<u8>>,
        vote: Option<Vec<u8>>,
    },
    /// Nothing: answered once every write queued before it is durable.
    Barrier,
}

impl WriteOp {
    /// Whether the write must be on disk before it is acknowledged. The committed log id need
    /// not be: after a crash the replica re-applies less at restart, and a leader that resumes
    /// its term starts from an older commit index, which its reads must not trust (the read
    /// floor, `super::super::read_floor`, makes them wait). It waits for the next transaction
    /// that another write needs, and rides along with it.
    fn needs_fsync(&self) -> bool {
        !matches!(
            self,
            WriteOp::PutMeta {
                key: MetaKey::Committed,
                ..
            }
        )
    }
}

/// The outcome of the transaction that held a request.
pub(super) type CommitResult = Result<(), Arc<redb::Error>>;

/// What runs on the writer thread once a request's transaction has committed or failed. It
/// must be quick: the next transaction waits for it.
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
    /// Durable (fsync'd) transactions committed. With group commit, fewer than `requests`.
    pub commits: u64,
    /// Committed-id saves that arrived with nothing to sync and waited for a later commit
    /// (every shard saves one per commit round: alone they would double the transactions).
    pub held_saves: u64,
    /// Transactions that failed, failing every request in them.
    pub failed_commits: u64,
}

struct Counters {
    requests: AtomicU64,
    appends: AtomicU64,
    entries: AtomicU64,
    commits: AtomicU64,
    held_saves: AtomicU64,
    failed_commits: AtomicU64,
    /// How long each durable transaction took, fsync included.
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
/// waits for it, so the database is closed when the last handle is gone.
pub(super) struct Writer {
    requests: Option<mpsc::Sender<WriteRequest>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    #[cfg(test)]
    gate: Arc<gate::Gate>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>, options: LogDbOptions) -> Result<Self, LogDbError> {
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
                let ctx = Context {
                    db: &db,
                    options,
                    counters: &thread_counters,
                    #[cfg(test)]
                    gate: &thread_gate,
                };
                run(&ctx, &rx);
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

    /// Queues `op`; `done` runs on the writer thread once its transaction committed or failed.
    /// On error `done` is dropped without running.
    pub(super) fn enqueue(&self, op: WriteOp, done: Completion) -> Result<(), LogDbError> {
        let requests = self.requests.as_ref().ok_or(LogDbError::WriterStopped)?;
        requests
            .send(WriteRequest { op, done })
            .map_err(|_| LogDbError::WriterStopped)
    }

    /// Queues `op` and waits until the transaction holding it is committed (durably unless it
    /// is a committed-id save).
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
        let c = &self.counters;
        LogDbStats {
            requests: c.requests.load(Ordering::Relaxed),
            appends: c.appends.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            held_saves: c.held_saves.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
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
    db: &'a Database,
    options: LogDbOptions,
    counters: &'a Counters,
    #[cfg(test)]
    gate: &'a gate::Gate,
}

/// The writer loop: take a request, with group commit also everything queued behind it, write
/// them in one durable transaction, then complete each.
fn run(ctx: &Context<'_>, requests: &mpsc::Receiver<WriteRequest>) {
    let (db, counters) = (ctx.db, ctx.counters);
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
        commit_and_answer(db, counters, batch);
    }
    // Shutting down: make the held committed-id saves durable too.
    if !held.is_empty() {
        commit_and_answer(db, counters, held);
    }
}

/// Commits `batch` durably and tells every request the outcome.
fn commit_and_answer(db: &Database, counters: &Counters, batch: Vec<WriteRequest>) {
    let started = std::time::Instant::now();
    let result = commit(db, &batch).map_err(Arc::new);
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
        if let WriteOp::Append { entries: e, .. } = &request.op {
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

fn commit(db: &Database, batch: &[WriteRequest]) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    // Raft's safety rests on Immediate: the commit returns only once the data is on disk.
    txn.set_durability(Durability::Immediate)?;
    {
        let mut log = txn.open_table(LOG_TABLE)?;
        let mut meta = txn.open_table(META_TABLE)?;
        for request in batch {
            apply(&mut log, &mut meta, &request.op)?;
        }
    }
    txn.commit()?;
    Ok(())
}

fn apply(
    log: &mut Table<RowKey, &[u8]>,
    meta: &mut Table<(u64, u8), &[u8]>,
    op: &WriteOp,
) -> Result<(), redb::Error> {
    match op {
        WriteOp::Append { group, entries } => {
            for (index, bytes) in entries {
                log.insert((*group, *index), &**bytes)?;
            }
        }
        WriteOp::PutMeta { group, key, value } => match value {
            Some(bytes) => {
                meta.insert((*group, *key as u8), bytes.as_slice())?;
            }
            None => {
                meta.remove((*group, *key as u8))?;
            }
        },
        WriteOp::Truncate { group, since } => {
            log.retain_in((*group, *since)..=(*group, u64::MAX), |_, _| false)?;
        }
        WriteOp::Purge {
            group,
            upto,
            purged,
        } => {
            meta.insert((*group, MetaKey::Purged as u8), purged.as_slice())?;
            log.retain_in((*group, 0)..=(*group, *upto), |_, _| false)?;
        }
        WriteOp::RemoveGroup { group, floor, vote } => {
            log.retain_in((*group, 0)..=(*group, u64::MAX), |_, _| false)?;
            for key in [MetaKey::Committed, MetaKey::Purged] {
                meta.remove((*group, key as u8))?;
            }
            if let Some(floor) = floor {
                meta.insert((*group, MetaKey::VoteFloor as u8), floor.as_slice())?;
            }
            if let Some(vote) = vote {
                meta.insert((*group, MetaKey::Vote as u8), vote.as_slice())?;
            }
        }
        WriteOp::Barrier => {}
    }
    Ok(())
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
