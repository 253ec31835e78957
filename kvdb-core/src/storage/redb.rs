//! [`RedbStorage`]: one shard's key-value state in a redb database that many
//! shards share.
//!
//! Each shard owns two tables, named by its id, plus one row of a table all
//! shards share:
//! - `kv_{shard}`: key -> record, where a record is a 16-byte header
//!   (version `u64` LE, expiry ms `u64` LE with `0` for "never") followed by
//!   the value bytes;
//! - `kv_exp_{shard}`: `(expire_at_ms, key)` -> version, the expiry index, so
//!   [`Storage::expired`] reads only due keys;
//! - `kv_meta`: shard id -> the state machine's metadata blob.
//!
//! Every call is one redb transaction, so a batch, its index updates and its
//! metadata commit or roll back together.
//!
//! # Durability
//! [`Storage::apply`] commits with [`CommitDurability::Deferred`] by default
//! (`redb::Durability::None`): no fsync, but the commit is still atomic, and
//! after a crash the database comes back at its last durable commit, data and
//! metadata together. The state machine then reads its last-applied log id
//! from [`Storage::meta`] and replays the Raft log, which is the durable
//! source of truth. Any durable commit to the same database (a [`Storage::sync`],
//! an install, another shard's durable commit, the Raft log's own commits when
//! they share the file) also persists every deferred commit before it.
//! Deferred commits also hold on to the pages they free until the next
//! durable commit, so the state machine should [`Storage::sync`] now and then
//! (at least when it snapshots) to bound both file growth and replay length.
//! [`Storage::install`] and [`Storage::clear`] always commit durably: the
//! Raft log may be purged right after them, so they must not roll back.
//!
//! # Out of scope
//! - Opening or configuring the [`Database`]: the caller shares one per node.
//! - Multi-process access: deferred commits need redb's default
//!   `ConcurrencyMode::ExclusiveWriter`.

use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    Table, TableDefinition, WriteTransaction,
};

use super::{AuxRows, Storage, StorageError, StorageOp, StoredValue, WriteBatch, WriteOp};
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
    db: Arc<Database>,
    shard: ShardId,
    kv_name: String,
    expiry_name: String,
    aux_name: String,
    durability: CommitDurability,
}

impl RedbStorage {
    /// Opens (creating if needed) `shard`'s tables in `db`, with deferred
    /// commits for [`Storage::apply`].
    pub fn open(db: Arc<Database>, shard: ShardId) -> Result<Self, StorageError> {
        Self::open_with(db, shard, CommitDurability::default())
    }

    /// Opens (creating if needed) `shard`'s tables in `db`; `apply` commits
    /// with `durability`.
    pub fn open_with(
        db: Arc<Database>,
        shard: ShardId,
        durability: CommitDurability,
    ) -> Result<Self, StorageError> {
        let store = Self {
            db,
            shard,
            kv_name: format!("kv_{shard}"),
            expiry_name: format!("kv_exp_{shard}"),
            aux_name: format!("kv_aux_{shard}"),
            durability,
        };
        // Create the tables up front so readers never find them missing.
        store.write(StorageOp::Open, Durability::Immediate, |txn| {
            store.tables(txn, StorageOp::Open)?;
            txn.open_table(store.aux_def()).during(StorageOp::Open)?;
            txn.open_table(META_TABLE).during(StorageOp::Open)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The shard this store holds.
    pub fn shard(&self) -> ShardId {
        self.shard
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

    fn tables<'txn>(
        &self,
        txn: &'txn WriteTransaction,
        op: StorageOp,
    ) -> Result<(KvTable<'txn>, ExpiryTable<'txn>), StorageError> {
        let kv = txn.open_table(self.kv_def()).during(op)?;
        let expiry = txn.open_table(self.expiry_def()).during(op)?;
        Ok((kv, expiry))
    }

    /// Runs `body` in one write transaction and commits it; an error from
    /// `body` drops the transaction, which aborts it.
    fn write(
        &self,
        op: StorageOp,
        durability: Durability,
        body: impl FnOnce(&WriteTransaction) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().during(op)?;
        txn.set_durability(durability).during(op)?;
        body(&txn)?;
        txn.commit().during(op)
    }

    fn read(&self, op: StorageOp) -> Result<ReadTransaction, StorageError> {
        self.db.begin_read().during(op)
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
        txn.delete_table(self.kv_def()).during(op)?;
        txn.delete_table(self.expiry_def()).during(op)?;
        txn.delete_table(self.aux_def()).during(op)?;
        let (mut kv, mut expiry) = self.tables(txn, op)?;
        for (key, value) in entries {
            put(&mut kv, &mut expiry, &key, value, op)?;
        }
        let mut aux_table = txn.open_table(self.aux_def()).during(op)?;
        for (key, row) in aux {
            aux_table
                .insert(key.as_slice(), row.as_slice())
                .during(op)?;
        }
        let mut meta_table = txn.open_table(META_TABLE).during(op)?;
        match meta {
            Some(blob) => meta_table.insert(self.shard.0, blob.as_slice()).map(drop),
            None => meta_table.remove(self.shard.0).map(drop),
        }
        .during(op)
    }
}

impl Storage for RedbStorage {
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        let op = StorageOp::Get;
        let table = self.read(op)?.open_table(self.kv_def()).during(op)?;
        lookup(&table, key, op)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<StoredValue>>, StorageError> {
        let op = StorageOp::Get;
        let table = self.read(op)?.open_table(self.kv_def()).during(op)?;
        keys.iter().map(|key| lookup(&table, key, op)).collect()
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let op = StorageOp::Apply;
        self.write(op, self.durability.into(), |txn| {
            let (mut kv, mut expiry) = self.tables(txn, op)?;
            for write in batch.ops {
                match write {
                    WriteOp::Put { key, value } => put(&mut kv, &mut expiry, &key, value, op)?,
                    WriteOp::Delete { key } => delete(&mut kv, &mut expiry, &key, op)?,
                }
            }
            if !batch.aux.is_empty() {
                let mut aux = txn.open_table(self.aux_def()).during(op)?;
                for (key, row) in batch.aux {
                    match row {
                        Some(row) => aux.insert(key.as_slice(), row.as_slice()).map(drop),
                        None => aux.remove(key.as_slice()).map(drop),
                    }
                    .during(op)?;
                }
            }
            if let Some(blob) = batch.meta {
                let mut meta = txn.open_table(META_TABLE).during(op)?;
                meta.insert(self.shard.0, blob.as_slice()).during(op)?;
            }
            Ok(())
        })
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let op = StorageOp::Meta;
        let table = self.read(op)?.open_table(META_TABLE).during(op)?;
        let blob = table.get(self.shard.0).during(op)?;
        Ok(blob.map(|b| b.value().to_vec()))
    }

    fn aux(&self) -> Result<AuxRows, StorageError> {
        let op = StorageOp::Aux;
        let table = self.read(op)?.open_table(self.aux_def()).during(op)?;
        let mut out = Vec::new();
        for row in table.iter().during(op)? {
            let (key, row) = row.during(op)?;
            out.push((key.value().to_vec(), row.value().to_vec()));
        }
        Ok(out)
    }

    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        let op = StorageOp::Export;
        let table = self.read(op)?.open_table(self.kv_def()).during(op)?;
        let mut out = Vec::with_capacity(usize::try_from(table.len().during(op)?).unwrap_or(0));
        for row in table.iter().during(op)? {
            let (key, record) = row.during(op)?;
            let key = key.value();
            out.push((key.to_vec(), decode(key, record.value(), op)?));
        }
        Ok(out)
    }

    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: AuxRows,
    ) -> Result<(), StorageError> {
        let op = StorageOp::Install;
        self.write(op, Durability::Immediate, |txn| {
            self.replace_all(txn, op, entries, meta, aux)
        })
    }

    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        let op = StorageOp::Expired;
        let table = self.read(op)?.open_table(self.expiry_def()).during(op)?;
        let mut out = Vec::new();
        for row in table.iter().during(op)? {
            if out.len() >= limit {
                break;
            }
            let (index_key, version) = row.during(op)?;
            let (expire_at_ms, key) = index_key.value();
            if expire_at_ms > now_ms {
                break;
            }
            out.push((key.to_vec(), Version(version.value())));
        }
        Ok(out)
    }

    fn len(&self) -> Result<u64, StorageError> {
        let op = StorageOp::Len;
        let table = self.read(op)?.open_table(self.kv_def()).during(op)?;
        table.len().during(op)
    }

    fn clear(&self) -> Result<(), StorageError> {
        let op = StorageOp::Clear;
        self.write(op, Durability::Immediate, |txn| {
            self.replace_all(txn, op, Vec::new(), None, Vec::new())
        })
    }

    fn sync(&self) -> Result<(), StorageError> {
        // An empty durable commit persists every deferred commit before it.
        self.write(StorageOp::Sync, Durability::Immediate, |_| Ok(()))
    }
}

/// Stores `value` under `key` and moves its expiry index entry.
fn put(
    kv: &mut KvTable<'_>,
    expiry: &mut ExpiryTable<'_>,
    key: &[u8],
    value: StoredValue,
    op: StorageOp,
) -> Result<(), StorageError> {
    let value = value.normalized();
    let replaced = kv.insert(key, encode(&value).as_slice()).during(op)?;
    let old_expiry = match replaced {
        Some(record) => decode_expiry(key, record.value(), op)?,
        None => None,
    };
    reindex(expiry, key, old_expiry, Some(&value), op)
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
        && let Some(at) = value.expire_at_ms
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

/// A record: version and expiry (`0` for none) as little-endian `u64`s, then
/// the value. Expects a [`StoredValue::normalized`] value.
fn encode(value: &StoredValue) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER_LEN + value.value.len());
    record.extend_from_slice(&value.version.0.to_le_bytes());
    record.extend_from_slice(&value.expire_at_ms.unwrap_or(0).to_le_bytes());
    record.extend_from_slice(&value.value);
    record
}

/// Splits a record into version, expiry and value bytes.
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
    let (version, expire_at_ms, value) = split(key, record, op)?;
    Ok(StoredValue {
        value: value.to_vec(),
        version: Version(version),
        expire_at_ms,
    })
}

fn decode_expiry(key: &[u8], record: &[u8], op: StorageOp) -> Result<Option<u64>, StorageError> {
    split(key, record, op).map(|(_, expiry, _)| expiry)
}
