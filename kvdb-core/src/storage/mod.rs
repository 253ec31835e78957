//! A shard's key-value state: the data a shard's Raft state machine applies
//! committed writes to and serves reads from.
//!
//! [`Storage`] is deliberately small and synchronous, but for
//! [`Storage::commit`], which lets shards that share a backend commit
//! together without holding a thread while they wait. The state machine
//! decides *what* to write (versions, CAS outcomes, TTL instants fixed by the
//! leader); a storage backend only makes each [`WriteBatch`] atomic together
//! with an opaque metadata blob, in which the state machine keeps its
//! last-applied log id and membership. After a crash the state machine reads
//! that blob back and replays the Raft log from there, so a backend may defer
//! durability as long as it never exposes half a batch.
//!
//! Keys carry their expiry instant; reads return expired values too (the
//! caller owns the clock and checks [`StoredValue::is_live`]), and
//! [`Storage::expired`] lists due keys from an expiry index so that the leader
//! can propose deletes for them without scanning the keyspace.
//!
//! # Layout
//! - [`MemoryStorage`]: `BTreeMap` + expiry set behind an `RwLock`; for tests
//!   and benchmarks only.
//! - [`RedbStorage`]: one shard's tables in a redb database shared by shards;
//!   what every replica uses (`Replica::open` in `kvdb-node`), the embedded
//!   and dev clusters included.
//! - [`conformance`]: the property suite every backend must pass.
//!
//! # Out of scope
//! - Reading the wall clock: expiry is judged against the caller's `now_ms`.
//! - Versions, CAS and duplicate detection: decided by the state machine.
//! - Size limits on keys and values: enforced at the request edge.
//! - Streaming snapshots: [`Storage::export`] materialises every entry, which
//!   suits shard sizes that fit in memory.

#[doc(hidden)]
pub mod conformance;
mod memory;
mod redb;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;

pub use self::memory::MemoryStorage;
pub use self::redb::{
    CommitDurability, FLUSH_BYTES, FLUSH_INTERVAL, FlushStats, MAX_BUFFERED_BYTES, RedbStorage,
    SYNC_INTERVAL, WriteBuffer,
};
use crate::Version;

/// A value as stored: its bytes, the version that wrote it, and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The value bytes; may be empty.
    pub value: Vec<u8>,
    /// The version of the write that produced this value:
    /// `log_index << 16 | position` (the Raft log index of its entry and its
    /// position in that entry's batch), chosen by the state machine.
    pub version: Version,
    /// Wall-clock instant (ms since the Unix epoch) from which the key reads
    /// as absent; `None` never expires. Backends store `Some(0)` as
    /// `Some(1)` (see [`StoredValue::normalized`]).
    pub expire_at_ms: Option<u64>,
    /// What `value` holds: a string's bytes, or an encoded collection.
    pub kind: ValueKind,
}

/// The Redis type of a stored value. Stored as [`StoredValue::tagged`] says: a string as it
/// always was, so that records written before other kinds existed read as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueKind {
    /// Bytes (`GET`, `SET`).
    #[default]
    String,
    /// A hash: field-value pairs in insertion order, encoded by [`crate::hash_value`].
    Hash,
    /// The key row of a hash whose fields are member rows: a
    /// [`crate::member_rows::CollectionMeta`]. Readers gather it into a [`ValueKind::Hash`]
    /// ([`crate::member_rows::gather_hash`]).
    HashMembers,
}

impl ValueKind {
    /// The kind's code in the tagged form.
    pub const fn code(self) -> u8 {
        match self {
            ValueKind::String => 0,
            ValueKind::Hash => 1,
            ValueKind::HashMembers => 2,
        }
    }

    /// The kind with this code; `None` for a code this build does not know.
    pub const fn from_code(code: u8) -> Option<ValueKind> {
        match code {
            0 => Some(ValueKind::String),
            1 => Some(ValueKind::Hash),
            2 => Some(ValueKind::HashMembers),
            _ => None,
        }
    }
}

/// Set in the version word of a value stored with its kind ([`StoredValue::tagged`]).
/// Versions (`log_index << 16 | position`) stay below it while log indexes stay below 2^47,
/// so nothing written before kinds existed (records, snapshots, recorded results) has it.
pub const TYPED_VERSION_BIT: u64 = 1 << 63;

impl StoredValue {
    /// A value that never expires.
    pub fn new(value: impl Into<Vec<u8>>, version: Version) -> Self {
        Self {
            value: value.into(),
            version,
            expire_at_ms: None,
            kind: ValueKind::String,
        }
    }

    /// The same value, of kind `kind`.
    pub fn with_kind(mut self, kind: ValueKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same value, expiring at `expire_at_ms`.
    pub fn with_expiry(mut self, expire_at_ms: u64) -> Self {
        self.expire_at_ms = Some(expire_at_ms);
        self
    }

    /// Whether the value is visible at `now_ms`: it has no expiry, or the
    /// expiry instant is still in the future.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_none_or(|at| now_ms < at)
    }

    /// The form every backend stores: an expiry of `Some(0)` becomes
    /// `Some(1)`, which is expired for the same clocks (any real one), so that
    /// an encoded expiry of `0` can mean "never".
    pub fn normalized(mut self) -> Self {
        if self.expire_at_ms == Some(0) {
            self.expire_at_ms = Some(1);
        }
        self
    }

    /// The version word and bytes records, snapshots and recorded results store: a string's
    /// version and bytes as they always were; another kind's version with
    /// [`TYPED_VERSION_BIT`] set, and its kind's code before the bytes.
    pub fn tagged(&self) -> (u64, std::borrow::Cow<'_, [u8]>) {
        match self.kind {
            ValueKind::String => (self.version.0, self.value.as_slice().into()),
            kind => {
                let mut bytes = Vec::with_capacity(1 + self.value.len());
                bytes.push(kind.code());
                bytes.extend_from_slice(&self.value);
                (self.version.0 | TYPED_VERSION_BIT, bytes.into())
            }
        }
    }

    /// The version, kind and value bytes of a [`tagged`](Self::tagged) form; `None` when it
    /// names a kind this build does not know.
    pub fn untag(version_word: u64, bytes: &[u8]) -> Option<(Version, ValueKind, &[u8])> {
        if version_word & TYPED_VERSION_BIT == 0 {
            return Some((Version(version_word), ValueKind::String, bytes));
        }
        let (code, value) = bytes.split_first()?;
        let kind = ValueKind::from_code(*code).filter(|k| *k != ValueKind::String)?;
        Some((Version(version_word & !TYPED_VERSION_BIT), kind, value))
    }

    /// The value whose [`tagged`](Self::tagged) form is `version_word` and `bytes`, expiring
    /// at `expire_at_ms`; `None` when it names a kind this build does not know.
    pub fn from_tagged(version_word: u64, bytes: &[u8], expire_at_ms: Option<u64>) -> Option<Self> {
        let (version, kind, value) = Self::untag(version_word, bytes)?;
        Some(StoredValue {
            value: value.to_vec(),
            version,
            expire_at_ms,
            kind,
        })
    }
}

/// One mutation in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`, replacing any previous value and expiry.
    Put {
        /// The key; any bytes.
        key: Vec<u8>,
        /// The new value.
        value: StoredValue,
    },
    /// Remove `key`; a no-op when it is absent.
    Delete {
        /// The key; any bytes.
        key: Vec<u8>,
    },
}

/// A [`Storage::commit`] in flight.
pub type Commit = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// Auxiliary rows: rows a state machine keeps beside the key rows, changing atomically with
/// them: key -> bytes, in key order, each kind under its own prefix (client sessions today;
/// the member rows of large collections are designed to go here, see docs/architecture.md).
/// Unlike the metadata blob, rows change one by one, so a large table costs only what changed
/// per batch, and are read by range ([`Storage::aux_range`]). Not exported, counted, or
/// expired: the state machine carries them in its snapshots.
pub type AuxRows = Vec<(Vec<u8>, Vec<u8>)>;

/// Changes to auxiliary rows, in order: `Some` stores the row, `None` removes it.
pub type AuxChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A range of auxiliary row keys, as `BTreeMap::range` takes it. A state machine keeps kinds
/// of rows under their own prefixes (client sessions, a collection's members) and reads one
/// prefix, or one page of it, at a time.
pub type AuxBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Every auxiliary row key that starts with a prefix, as [`AuxBounds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRange {
    prefix: Vec<u8>,
    /// The least key above every key with the prefix; `None` when there is none (the prefix
    /// is all 0xff bytes, or empty).
    end: Option<Vec<u8>>,
}

impl PrefixRange {
    /// The keys that start with `prefix`.
    pub fn new(prefix: impl Into<Vec<u8>>) -> Self {
        let prefix = prefix.into();
        let mut end = prefix.clone();
        while end.last() == Some(&u8::MAX) {
            end.pop();
        }
        let end = end.last_mut().is_some().then(|| {
            *end.last_mut().expect("checked") += 1;
            end
        });
        Self { prefix, end }
    }

    /// The range's bounds.
    pub fn bounds(&self) -> AuxBounds<'_> {
        (
            Bound::Included(&self.prefix),
            self.end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        )
    }
}

/// Mutations applied as one atomic unit, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The mutations; a later op on the same key wins.
    pub ops: Vec<WriteOp>,
    /// New metadata blob, or `None` to leave the stored one unchanged.
    pub meta: Option<Vec<u8>>,
    /// Auxiliary row changes, applied after the ops.
    pub aux: AuxChanges,
}

impl WriteBatch {
    /// An empty batch that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a put.
    pub fn put(mut self, key: impl Into<Vec<u8>>, value: StoredValue) -> Self {
        self.ops.push(WriteOp::Put {
            key: key.into(),
            value,
        });
        self
    }

    /// Appends a delete.
    pub fn delete(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(WriteOp::Delete { key: key.into() });
        self
    }

    /// Sets the metadata blob committed with this batch.
    pub fn with_meta(mut self, meta: impl Into<Vec<u8>>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    /// Appends auxiliary row changes (`None` removes the row).
    pub fn with_aux(
        mut self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Self {
        self.aux.extend(changes);
        self
    }
}

/// One shard's key-value state.
///
/// # Contract
/// - **Atomicity**: [`apply`](Self::apply), [`install`](Self::install) and
///   [`clear`](Self::clear) take effect completely or not at all, metadata
///   included; readers never see part of one.
/// - **Determinism**: no method reads the wall clock; expiry is judged only
///   against the `now_ms` a caller passes.
/// - **Durability**: after a crash the state is that of some prefix of the
///   committed calls, with the matching metadata. How long that prefix is may
///   depend on the backend's configuration; [`sync`](Self::sync) makes every
///   earlier call durable.
/// - **Errors**: a [`StorageError`] from a mutation means it had no effect.
///   None are retryable in place: the state machine should stop the replica.
pub trait Storage: Send + Sync + 'static {
    /// The stored value of `key`, expired or not.
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError>;

    /// The stored values of `keys`, in the same order, all read at one point in time. A
    /// state machine applying a batch of writes reads their keys this way: backends whose
    /// reads each pay for a transaction override it to pay once.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<StoredValue>>, StorageError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Applies every op in `batch`, then its auxiliary rows and metadata, atomically.
    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// Applies `batch` like [`apply`](Self::apply), without holding the caller's thread while
    /// it waits for the backend, and perhaps without writing it yet: a backend may buffer
    /// batches and write many shards' together ([`RedbStorage`] does), as long as reads see
    /// them and a crash leaves a prefix of them. The batch is visible to reads once the
    /// future resolves `Ok`; the caller must wait for that before it stages its next batch.
    /// The default applies inline.
    fn commit(&self, batch: WriteBatch) -> Commit {
        Box::pin(std::future::ready(self.apply(batch)))
    }

    /// The metadata blob stored by the last batch or install that set one.
    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every auxiliary row, in ascending key order.
    fn aux(&self) -> Result<AuxRows, StorageError>;

    /// Up to `limit` auxiliary rows with keys in `range`, in ascending key order.
    fn aux_range(&self, range: AuxBounds<'_>, limit: usize) -> Result<AuxRows, StorageError> {
        Ok(self.get_with_aux(None, range, limit)?.1)
    }

    /// The stored value of `key` (expired or not; `None` when no key is asked for) and up to
    /// `limit` auxiliary rows in `range`, all read at one point in time, so that a collection's
    /// key row and its member rows always agree.
    fn get_with_aux(
        &self,
        key: Option<&[u8]>,
        range: AuxBounds<'_>,
        limit: usize,
    ) -> Result<(Option<StoredValue>, AuxRows), StorageError>;

    /// Every entry, expired ones included, in ascending key order.
    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError>;

    /// Up to `limit` entries with keys strictly after `after` (from the first key when
    /// `None`), expired ones included, in ascending key order: a page of a scan that costs
    /// what it returns, not the keyspace.
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError>;

    /// Replaces all entries, auxiliary rows and the metadata with the given
    /// ones, atomically and durably. A later duplicate key wins.
    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: AuxRows,
    ) -> Result<(), StorageError>;

    /// Up to `limit` keys whose expiry is at or before `now_ms`, earliest
    /// expiry first, with the version each currently holds. Served from an
    /// expiry index: the cost grows with the result, not the keyspace.
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError>;

    /// Number of stored keys, expired ones included.
    fn len(&self) -> Result<u64, StorageError>;

    /// Whether no key is stored.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }

    /// Drops every entry, auxiliary row and the metadata, durably (a removed replica).
    fn clear(&self) -> Result<(), StorageError>;

    /// Makes every earlier mutation durable. Call it before the Raft log is
    /// purged past the last-applied index recorded in the metadata.
    fn sync(&self) -> Result<(), StorageError>;
}

/// The storage operation that failed, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Opening a shard's tables.
    Open,
    /// [`Storage::get`].
    Get,
    /// [`Storage::apply`].
    Apply,
    /// [`Storage::meta`].
    Meta,
    /// Reading the auxiliary rows.
    Aux,
    /// [`Storage::export`].
    Export,
    /// [`Storage::scan`].
    Scan,
    /// [`Storage::install`].
    Install,
    /// [`Storage::expired`].
    Expired,
    /// [`Storage::len`].
    Len,
    /// [`Storage::clear`].
    Clear,
    /// [`Storage::sync`].
    Sync,
    /// Writing buffered batches to the database.
    Flush,
}

impl fmt::Display for StorageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Open => "open",
            Self::Get => "get",
            Self::Apply => "apply",
            Self::Meta => "meta",
            Self::Aux => "aux",
            Self::Export => "export",
            Self::Scan => "scan",
            Self::Install => "install",
            Self::Expired => "expired",
            Self::Len => "len",
            Self::Clear => "clear",
            Self::Sync => "sync",
            Self::Flush => "flush",
        };
        f.write_str(name)
    }
}

/// Why a storage operation failed. A failed mutation changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The redb database reported an error (I/O, corruption, a full disk...).
    #[error("storage {op} failed in redb: {source}")]
    Backend {
        /// The operation that failed.
        op: StorageOp,
        /// redb's error.
        #[source]
        source: ::redb::Error,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record for key {key:?} in storage {op}: {reason}")]
    Corrupt {
        /// The operation that read it.
        op: StorageOp,
        /// The key whose record is bad.
        key: Vec<u8>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An earlier flush of buffered writes failed: the database may lack batches that reads
    /// have seen, so no more writes are taken.
    #[error("storage refuses writes: an earlier flush failed: {reason}")]
    FlushFailed {
        /// The flush's error.
        reason: String,
    },
    /// An earlier operation panicked while holding the in-memory state, which
    /// may therefore be inconsistent.
    #[error("storage {op}: state poisoned by an earlier panic")]
    Poisoned {
        /// The operation that found the poison.
        op: StorageOp,
    },
}

impl StorageError {
    /// The operation that failed.
    pub fn op(&self) -> StorageOp {
        match self {
            Self::Backend { op, .. } | Self::Corrupt { op, .. } | Self::Poisoned { op } => *op,
            Self::FlushFailed { .. } => StorageOp::Flush,
        }
    }
}
