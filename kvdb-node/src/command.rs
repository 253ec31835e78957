//! The shard's Raft command: what a leader proposes and every replica applies.
//!
//! A command is self-contained so that applying it is deterministic: the
//! leader reads its clock once, when it proposes, and puts the instant in the
//! command (`now_ms`). Expiry instants are absolute (`expire_at_ms`), fixed
//! from the request's TTL at the same moment. Apply never reads the clock.
//!
//! Out of scope: validation of sizes and conflicting options, which happens
//! at the request edge (`kv_service`) before anything is proposed.

use kvdb_core::{ShardId, Slot, Version};
use serde::{Deserialize, Serialize};

/// Identifies one logical client write, so that a retry of it is applied
/// once. A client picks a unique `client_id` and increases `sequence` per
/// write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteId {
    /// The client's unique id.
    pub client_id: String,
    /// Increases with every write the client makes.
    pub sequence: u64,
    /// Every lower sequence of the client is settled (answered or abandoned): the shard may
    /// forget those results and refuse late copies. `0` settles nothing.
    pub settled_below: u64,
}

/// A command proposed to a shard's Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The leader's wall clock (ms since the Unix epoch) when it proposed the
    /// command; the only "now" apply ever uses.
    pub now_ms: u64,
    /// What to do.
    pub op: Op,
}

/// The operation a [`Command`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set a key.
    Put(Put),
    /// Remove a key.
    Delete(Delete),
    /// Remove expired keys, each only if it still holds the version the
    /// leader saw expire (so a key rewritten meanwhile survives).
    Purge {
        /// `(key, version)` pairs the leader found expired.
        keys: Vec<(Vec<u8>, Version)>,
    },
    /// Several client writes proposed as one entry (see `crate::write_queue`), applied in
    /// order, each with its own clock and its own version. Never nested.
    Batch(Vec<Command>),
    /// Hands the shard's upper slots to new shards, created on every replica from the state
    /// at this entry (see `crate::split`).
    Split(Split),
    /// A read-modify-write of one key (Redis's `INCR`, `APPEND`, `SET ... GET`, `EXPIRE`...),
    /// decided at apply so no client needs a read-then-CAS loop. Appended last: postcard
    /// encodes a variant by its index, so older entries still decode.
    Update(Update),
    /// Operations on keys of one slot applied together, or not at all when a guard fails
    /// (Redis's `MULTI`/`EXEC` with `WATCH`, `MSETNX`, `RENAME`). Appended after `Update` for
    /// the same reason.
    Txn(Txn),
    /// Remove up to `limit` member rows of a collection that no key row names any more (a
    /// large hash deleted or replaced; see `kv_machine::leftovers`). Changes nothing while
    /// `key`'s row names `generation`. Appended after `Txn` for the same reason.
    Sweep {
        /// The key the collection was stored under.
        key: Vec<u8>,
        /// The generation of its member rows.
        generation: u64,
        /// The most rows one command removes, which bounds the apply's pause.
        limit: u32,
    },
}

/// A transaction: every key (guards and operations) in one slot, so one shard applies it in
/// one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// Keys and the live version each must still have (0: absent); if one differs, the
    /// transaction writes nothing and answers `None`.
    pub guards: Vec<(Vec<u8>, Version)>,
    /// The operations, applied in order, each seeing the writes of those before it. Their
    /// own write ids are unused: the transaction's deduplicates it whole.
    pub ops: Vec<TxnOp>,
    /// Set for a transaction that must be applied once.
    pub write_id: Option<WriteId>,
}

/// One operation of a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Read a key as the transaction left it so far.
    Get(Vec<u8>),
    /// A (conditional) put.
    Put(Put),
    /// A (conditional) delete.
    Delete(Delete),
    /// A read-modify-write.
    Update(Update),
    /// Move `from`'s value, with its expiry, to `to` (Redis `RENAME`/`RENAMENX`).
    Rename {
        /// The key renamed.
        from: Vec<u8>,
        /// Its new name.
        to: Vec<u8>,
        /// Only when `to` is absent (`RENAMENX`).
        only_if_absent: bool,
    },
}

impl TxnOp {
    /// The keys this operation reads or writes.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let (first, second): (&[u8], Option<&[u8]>) = match self {
            TxnOp::Get(key) => (key, None),
            TxnOp::Put(put) => (&put.key, None),
            TxnOp::Delete(delete) => (&delete.key, None),
            TxnOp::Update(update) => (&update.key, None),
            TxnOp::Rename { from, to, .. } => (from, Some(to)),
        };
        std::iter::once(first).chain(second)
    }
}

impl Txn {
    /// Every key the transaction names, guards first.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.guards
            .iter()
            .map(|(key, _)| key.as_slice())
            .chain(self.ops.iter().flat_map(TxnOp::keys))
    }
}

/// What one [`TxnOp`] found or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpResult {
    /// A `Get`: the live value and its version in `StoredValue::tagged` form (so results
    /// recorded before value kinds read as strings) and its expiry, or `None` when absent.
    Got(Option<(Vec<u8>, Version, Option<u64>)>),
    /// A `Put`, `Delete` or `Update`: what the same operation alone would answer.
    Wrote(CommandResult),
    /// A `Rename`.
    Renamed(RenameOutcome),
}

/// The outcome of a [`TxnOp::Rename`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenameOutcome {
    /// `from` is absent; nothing changed.
    NoSuchKey,
    /// `only_if_absent` and `to` is present; nothing changed.
    TargetExists,
    /// `to` holds the value and `from` is gone (or both are the same key, which stays).
    Renamed,
}

/// The new shards of a split, in slot order and without gaps: the first starts at the split
/// point, the last ends where the splitting shard's range ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Each new shard and the slots it takes over.
    pub children: Vec<SplitChild>,
}

/// One shard created by a [`Split`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitChild {
    /// The new shard's id (also its Raft group's).
    pub shard: ShardId,
    /// First slot it takes over, inclusive.
    pub slot_start: Slot,
    /// Last slot it takes over, inclusive.
    pub slot_end: Slot,
}

/// How many low bits of a [`Version`] hold a write's position in its entry's batch.
pub const BATCH_POSITION_BITS: u32 = 16;

/// The version of the write at `position` in the batch of the entry at log `index`: versions
/// grow with log order, and two writes of one entry never share one.
pub fn write_version(index: u64, position: usize) -> Version {
    Version(index << BATCH_POSITION_BITS | position as u64)
}

/// A conditional, deduplicated put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The key; any bytes.
    pub key: Vec<u8>,
    /// The value; any bytes, possibly empty.
    pub value: Vec<u8>,
    /// Absolute expiry instant (ms since the Unix epoch); `None` never expires.
    pub expire_at_ms: Option<u64>,
    /// Apply only if the key's live version equals this. An absent or
    /// expired key has version 0, so `Some(0)` means "only if absent".
    pub if_version_equals: Option<Version>,
    /// Apply only if the key is absent or expired as of `now_ms`.
    pub if_not_exists: bool,
    /// Set for client writes that must be applied once.
    pub write_id: Option<WriteId>,
}

impl Put {
    /// Whether the put depends on the key's current value (a CAS or only-if-absent put). An
    /// unconditional put's outcome does not, so applying it reads nothing.
    pub fn is_conditional(&self) -> bool {
        self.if_version_equals.is_some() || self.if_not_exists
    }
}

/// A conditional, deduplicated delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// The key.
    pub key: Vec<u8>,
    /// Apply only if the key's live version equals this (0: only if absent).
    pub if_version_equals: Option<Version>,
    /// Set for client writes that must be applied once.
    pub write_id: Option<WriteId>,
}

pub use crate::update::{
    ExpireWhen, ExpiryChange, HashUpdate, OnlyIf, Update, UpdateAction, UpdateError, UpdateValue,
    Updated,
};

impl Command {
    /// The write id of a client command, if it carries one.
    pub fn write_id(&self) -> Option<&WriteId> {
        match &self.op {
            Op::Put(put) => put.write_id.as_ref(),
            Op::Delete(delete) => delete.write_id.as_ref(),
            Op::Update(update) => update.write_id.as_ref(),
            Op::Txn(txn) => txn.write_id.as_ref(),
            Op::Purge { .. } | Op::Sweep { .. } | Op::Batch(_) | Op::Split(_) => None,
        }
    }
}

/// The outcome of applying one Raft log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The outcome of a [`Op::Put`].
    Put {
        /// False when a condition did not hold; nothing was written.
        applied: bool,
        /// The new version when applied; the current live version (0 when
        /// absent) when not.
        version: Version,
    },
    /// The outcome of a [`Op::Delete`].
    Delete {
        /// False when `if_version_equals` did not hold.
        applied: bool,
        /// Whether a live value was present before the delete.
        existed: bool,
        /// The delete's own version ([`write_version`] of its entry and
        /// position) when applied; the current version when not.
        version: Version,
    },
    /// The outcome of a [`Op::Purge`].
    Purge {
        /// How many keys were removed.
        purged: u32,
    },
    /// The outcomes of an [`Op::Batch`], one per command, in order.
    Batch(Vec<CommandResult>),
    /// A write whose key's slot a split applied earlier in the log handed to another shard:
    /// nothing was written, and the client should refresh its map and retry there.
    NotOwned,
    /// The outcome of an [`Op::Split`]: the shards this replica created (none when the split
    /// was already applied, or a replica of a new shard was already open here).
    Split {
        /// The new shards whose state this replica wrote.
        created: Vec<ShardId>,
    },
    /// A duplicate write that is older than the remembered window of its
    /// client: it may or may not have been applied, and its first result is
    /// no longer known. Nothing was written.
    ForgottenDuplicate,
    /// An entry that carries no command (a blank or membership entry).
    #[default]
    None,
    /// The outcome of an [`Op::Update`]: what it did, or why it wrote nothing.
    Update(Result<Updated, UpdateError>),
    /// The outcome of an [`Op::Txn`]: one result per operation, or `None` when a guard
    /// failed and nothing was written.
    Txn(Option<Vec<TxnOpResult>>),
    /// The outcome of an [`Op::Sweep`].
    Swept {
        /// Member rows removed.
        rows: u32,
        /// No row of the collection is left (or the shard no longer serves its key).
        done: bool,
    },
}
