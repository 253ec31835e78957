//! [`RedbStorage`]: one shard's key-value state in a redb database that many
//! shards share.
//!
//! Each shard owns three tables, named by its id, plus one row of a table all
//! shards share:
//! - `kv_{shard}`: key -> record, where a record is a 16-byte header
//!   (version `u64` LE, expiry ms `u64` LE with `0` for "never") followed by
//!   the value bytes;
//! - `kv_exp_{shard}`: `(expire_at_ms, key)` -> version, the expiry index, so
//!   [`Storage::expired`] reads only due keys;
//! - `kv_aux_{shard}`: the state machine's auxiliary rows;
//! - `kv_meta`: shard id -> the state machine's metadata blob.
//!
//! # Buffered writes
//! Applied batches first go to the database's [`WriteBuffer`], which every
//! read consults before the tables, and reach the tables every few
//! milliseconds in one transaction for all shards (see the buffer's docs for
//! why, and why that is safe). A shard's buffered batches, their index
//! updates and its metadata are written together, so a crash leaves each
//! shard at a prefix of its batches.
//!
//! # Durability
//! Flushes commit with `redb::Durability::None`, but for one every
//! [`SYNC_INTERVAL`] and those of stores opened with
//! [`CommitDurability::Immediate`]: no fsync, but the commit is still
//! atomic, and after a crash the database comes back at its last durable
//! commit, data and metadata together. The state machine then reads its
//! last-applied log id from [`Storage::meta`] and replays the Raft log, which
//! is the durable source of truth. Any durable commit to the same database
//! (a [`Storage::sync`], an install, the Raft log's own commits when they
//! share the file) also persists every deferred commit before it. Deferred
//! commits also hold on to the pages they free until the next durable commit;
//! the periodic durable flush bounds both file growth and replay length.
//! [`Storage::install`] and [`Storage::clear`]
//! always commit durably: the Raft log may be purged right after them, so
//! they must not roll back.
//!
//! # Out of scope
//! - Opening or configuring the [`Database`]: the caller shares one per node.
//! - Multi-process access: deferred commits need redb's default
//!   `ConcurrencyMode::ExclusiveWriter`.

mod write_buffer;

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    Table, TableDefinition, WriteTransaction,
};

use self::write_buffer::{Buffered, Layer, ShardBuffer};
pub use self::write_buffer::{
    FLUSH_BYTES, FLUSH_INTERVAL, FlushStats, MAX_BUFFERED_BYTES, SYNC_INTERVAL, WriteBuffer,
};
use super::{
    AuxBounds, AuxRows, Commit, Storage, StorageError, StorageOp, StoredValue, WriteBatch,
};
use crate::{ShardId, Version};

/// Every shard's metadata blob, keyed by shard id.
const META_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("kv_meta");

/// Key -> encoded record ([`encode`]).
type KvDefinition<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
/// `(expire_at_ms, key)` -> version.
type ExpiryDefinition<'a> = TableDefinition<'a, (u64, &'static [u8]), u64>;
type KvTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;
type ExpiryTable<'txn> = Table<'txn, (u64, &'static [u8]), u64>;

/// Bytes before the value in a record: version, then expiry.
const HEADER_LEN: usize = 16;

/// How [`RedbStorage::apply`](Storage::apply) commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CommitDurability {
    /// Atomic but not fsync'd; a crash rolls back to the last durable
    /// commit, metadata included. Right when the Raft log is replayed from
    /// the metadata's last-applied index.
    #[default]
    Deferred,
    /// fsync'd before `apply` returns.
    Immediate,
}

impl From<CommitDurability> for Durability {
    fn from(d: CommitDurability) -> Self {
        match d {
            CommitDurability::Deferred => Durability::None,
            CommitDurability::Immediate => Durability::Immediate,
        }
    }
}

/// One shard's [`Storage`] in a shared redb [`Database`].
#[derive(Debug, Clone)]
pub struct RedbStorage {
    buffer: Arc<WriteBuffer>,
    shard: Arc<ShardBuffer>,
    durability: CommitDurability,
}

impl RedbStorage {
    /// Opens (creating if needed) `shard`'s tables in `db`, with deferred
    /// commits. Its writes are buffered apart from other shards': open shards
    /// with [`RedbStorage::open_in`] to flush them together.
    pub fn open(db: Arc<Database>, shard: ShardId) -> Result<Self, StorageError> {
        Self::open_in(&WriteBuffer::new(db), shard, CommitDurability::default())
    }

    /// Opens (creating if needed) `shard`'s tables in `db`; writes commit
    /// with `durability`.
    pub fn open_with(
        db: Arc<Database>,
        shard: ShardId,
        durability: CommitDurability,
    ) -> Result<Self, StorageError> {
        Self::open_in(&WriteBuffer::new(db), shard, durability)
    }

    /// Opens (creating if needed) `shard`'s tables in the database of
    /// `buffer`, which it shares with every other shard opened in it. With
    /// [`CommitDurability::Immediate`], every write is flushed and synced
    /// before it returns.
    pub fn open_in(
        buffer: &Arc<WriteBuffer>,
        shard: ShardId,
        durability: CommitDurability,
    ) -> Result<Self, StorageError> {
        let store = Self {
            buffer: buffer.clone(),
            shard: ShardBuffer::new(ShardTables::new(shard)),
            durability,
        };
        // Create the tables up front so readers never find them missing.
        let op = StorageOp::Open;
        store.write_direct(false, op, |txn| {
            store.tables().open(txn, op)?;
            txn.open_table(store.tables().aux_def()).during(op)?;
            txn.open_table(META_TABLE).during(op)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The shard this store holds.
    pub fn shard(&self) -> ShardId {
        self.tables().shard
    }

    fn tables(&self) -> &ShardTables {
        &self.shard.tables
    }

    fn db(&self) -> &Database {
        self.buffer.database()
    }

    /// A durable direct write, ordered after every buffered batch; with `replace`, this
    /// shard's buffered batches are dropped instead of written (its tables are replaced).
    fn write_direct(
        &self,
        replace: bool,
        op: StorageOp,
        body: impl FnOnce(&WriteTransaction) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.buffer
            .write_direct(&self.shard, replace, op, Durability::Immediate, body)
    }

    fn read(&self, op: StorageOp) -> Result<ReadTransaction, StorageError> {
        self.db().begin_read().during(op)
    }

    fn flush_durability(&self) -> Durability {
        if self.durability == CommitDurability::Immediate {
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    /// Replaces all of the shard's entries, auxiliary rows and metadata in `txn`.
    fn replace_all(
        &self,
        txn: &WriteTransaction,
        op: StorageOp,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: AuxRows,
    ) -> Result<(), StorageError> {
        let tables = self.tables();
        txn.delete_table(tables.kv_def()).during(op)?;
        txn.delete_table(tables.expiry_def()).during(op)?;
        txn.delete_table(tables.aux_def()).during(op)?;
        let (mut kv, mut expiry) = tables.open(txn, op)?;
        for (key, value) in entries {
            put(&mut kv, &mut expiry, &key, &value, op)?;
        }
        let mut aux_table = txn.open_table(tables.aux_def()).during(op)?;
        for (key, row) in aux {
            aux_table
                .insert(key.as_slice(), row.as_slice())
                .during(op)?;
        }
        let mut meta_table = txn.open_table(META_TABLE).during(op)?;
        match meta {
            Some(blob) => meta_table.insert(tables.shard.0, blob.as_slice()).map(drop),
            None => meta_table.remove(tables.shard.0).map(drop),
        }
        .during(op)
    }
}

/// The names of one shard's tables, and how buffered writes change them.
#[derive(Debug)]
struct ShardTables {
    shard: ShardId,
    kv_name: String,
    expiry_name: String,
    aux_name: String,
}

impl ShardTables {
    fn new(shard: ShardId) -> Self {
        Self {
            shard,
            kv_name: format!("kv_{shard}"),
            expiry_name: format!("kv_exp_{shard}"),
            aux_name: format!("kv_aux_{shard}"),
        }
    }

    fn kv_def(&self) -> KvDefinition<'_> {
        TableDefinition::new(&self.kv_name)
    }

    fn expiry_def(&self) -> ExpiryDefinition<'_> {
        TableDefinition::new(&self.expiry_name)
    }

    fn aux_def(&self) -> KvDefinition<'_> {
        TableDefinition::new(&self.aux_name)
    }

    fn open<'txn>(
        &self,
        txn: &'txn WriteTransaction,
        op: StorageOp,
    ) -> Result<(KvTable<'txn>, ExpiryTable<'txn>), StorageError> {
        let kv = txn.open_table(self.kv_def()).during(op)?;
        let expiry = txn.open_table(self.expiry_def()).during(op)?;
        Ok((kv, expiry))
    }

    /// Writes a layer of buffered batches into `txn`: data, then auxiliary rows and metadata.
    fn write_layer(&self, txn: &WriteTransaction, layer: &Layer) -> Result<(), StorageError> {
        let op = StorageOp::Flush;
        let (mut kv, mut expiry) = self.open(txn, op)?;
        for (key, value) in &layer.writes {
            match value {
                Some(value) => put(&mut kv, &mut expiry, key, value, op)?,
                None => delete(&mut kv, &mut expiry, key, op)?,
            }
        }
        if !layer.aux.is_empty() {
            let mut aux = txn.open_table(self.aux_def()).during(op)?;
            for (key, row) in &layer.aux {
                match row {
                    Some(row) => aux.insert(key.as_slice(), row.as_slice()).map(drop),
                    None => aux.remove(key.as_slice()).map(drop),
                }
                .during(op)?;
            }
        }
        if let Some(blob) = &layer.meta {
            let mut meta = txn.open_table(META_TABLE).during(op)?;
            meta.insert(self.shard.0, blob.as_slice()).during(op)?;
        }
        Ok(())
    }
}

/// Runs `body` in one write transaction and commits it; an error from
/// `body` drops the transaction, which aborts it.
fn write(
    db: &Database,
    op: StorageOp,
    durability: Durability,
    body: impl FnOnce(&WriteTransaction) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut txn = db.begin_write().during(op)?;
    txn.set_durability(durability).during(op)?;
    body(&txn)?;
    txn.commit().during(op)
}

/// Applies buffered changes (`None` removes) on top of what the tables hold.
fn overlay<V>(
    stored: &mut BTreeMap<Vec<u8>, V>,
    changes: impl IntoIterator<Item = (Vec<u8>, Option<V>)>,
) {
    for (key, change) in changes {
        match change {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
}

/// Runs blocking `f` on tokio's blocking pool when called within a runtime, else inline.
async fn run_blocking(
    f: impl FnOnce() -> Result<(), StorageError> + Send + 'static,
) -> Result<(), StorageError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(StorageError::Poisoned {
            op: StorageOp::Flush,
        }))
}

impl Storage for RedbStorage {
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        if let Buffered::Known(value) = self.shard.get(key) {
            return Ok(value);
        }
        let op = StorageOp::Get;
        let table = self
            .read(op)?
            .open_table(self.tables().kv_def())
            .during(op)?;
        lookup(&table, key, op)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<StoredValue>>, StorageError> {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.shard.get(key) {
                Buffered::Known(value) => values.push(value),
                Buffered::Unknown => {
                    values.push(None);
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            let op = StorageOp::Get;
            let table = self
                .read(op)?
                .open_table(self.tables().kv_def())
                .during(op)?;
            for i in missing {
                values[i] = lookup(&table, keys[i], op)?;
            }
        }
        Ok(values)
    }

    /// Buffers `batch`, then flushes and waits for it: a synchronous write.
    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.buffer.add(&self.shard, batch)?;
        self.buffer.flush(self.flush_durability())
    }

    /// Buffers `batch`: visible at once, written by the next flush. Waits for a flush only
    /// when the store is [`CommitDurability::Immediate`] or the buffer is full.
    fn commit(&self, batch: WriteBatch) -> Commit {
        let full = match self.buffer.add(&self.shard, batch) {
            Ok(full) => full,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let durability = self.flush_durability();
        if !full && matches!(durability, Durability::None) {
            return Box::pin(std::future::ready(Ok(())));
        }
        let buffer = self.buffer.clone();
        Box::pin(run_blocking(move || buffer.flush(durability)))
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(meta) = self.shard.meta() {
            return Ok(Some(meta));
        }
        let op = StorageOp::Meta;
        let table = self.read(op)?.open_table(META_TABLE).during(op)?;
        let blob = table.get(self.shard().0).during(op)?;
        Ok(blob.map(|b| b.value().to_vec()))
    }

    fn aux(&self) -> Result<AuxRows, StorageError> {
        let buffered = self.shard.snapshot().aux;
        let op = StorageOp::Aux;
        let table = self
            .read(op)?
            .open_table(self.tables().aux_def())
            .during(op)?;
        let mut rows = BTreeMap::new();
        for row in table.iter().during(op)? {
            let (key, row) = row.during(op)?;
            rows.insert(key.value().to_vec(), row.value().to_vec());
        }
        overlay(&mut rows, buffered);
        Ok(rows.into_iter().collect())
    }

    /// Pages the rows in `range` as [`scan`](Storage::scan) pages keys (`merge_page`); the
    /// buffer and the read transaction are taken at one point in time.
    fn get_with_aux(
        &self,
        key: Option<&[u8]>,
        range: AuxBounds<'_>,
        limit: usize,
    ) -> Result<(Option<StoredValue>, AuxRows), StorageError> {
        let op = StorageOp::Aux;
        let (value, buffered, txn) = self.shard.view(key, range, || self.read(op));
        let txn = txn?;
        let value = match (value, key) {
            (Buffered::Known(value), _) => value,
            (Buffered::Unknown, None) => None,
            (Buffered::Unknown, Some(key)) => {
                let table = txn.open_table(self.tables().kv_def()).during(op)?;
                lookup(&table, key, op)?
            }
        };
        let table = txn.open_table(self.tables().aux_def()).during(op)?;
        let stored = table.range::<&[u8]>(range).during(op)?;
        // The buffer's view holds only the range's rows.
        let rows = merge_page(
            stored,
            buffered,
            |_| true,
            limit,
            op,
            |_, row| Ok(row.to_vec()),
        )?;
        Ok((value, rows))
    }

    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        let buffered = self.shard.snapshot().writes;
        let op = StorageOp::Export;
        let table = self
            .read(op)?
            .open_table(self.tables().kv_def())
            .during(op)?;
        let mut entries = BTreeMap::new();
        for row in table.iter().during(op)? {
            let (key, record) = row.during(op)?;
            let key = key.value();
            entries.insert(key.to_vec(), decode(key, record.value(), op)?);
        }
        overlay(&mut entries, buffered);
        Ok(entries.into_iter().collect())
    }

    /// Pages the keys after `after` (`merge_page`).
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        use std::ops::Bound;
        let buffered = self.shard.snapshot().writes;
        let op = StorageOp::Scan;
        let table = self
            .read(op)?
            .open_table(self.tables().kv_def())
            .during(op)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let stored = table.range::<&[u8]>((start, Bound::Unbounded)).during(op)?;
        let after_start = |key: &[u8]| after.is_none_or(|after| key > after);
        merge_page(stored, buffered, after_start, limit, op, |key, record| {
            decode(key, record, op)
        })
    }

    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: AuxRows,
    ) -> Result<(), StorageError> {
        let op = StorageOp::Install;
        self.write_direct(true, op, |txn| {
            self.replace_all(txn, op, entries, meta, aux)
        })
    }

    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        let buffered = self.shard.snapshot().writes;
        let op = StorageOp::Expired;
        let table = self
            .read(op)?
            .open_table(self.tables().expiry_def())
            .during(op)?;
        // (expire_at, key, version), from the index for keys the buffer does not decide.
        let mut due = Vec::new();
        for row in table.iter().during(op)? {
            if due.len() >= limit {
                break;
            }
            let (index_key, version) = row.during(op)?;
            let (expire_at_ms, key) = index_key.value();
            if expire_at_ms > now_ms {
                break;
            }
            if !buffered.contains_key(key) {
                due.push((expire_at_ms, key.to_vec(), Version(version.value())));
            }
        }
        for (key, value) in buffered {
            if let Some(value) = value
                && let Some(at) = encoded_expiry(value.expire_at_ms)
                && at <= now_ms
            {
                due.push((at, key, value.version));
            }
        }
        due.sort();
        due.truncate(limit);
        Ok(due
            .into_iter()
            .map(|(_, key, version)| (key, version))
            .collect())
    }

    fn len(&self) -> Result<u64, StorageError> {
        let buffered = self.shard.snapshot().writes;
        let op = StorageOp::Len;
        let table = self
            .read(op)?
            .open_table(self.tables().kv_def())
            .during(op)?;
        let mut len = table.len().during(op)?;
        for (key, value) in &buffered {
            let stored = table.get(key.as_slice()).during(op)?.is_some();
            match (stored, value.is_some()) {
                (false, true) => len += 1,
                (true, false) => len -= 1,
                _ => {}
            }
        }
        Ok(len)
    }

    fn clear(&self) -> Result<(), StorageError> {
        let op = StorageOp::Clear;
        self.write_direct(true, op, |txn| {
            self.replace_all(txn, op, Vec::new(), None, Vec::new())
        })
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.buffer.flush(Durability::Immediate)
    }
}

/// Stores `value` under `key` and moves its expiry index entry.
fn put(
    kv: &mut KvTable<'_>,
    expiry: &mut ExpiryTable<'_>,
    key: &[u8],
    value: &StoredValue,
    op: StorageOp,
) -> Result<(), StorageError> {
    let replaced = kv.insert(key, encode(value).as_slice()).during(op)?;
    let old_expiry = match replaced {
        Some(record) => decode_expiry(key, record.value(), op)?,
        None => None,
    };
    reindex(expiry, key, old_expiry, Some(value), op)
}

/// Removes `key` and its expiry index entry.
fn delete(
    kv: &mut KvTable<'_>,
    expiry: &mut ExpiryTable<'_>,
    key: &[u8],
    op: StorageOp,
) -> Result<(), StorageError> {
    let removed = kv.remove(key).during(op)?;
    let old_expiry = match removed {
        Some(record) => decode_expiry(key, record.value(), op)?,
        None => None,
    };
    reindex(expiry, key, old_expiry, None, op)
}

/// Replaces `key`'s index entry at `old_expiry` with one for its new value,
/// if it has one and that expires.
fn reindex(
    expiry: &mut ExpiryTable<'_>,
    key: &[u8],
    old_expiry: Option<u64>,
    new_value: Option<&StoredValue>,
    op: StorageOp,
) -> Result<(), StorageError> {
    if let Some(at) = old_expiry {
        expiry.remove((at, key)).during(op)?;
    }
    if let Some(value) = new_value
        && let Some(at) = encoded_expiry(value.expire_at_ms)
    {
        expiry.insert((at, key), value.version.0).during(op)?;
    }
    Ok(())
}

/// Attaches the failing operation to a redb error.
trait During<T> {
    fn during(self, op: StorageOp) -> Result<T, StorageError>;
}

impl<T, E: Into<redb::Error>> During<T> for Result<T, E> {
    fn during(self, op: StorageOp) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::Backend {
            op,
            source: e.into(),
        })
    }
}

/// A record: version and expiry (`0` for none) as little-endian `u64`s, then the value, in
/// [`StoredValue::tagged`] form (a string as it always was; another kind with a flag in the
/// version and its code before the value). The expiry is stored
/// [`StoredValue::normalized`].
fn encode(value: &StoredValue) -> Vec<u8> {
    let (version, bytes) = value.tagged();
    let mut record = Vec::with_capacity(HEADER_LEN + bytes.len());
    record.extend_from_slice(&version.to_le_bytes());
    let expiry = encoded_expiry(value.expire_at_ms).unwrap_or(0);
    record.extend_from_slice(&expiry.to_le_bytes());
    record.extend_from_slice(&bytes);
    record
}

/// The expiry instant as stored: [`StoredValue::normalized`]'s, without copying the value.
fn encoded_expiry(expire_at_ms: Option<u64>) -> Option<u64> {
    expire_at_ms.map(|at| at.max(1))
}

/// Splits a record into its version word, expiry and value bytes (both in
/// [`StoredValue::tagged`] form).
fn split<'r>(
    key: &[u8],
    record: &'r [u8],
    op: StorageOp,
) -> Result<(u64, Option<u64>, &'r [u8]), StorageError> {
    let corrupt = || StorageError::Corrupt {
        op,
        key: key.to_vec(),
        reason: "record shorter than its 16-byte header",
    };
    let (version, rest) = record.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (expiry, value) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let expiry = u64::from_le_bytes(*expiry);
    Ok((
        u64::from_le_bytes(*version),
        (expiry != 0).then_some(expiry),
        value,
    ))
}

/// The first `limit` rows of a range, merged from the stored `rows` and the write buffer's
/// `buffered` changes (those `in_range` count). Reads stored rows until `limit` of them are
/// not decided by the buffer, then overlays the buffered changes up to the last row read (or
/// all of them, when the table ran out): the first `limit` keys of that merge are the first
/// `limit` keys of the whole state.
fn merge_page<T>(
    rows: redb::Range<'_, &'static [u8], &'static [u8]>,
    buffered: impl BufferedChanges<T>,
    in_range: impl Fn(&[u8]) -> bool,
    limit: usize,
    op: StorageOp,
    decode: impl Fn(&[u8], &[u8]) -> Result<T, StorageError>,
) -> Result<Vec<(Vec<u8>, T)>, StorageError> {
    let mut page = BTreeMap::new();
    let mut last: Option<Vec<u8>> = None;
    let mut exhausted = true;
    for row in rows {
        if page.len() >= limit {
            exhausted = false;
            break;
        }
        let (key, value) = row.during(op)?;
        let key = key.value();
        if !buffered.decides(key) {
            page.insert(key.to_vec(), decode(key, value.value())?);
        }
        last = Some(key.to_vec());
    }
    for (key, change) in buffered {
        if let Some(value) = change
            && in_range(&key)
            && (exhausted || last.as_deref().is_some_and(|last| key.as_slice() <= last))
        {
            page.insert(key, value);
        }
    }
    Ok(page.into_iter().take(limit).collect())
}

/// A write buffer's changes to a range of keys (`None`: removed), whichever map holds them.
trait BufferedChanges<T>: IntoIterator<Item = (Vec<u8>, Option<T>)> {
    /// Whether the buffer decides `key`, so that its stored row is stale.
    fn decides(&self, key: &[u8]) -> bool;
}

impl<T> BufferedChanges<T> for BTreeMap<Vec<u8>, Option<T>> {
    fn decides(&self, key: &[u8]) -> bool {
        self.contains_key(key)
    }
}

impl<T> BufferedChanges<T> for std::collections::HashMap<Vec<u8>, Option<T>> {
    fn decides(&self, key: &[u8]) -> bool {
        self.contains_key(key)
    }
}

/// The stored value of `key` in an open data table.
fn lookup(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    op: StorageOp,
) -> Result<Option<StoredValue>, StorageError> {
    let record = table.get(key).during(op)?;
    record.map(|r| decode(key, r.value(), op)).transpose()
}

fn decode(key: &[u8], record: &[u8], op: StorageOp) -> Result<StoredValue, StorageError> {
    let (version, expire_at_ms, tagged) = split(key, record, op)?;
    StoredValue::from_tagged(version, tagged, expire_at_ms).ok_or_else(|| StorageError::Corrupt {
        op,
        key: key.to_vec(),
        reason: "record of a value kind this build does not know",
    })
}

fn decode_expiry(key: &[u8], record: &[u8], op: StorageOp) -> Result<Option<u64>, StorageError> {
    split(key, record, op).map(|(_, expiry, _)| expiry)
}
