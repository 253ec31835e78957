//! [`WriteBuffer`]: applied batches wait in memory, and reach redb every few
//! milliseconds in one transaction for every shard of the database.
//!
//! A redb commit rewrites every B-tree page the transaction touched: for one
//! shard's batch, a data leaf and the path above it, the metadata and session
//! pages, the table roots. Committed per apply, that was about a third of a
//! storage node's CPU under puts, and it grows with the number of shards,
//! since each shard's small batch pays for its own pages. Buffered, a page
//! that many batches touch is written once per flush.
//!
//! # Why this is safe
//! - **Crash**: a flush writes each shard's buffered batches, their metadata
//!   (the last applied log id) included, in one atomic transaction. After a
//!   crash every shard is therefore at some prefix of its applied batches, the
//!   [`Storage`](crate::storage::Storage) contract, and its state machine
//!   replays the Raft log from the recorded log id. Nothing acknowledged is
//!   lost: the Raft log is the durable record, and the log is purged only
//!   behind a snapshot or a [`Storage::sync`](crate::storage::Storage::sync),
//!   which flushes durably first.
//! - **Reads**: a read looks at the buffer before the database, under one
//!   lock for both of the shard's layers (the batches still accepting writes,
//!   and the ones being flushed). A flushing layer is dropped only after its
//!   transaction commits, so a value, once visible, stays visible.
//! - **Ordering against direct writes**: installs, clears and synchronous
//!   applies take the flush lock, so no older buffered value can land after
//!   them.
//!
//! A flush runs when the oldest buffered batch is [`FLUSH_INTERVAL`] old, or
//! at once when [`FLUSH_BYTES`] are buffered; a writer finding
//! [`MAX_BUFFERED_BYTES`] buffered flushes before it returns, which bounds the
//! memory if the disk falls behind. A failed flush keeps its batches buffered
//! and visible, and fails every later write: the replicas stop, and restart
//! from the database and the Raft log.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability};

use super::{ShardTables, write};
use crate::storage::{AuxBounds, StorageError, StorageOp, StoredValue, WriteBatch, WriteOp};

/// How long a batch may wait in memory before a flush writes it.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How often the flusher's flush is durable (fsync'd), which bounds the Raft log a restart
/// replays and lets redb reuse the pages that deferred commits freed. redb reuses a page freed
/// by a non-durable commit only after the next durable one, so under load every page rewritten
/// in between is new file space: syncing once a second left a node holding 1M keys about
/// 30 MiB (about 10%) larger than syncing every 200 ms, at the same throughput.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// Buffered bytes that start a flush before [`FLUSH_INTERVAL`] is up.
pub const FLUSH_BYTES: usize = 4 << 20;

/// Buffered bytes at which a writer flushes before it returns.
pub const MAX_BUFFERED_BYTES: usize = 32 << 20;

/// Buffers the writes of every shard stored in one database; share one per database.
#[derive(Debug)]
pub struct WriteBuffer {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

/// What a [`WriteBuffer`] has written since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Write transactions that carried buffered batches, successful or not.
    pub flushes: u64,
    /// Batches buffered; `batches / flushes` is the coalescing achieved.
    pub batches: u64,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    interval: Duration,
    pending: Mutex<Pending>,
    /// Wakes the flusher when a shard becomes dirty, too many bytes wait, or the buffer closes.
    wake: Condvar,
    /// Held by a flush and by every direct write, so they never interleave.
    flush_lock: Mutex<()>,
    /// When the last durable commit ended.
    synced: Mutex<Instant>,
    flushes: AtomicU64,
    batches: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    /// Shards whose active layer holds batches.
    dirty: Vec<Arc<ShardBuffer>>,
    /// Bytes in active layers, roughly.
    bytes: usize,
    /// When the oldest unflushed batch arrived.
    since: Option<Instant>,
    /// Why a flush failed; every later write fails with it.
    failed: Option<String>,
    closed: bool,
}

/// One shard's buffered writes.
#[derive(Debug)]
pub(super) struct ShardBuffer {
    pub(super) tables: ShardTables,
    layers: RwLock<Layers>,
}

#[derive(Debug, Default)]
struct Layers {
    /// Batches not yet picked up by a flush; newest.
    active: Layer,
    /// Batches a flush is writing; visible until their transaction commits.
    flushing: Option<Arc<Layer>>,
}

/// The net effect of a run of batches on one shard.
#[derive(Debug, Default)]
pub(super) struct Layer {
    /// Key -> its latest value, `None` when deleted.
    pub(super) writes: HashMap<Vec<u8>, Option<StoredValue>>,
    pub(super) aux: AuxLayer,
    /// The latest metadata blob.
    pub(super) meta: Option<Vec<u8>>,
}

/// Auxiliary row -> its latest bytes, `None` when removed.
pub(super) type AuxLayer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What a shard's buffer says about a key.
pub(super) enum Buffered {
    /// Written (`Some`) or removed (`None`) by a buffered batch.
    Known(Option<StoredValue>),
    /// Not buffered: the database has it.
    Unknown,
}

impl Layer {
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.aux.is_empty() && self.meta.is_none()
    }

    /// Adds `batch`, later writes winning; returns its size in bytes, roughly.
    fn add(&mut self, batch: WriteBatch) -> usize {
        let mut bytes = 0;
        for op in batch.ops {
            match op {
                WriteOp::Put { key, value } => {
                    bytes += key.len() + value.value.len() + 64;
                    self.writes.insert(key, Some(value.normalized()));
                }
                WriteOp::Delete { key } => {
                    bytes += key.len() + 64;
                    self.writes.insert(key, None);
                }
            }
        }
        for (key, row) in batch.aux {
            bytes += key.len() + row.as_ref().map_or(0, Vec::len) + 64;
            self.aux.insert(key, row);
        }
        if let Some(meta) = batch.meta {
            bytes += meta.len();
            self.meta = Some(meta);
        }
        bytes
    }

    /// Puts `older`'s writes under this layer's: this layer's win.
    fn merge_under(&mut self, older: &Layer) {
        for (key, value) in &older.writes {
            self.writes
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        for (key, row) in &older.aux {
            self.aux.entry(key.clone()).or_insert_with(|| row.clone());
        }
        if self.meta.is_none() {
            self.meta.clone_from(&older.meta);
        }
    }
}

impl ShardBuffer {
    pub(super) fn new(tables: ShardTables) -> Arc<Self> {
        Arc::new(Self {
            tables,
            layers: RwLock::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Layers> {
        self.layers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the buffer holds for `key`.
    pub(super) fn get(&self, key: &[u8]) -> Buffered {
        let layers = self.read();
        let newest = layers.active.writes.get(key).or_else(|| {
            let flushing = layers.flushing.as_deref()?;
            flushing.writes.get(key)
        });
        match newest {
            Some(known) => Buffered::Known(known.clone()),
            None => Buffered::Unknown,
        }
    }

    /// What the buffer holds for `key` and for the auxiliary rows in `range` (the flushing
    /// layer under the active one), and `begin`'s result, at one point in time: no batch
    /// enters the buffer, moves to a flush or leaves it while the layers are held, so a read
    /// transaction `begin` opens sees the tables as of the same point.
    pub(super) fn view<T>(
        &self,
        key: Option<&[u8]>,
        range: AuxBounds<'_>,
        begin: impl FnOnce() -> T,
    ) -> (Buffered, AuxLayer, T) {
        let layers = self.read();
        let mut aux = BTreeMap::new();
        let newest_first = std::iter::once(&layers.active).chain(layers.flushing.as_deref());
        let mut value = Buffered::Unknown;
        for layer in newest_first {
            if let (Buffered::Unknown, Some(key)) = (&value, key)
                && let Some(known) = layer.writes.get(key)
            {
                value = Buffered::Known(known.clone());
            }
            for (row, change) in layer.aux.range::<[u8], _>(range) {
                aux.entry(row.clone()).or_insert_with(|| change.clone());
            }
        }
        let began = begin();
        drop(layers);
        (value, aux, began)
    }

    /// The newest buffered metadata blob.
    pub(super) fn meta(&self) -> Option<Vec<u8>> {
        let layers = self.read();
        layers
            .active
            .meta
            .clone()
            .or_else(|| layers.flushing.as_ref().and_then(|f| f.meta.clone()))
    }

    /// Every buffered write, the flushing layer under the active one.
    pub(super) fn snapshot(&self) -> Layer {
        let layers = self.read();
        let mut merged = Layer::default();
        merged.merge_under(&layers.active);
        if let Some(flushing) = &layers.flushing {
            merged.merge_under(flushing);
        }
        merged
    }

    /// Forgets every buffered write: the shard's tables are being replaced.
    /// Call it holding the flush lock.
    fn discard(&self) {
        *self.write() = Layers::default();
    }
}

impl WriteBuffer {
    /// A buffer writing into `db`, with its flusher thread.
    pub fn new(db: Arc<Database>) -> Arc<Self> {
        Self::with_flush_interval(db, FLUSH_INTERVAL)
    }

    /// A buffer whose batches wait up to `interval` (rather than [`FLUSH_INTERVAL`]) unless
    /// enough bytes wait or a writer asks for a flush.
    pub fn with_flush_interval(db: Arc<Database>, interval: Duration) -> Arc<Self> {
        let inner = Arc::new(Inner {
            db,
            interval,
            pending: Mutex::default(),
            wake: Condvar::new(),
            flush_lock: Mutex::new(()),
            synced: Mutex::new(Instant::now()),
            flushes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        });
        let flusher = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("kvdb-kv-flush".into())
                .spawn(move || inner.run_flusher())
                .expect("spawn the kv flusher thread")
        };
        Arc::new(Self {
            inner,
            flusher: Some(flusher),
        })
    }

    /// The database the buffer writes into.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Flushes so far, and the batches they carried.
    pub fn stats(&self) -> FlushStats {
        FlushStats {
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            batches: self.inner.batches.load(Ordering::Relaxed),
        }
    }

    /// Buffers `batch` for `shard`. Returns whether the caller should flush
    /// before it returns (too much is buffered).
    pub(super) fn add(
        &self,
        shard: &Arc<ShardBuffer>,
        batch: WriteBatch,
    ) -> Result<bool, StorageError> {
        if let Some(reason) = &self.inner.lock_pending().failed {
            return Err(StorageError::FlushFailed {
                reason: reason.clone(),
            });
        }
        let (was_clean, bytes) = {
            let mut layers = shard.write();
            let was_clean = layers.active.is_empty();
            (was_clean, layers.active.add(batch))
        };
        self.inner.batches.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.inner.lock_pending();
        if was_clean {
            pending.dirty.push(shard.clone());
        }
        pending.bytes += bytes;
        let first = pending.since.is_none();
        pending.since.get_or_insert_with(Instant::now);
        if first || pending.bytes >= FLUSH_BYTES {
            self.inner.wake.notify_one();
        }
        Ok(pending.bytes >= MAX_BUFFERED_BYTES)
    }

    /// Writes every buffered batch now, in one transaction with `durability`.
    /// Blocking.
    pub(super) fn flush(&self, durability: Durability) -> Result<(), StorageError> {
        self.inner.flush(durability)
    }

    /// Runs `body` in one direct write transaction, ordered after every buffered batch of
    /// `shard`, which it first discards when `replace` is set (the shard's tables are
    /// being replaced), or else flushes. Blocking.
    pub(super) fn write_direct(
        &self,
        shard: &ShardBuffer,
        replace: bool,
        op: StorageOp,
        durability: Durability,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let _flushing = self.inner.lock_flush();
        if replace {
            shard.discard();
        } else {
            self.inner.flush_locked(Durability::None)?;
        }
        write(&self.inner.db, op, durability, body)
    }
}

impl Drop for WriteBuffer {
    /// Stops the flusher after a last flush, so that a clean shutdown leaves nothing to replay.
    fn drop(&mut self) {
        self.inner.lock_pending().closed = true;
        self.inner.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl Inner {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_flush(&self) -> MutexGuard<'_, ()> {
        self.flush_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The flusher thread: flushes when the oldest batch is due or enough bytes wait.
    fn run_flusher(&self) {
        loop {
            let mut pending = self.lock_pending();
            loop {
                if pending.closed {
                    break;
                }
                let due = match pending.since {
                    _ if pending.failed.is_some() => None,
                    Some(since) if pending.bytes < FLUSH_BYTES => {
                        let due = since.checked_add(self.interval);
                        Some(due.map_or(Duration::MAX, |due| {
                            due.saturating_duration_since(Instant::now())
                        }))
                    }
                    Some(_) => Some(Duration::ZERO),
                    None => None,
                };
                match due {
                    Some(Duration::ZERO) => break,
                    Some(wait) => {
                        pending = self
                            .wake
                            .wait_timeout(pending, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    None => {
                        pending = self
                            .wake
                            .wait(pending)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
            let closed = pending.closed;
            drop(pending);
            let synced = *self.synced.lock().unwrap_or_else(PoisonError::into_inner);
            let durability = if closed || synced.elapsed() >= SYNC_INTERVAL {
                Durability::Immediate
            } else {
                Durability::None
            };
            if let Err(error) = self.flush(durability) {
                tracing::error!(%error, "flushing applied writes to the kv database failed; replicas on this node stop at their next write");
            }
            if closed {
                return;
            }
        }
    }

    fn flush(&self, durability: Durability) -> Result<(), StorageError> {
        let _flushing = self.lock_flush();
        self.flush_locked(durability)
    }

    /// Moves every dirty shard's active layer to flushing, writes them all in one
    /// transaction, then drops them. Call it holding the flush lock.
    fn flush_locked(&self, durability: Durability) -> Result<(), StorageError> {
        let durable = !matches!(durability, Durability::None);
        let result = self.write_staged(durability);
        if durable && result.is_ok() {
            *self.synced.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
        result
    }

    fn write_staged(&self, durability: Durability) -> Result<(), StorageError> {
        let dirty = {
            let mut pending = self.lock_pending();
            if let Some(reason) = &pending.failed {
                return Err(StorageError::FlushFailed {
                    reason: reason.clone(),
                });
            }
            pending.bytes = 0;
            pending.since = None;
            std::mem::take(&mut pending.dirty)
        };
        let mut staged = Vec::with_capacity(dirty.len());
        for shard in dirty {
            let mut layers = shard.write();
            if layers.active.is_empty() {
                continue;
            }
            let layer = Arc::new(std::mem::take(&mut layers.active));
            layers.flushing = Some(layer.clone());
            drop(layers);
            staged.push((shard, layer));
        }
        if staged.is_empty() {
            if matches!(durability, Durability::None) {
                return Ok(());
            }
            // Persist earlier deferred commits.
            return write(&self.db, StorageOp::Sync, durability, |_| Ok(()));
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let result = write(&self.db, StorageOp::Flush, durability, |txn| {
            staged
                .iter()
                .try_for_each(|(shard, layer)| shard.tables.write_layer(txn, layer))
        });
        match &result {
            Ok(()) => {
                for (shard, _) in &staged {
                    shard.write().flushing = None;
                }
            }
            Err(error) => {
                // Keep the batches visible, under any newer ones, and refuse further writes.
                let mut pending = self.lock_pending();
                pending.failed = Some(error.to_string());
                for (shard, layer) in staged {
                    let mut layers = shard.write();
                    layers.active.merge_under(&layer);
                    layers.flushing = None;
                    drop(layers);
                    pending.dirty.push(shard);
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests;
