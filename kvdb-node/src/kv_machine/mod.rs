//! [`KvMachine`]: a shard's replicated state machine over a [`Storage`].
//!
//! Applying a run of committed entries builds one [`WriteBatch`]: the data
//! mutations of every command in the run, the client-session rows they
//! changed, and the metadata blob (last applied log id, membership), so the
//! state on disk always matches exactly one log position. Commands later in a run see the writes
//! of earlier ones through an in-memory overlay.
//!
//! Semantics, all decided from the log alone:
//! - a value's version is the log index of the entry that wrote it, shifted
//!   left by [`BATCH_POSITION_BITS`], plus the write's position in the entry's
//!   batch (see [`write_version`]): versions follow log order and two writes
//!   of one entry never share one;
//! - a key whose expiry is at or before the command's `now_ms` is absent,
//!   and an absent key has version 0;
//! - `if_version_equals` compares with that live version, `if_not_exists`
//!   holds for an absent key; both must hold when both are given;
//! - an update decides from the key's live value what to write (see [`crate::update`]);
//! - a write whose `(client id, sequence)` was applied before returns its
//!   first result and changes nothing (see [`crate::sessions`]);
//! - a write to a slot that a split earlier in the log handed to another shard
//!   changes nothing and answers [`CommandResult::NotOwned`] (see [`crate::split`]).
//!
//! Out of scope: reading (readers go to the [`Storage`] directly, which is
//! consistent because batches are atomic) and the wall clock.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Bound;
use std::sync::Arc;

use kvdb_core::Version;
use kvdb_core::hash_value::HashValue;
use kvdb_core::member_rows::{
    CollectionMeta, gather_hash, member_row, members_of, parse_member_row,
};
use kvdb_core::raft::codec::{self, CodecError};
use kvdb_core::raft::state_machine::{Applied, Machine};
use kvdb_core::slot::slot;
use kvdb_core::storage::{
    AuxRows, Storage, StorageError, StoredValue, ValueKind, WriteBatch, WriteOp,
};
use openraft::{EntryPayload, LogId, StoredMembership};
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::command::BATCH_POSITION_BITS;
use crate::command::{
    Command, CommandResult, Delete, HashUpdate, Op, Put, RenameOutcome, Txn, TxnOp, TxnOpResult,
    Update, UpdateAction, write_version,
};
use crate::expiry;
use crate::raft_types::{Entry, RaftId, ShardNode, ShardRaftConfig};
use crate::sessions::{LoadError, Seen, SessionRowError, Sessions};
use crate::split::{Fence, ShardCreator, SlotRange};
use crate::update::{self, Write};

/// Why the state machine could not apply, export or import.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The storage backend failed; the replica must stop.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The metadata blob or a snapshot could not be encoded or decoded.
    #[error("state machine metadata: {0}")]
    Codec(#[from] CodecError),
    /// The client-session rows could not be encoded or read back.
    #[error("client sessions: {0}")]
    Sessions(#[from] SessionRowError),
}

impl From<LoadError> for MachineError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Storage(e) => MachineError::Storage(e),
            LoadError::Row(e) => MachineError::Sessions(e),
        }
    }
}

/// The part of the machine's state kept in the storage's metadata blob.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    last_applied: Option<LogId<RaftId>>,
    membership: StoredMembership<RaftId, ShardNode>,
    /// The slots the shard still serves after its splits; `None` until its first split.
    owned: Option<SlotRange>,
}

/// [`Meta`] as written before shards could split; still read.
#[derive(Deserialize)]
struct MetaBeforeSplits {
    last_applied: Option<LogId<RaftId>>,
    membership: StoredMembership<RaftId, ShardNode>,
}

impl Meta {
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes).or_else(|e| {
            let old: MetaBeforeSplits = codec::decode(bytes).map_err(|_| e)?;
            Ok(Meta {
                last_applied: old.last_applied,
                membership: old.membership,
                owned: None,
            })
        })
    }

    fn owned(&self) -> SlotRange {
        self.owned.unwrap_or(SlotRange::ALL)
    }
}

/// One shard's state machine.
pub struct KvMachine {
    storage: Arc<dyn Storage>,
    meta: Meta,
    /// Kept in the storage's auxiliary rows.
    sessions: Sessions,
    /// The keys that may hold a hash in member rows; lent to each run's [`Pending`].
    collections: CollectionKeys,
    /// Removed collections whose member rows the sweeper has yet to remove.
    leftovers: Arc<Leftovers>,
    /// `meta.owned`, for readers; narrowed by a split before its deletions are visible.
    fence: Arc<Fence>,
    /// Where a split writes the new shards' state; without one a split changes nothing.
    creator: Option<Arc<dyn ShardCreator>>,
    #[cfg(feature = "planted-bugs")]
    planted: Option<crate::planted::PlantedBug>,
}

/// The most writes an apply runs inline on the Raft task rather than on the blocking pool.
pub const INLINE_APPLY_WRITES: usize = 256;

impl std::fmt::Debug for KvMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvMachine")
            .field("last_applied", &self.meta.last_applied)
            .finish_non_exhaustive()
    }
}

impl KvMachine {
    /// Opens the machine over `storage`, resuming from its metadata blob (a
    /// fresh machine when the storage has none).
    pub fn open(storage: Arc<dyn Storage>) -> Result<Self, MachineError> {
        let meta = match storage.meta()? {
            Some(bytes) => Meta::decode(&bytes)?,
            None => Meta::default(),
        };
        let sessions = Sessions::load(storage.as_ref())?;
        let (collections, left) = CollectionKeys::load(storage.as_ref())?;
        let leftovers = Arc::<Leftovers>::default();
        leftovers.reset(left);
        let fence = Arc::new(Fence::new(meta.owned()));
        Ok(Self {
            storage,
            meta,
            sessions,
            collections,
            leftovers,
            fence,
            creator: None,
            #[cfg(feature = "planted-bugs")]
            planted: None,
        })
    }

    /// Switches on a deliberate bug (chaos-suite sensitivity tests only).
    #[cfg(feature = "planted-bugs")]
    pub fn with_planted_bug(mut self, bug: Option<crate::planted::PlantedBug>) -> Self {
        self.planted = bug;
        self
    }

    /// The machine, creating the shards its splits carve out through `creator`.
    pub fn with_creator(mut self, creator: Arc<dyn ShardCreator>) -> Self {
        self.creator = Some(creator);
        self
    }

    /// The slots the machine serves, as readers check them.
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// The removed collections whose rows wait for the leader's sweeper (`replica_tasks`).
    pub fn leftovers(&self) -> &Arc<Leftovers> {
        &self.leftovers
    }

    /// The storage the machine applies to; readers use it directly.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The last applied log id and the last applied membership.
    pub fn applied_state(&self) -> (Option<LogId<RaftId>>, StoredMembership<RaftId, ShardNode>) {
        (self.meta.last_applied, self.meta.membership.clone())
    }

    /// Decides the results of committed `entries`, in order, and the batch that records them
    /// atomically, without writing it; the batch must be committed before the next call reads
    /// the storage. On error nothing is staged, but the in-memory session table may be ahead
    /// of the storage: the replica must stop.
    fn stage(
        &mut self,
        entries: Vec<Entry>,
    ) -> Result<(Vec<CommandResult>, Option<WriteBatch>), MachineError> {
        let storage = self.storage.clone();
        let collections = std::mem::take(&mut self.collections);
        let mut pending = Pending::new(storage.as_ref(), collections, self.leftovers.clone());
        let results = self.apply_entries(&mut pending, entries);
        self.collections = std::mem::take(&mut pending.collections);
        let results = results?;
        if results.is_empty() {
            return Ok((results, None));
        }
        let batch = pending
            .batch
            .with_meta(codec::encode(&self.meta)?)
            .with_aux(self.sessions.take_changes()?);
        Ok((results, Some(batch)))
    }

    fn apply_entries(
        &mut self,
        pending: &mut Pending<'_>,
        entries: Vec<Entry>,
    ) -> Result<Vec<CommandResult>, MachineError> {
        pending.prefetch(&entries)?;
        let mut results = Vec::new();
        for entry in entries {
            self.meta.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::None,
                EntryPayload::Membership(membership) => {
                    self.meta.membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::None
                }
                EntryPayload::Normal(command) => {
                    self.apply_entry(pending, entry.log_id.index, &command)?
                }
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Applies the command of the entry at `index`: a batch command by command.
    fn apply_entry(
        &mut self,
        pending: &mut Pending<'_>,
        index: u64,
        command: &Command,
    ) -> Result<CommandResult, MachineError> {
        let commands = match &command.op {
            Op::Batch(commands) => commands,
            Op::Split(split) => return self.apply_split(pending, index, split),
            _ => return self.apply_command(pending, index, 0, command),
        };
        let mut results = Vec::with_capacity(commands.len());
        for (position, command) in commands.iter().enumerate() {
            results.push(self.apply_command(pending, index, position, command)?);
        }
        Ok(CommandResult::Batch(results))
    }

    fn apply_command(
        &mut self,
        pending: &mut Pending<'_>,
        index: u64,
        position: usize,
        command: &Command,
    ) -> Result<CommandResult, MachineError> {
        if let Some(id) = command.write_id() {
            match self.sessions.check(id) {
                Seen::Duplicate(first) => return Ok(first),
                Seen::Forgotten => return Ok(CommandResult::ForgottenDuplicate),
                Seen::New => {}
            }
        }
        let owned = self.meta.owned();
        let mut keys = Vec::new();
        // Purges and sweeps check each key themselves: a key moved away is skipped, not refused.
        if !matches!(command.op, Op::Purge { .. } | Op::Sweep { .. }) {
            command_keys(command, Keys::Touched, &mut keys);
        }
        if keys.iter().any(|key| !owned.contains(slot(key))) {
            // Not recorded in the session: the write is retried at the shard that owns it.
            return Ok(CommandResult::NotOwned);
        }
        let now = command.now_ms;
        let version = write_version(index, position);
        let result = match &command.op {
            Op::Put(put) => apply_put(pending, version, now, put)?,
            Op::Delete(delete) => apply_delete(pending, version, now, delete)?,
            Op::Purge { keys } => apply_purge(pending, now, keys, owned)?,
            Op::Update(update) => apply_update(pending, version, now, update)?,
            Op::Txn(txn) => apply_txn(pending, version, now, txn)?,
            Op::Sweep {
                key,
                generation,
                limit,
            } => apply_sweep(pending, key, *generation, *limit, owned)?,
            // Neither is nested in a batch when proposed; one that is changes nothing.
            Op::Batch(_) | Op::Split(_) => CommandResult::None,
        };
        if let Some(id) = command.write_id() {
            self.sessions.record(id, index, result.clone());
        }
        Ok(result)
    }
}

fn apply_put(
    pending: &mut Pending<'_>,
    version: Version,
    now_ms: u64,
    put: &Put,
) -> Result<CommandResult, StorageError> {
    if put.is_conditional() {
        let current = pending.live(&put.key, now_ms)?;
        let current_version = current.as_ref().map_or(Version(0), |v| v.version);
        let version_ok = put.if_version_equals.is_none_or(|v| v == current_version);
        let absence_ok = !put.if_not_exists || current.is_none();
        if !(version_ok && absence_ok) {
            return Ok(CommandResult::Put {
                applied: false,
                version: current_version,
            });
        }
    }
    // The only read an unconditional put makes, and only for a key that may hold a hash in
    // member rows: its rows go with it.
    let stored = if pending.collections.may_hold(&put.key) {
        pending.get(&put.key)?
    } else {
        None
    };
    let value = StoredValue {
        value: put.value.clone(),
        version,
        expire_at_ms: put.expire_at_ms,
        kind: ValueKind::String,
    };
    pending.replace(&put.key, stored.as_ref(), Some(value))?;
    Ok(CommandResult::Put {
        applied: true,
        version,
    })
}

fn apply_delete(
    pending: &mut Pending<'_>,
    version: Version,
    now_ms: u64,
    delete: &Delete,
) -> Result<CommandResult, StorageError> {
    let current = pending.live(&delete.key, now_ms)?;
    let current_version = current.as_ref().map_or(Version(0), |v| v.version);
    if delete
        .if_version_equals
        .is_some_and(|v| v != current_version)
    {
        return Ok(CommandResult::Delete {
            applied: false,
            existed: current.is_some(),
            version: current_version,
        });
    }
    // An expired value is deleted too: it is already invisible.
    if let Some(stored) = pending.get(&delete.key)? {
        pending.replace(&delete.key, Some(&stored), None)?;
    }
    Ok(CommandResult::Delete {
        applied: true,
        existed: current.is_some(),
        version,
    })
}

fn apply_update(
    pending: &mut Pending<'_>,
    version: Version,
    now_ms: u64,
    update: &Update,
) -> Result<CommandResult, StorageError> {
    let key = &update.key;
    let stored = pending.get(key)?;
    let current = stored.clone().filter(|v| v.is_live(now_ms));
    let (result, write) = match (&current, &update.action) {
        (Some(live), UpdateAction::Hash(action)) if live.kind == ValueKind::HashMembers => {
            let named = pending.named_members(key, live, action)?;
            update::decide_members(action, live, named, version, update.max_len)
        }
        _ => update::decide(update, current.as_ref(), now_ms, version),
    };
    match write {
        Write::None => {}
        Write::Put(value) => pending.replace(key, stored.as_ref(), Some(value))?,
        Write::Delete => pending.replace(key, stored.as_ref(), None)?,
        Write::Members { key_row, changes } => {
            let generation = CollectionMeta::of(&key_row).map_or(0, |m| m.generation);
            for (member, value) in changes {
                pending.set_member(member_row(key, generation, &member), value);
            }
            pending.replace(key, stored.as_ref(), Some(key_row))?;
        }
    }
    Ok(CommandResult::Update(result))
}

/// A transaction: its guards checked against the live versions, then its operations in
/// order over the same overlay, every write taking the transaction's version.
fn apply_txn(
    pending: &mut Pending<'_>,
    version: Version,
    now_ms: u64,
    txn: &Txn,
) -> Result<CommandResult, StorageError> {
    for (key, expected) in &txn.guards {
        let live = pending.live(key, now_ms)?;
        if live.map_or(Version(0), |v| v.version) != *expected {
            return Ok(CommandResult::Txn(None));
        }
    }
    let mut results = Vec::with_capacity(txn.ops.len());
    for op in &txn.ops {
        results.push(match op {
            TxnOp::Get(key) => TxnOpResult::Got(pending.live_whole(key, now_ms)?.map(|v| {
                let (version, value) = v.tagged();
                (value.into_owned(), Version(version), v.expire_at_ms)
            })),
            TxnOp::Put(put) => TxnOpResult::Wrote(apply_put(pending, version, now_ms, put)?),
            TxnOp::Delete(delete) => {
                TxnOpResult::Wrote(apply_delete(pending, version, now_ms, delete)?)
            }
            TxnOp::Update(update) => {
                TxnOpResult::Wrote(apply_update(pending, version, now_ms, update)?)
            }
            TxnOp::Rename {
                from,
                to,
                only_if_absent,
            } => TxnOpResult::Renamed(apply_rename(
                pending,
                version,
                now_ms,
                (from, to),
                *only_if_absent,
            )?),
        });
    }
    Ok(CommandResult::Txn(Some(results)))
}

/// Moves `from`'s live value and expiry to `to` under a new version, as Redis's `RENAME`
/// keeps the expiry; renaming a key to itself changes nothing.
fn apply_rename(
    pending: &mut Pending<'_>,
    version: Version,
    now_ms: u64,
    (from, to): (&[u8], &[u8]),
    only_if_absent: bool,
) -> Result<RenameOutcome, StorageError> {
    let Some(value) = pending.live(from, now_ms)? else {
        return Ok(RenameOutcome::NoSuchKey);
    };
    let target = pending.get(to)?;
    if only_if_absent && target.as_ref().is_some_and(|v| v.is_live(now_ms)) {
        return Ok(RenameOutcome::TargetExists);
    }
    if from == to {
        return Ok(RenameOutcome::Renamed);
    }
    let mut renamed = StoredValue { version, ..value };
    if let Some(meta) = CollectionMeta::of(&renamed) {
        // The members move under the new key, as a collection of this write's generation.
        let rows = pending.members(from, meta.generation)?;
        for (row, member_value) in rows {
            if let Some((_, _, member)) = parse_member_row(&row) {
                pending.set_member(member_row(to, version.0, member), Some(member_value));
            }
            pending.set_member(row, None);
        }
        pending.collections.forget(from);
        let meta = CollectionMeta {
            generation: version.0,
            ..meta
        };
        renamed.value = meta.encode();
    }
    pending.delete(from.to_vec());
    pending.replace(to, target.as_ref(), Some(renamed))?;
    Ok(RenameOutcome::Renamed)
}

fn apply_purge(
    pending: &mut Pending<'_>,
    now_ms: u64,
    keys: &[(Vec<u8>, Version)],
    owned: SlotRange,
) -> Result<CommandResult, StorageError> {
    let mut purged = 0u32;
    for (key, version) in keys.iter().filter(|(key, _)| owned.contains(slot(key))) {
        let stored = pending.get(key)?;
        if let Some(stored) = stored.filter(|v| expiry::is_purgeable(Some(v), *version, now_ms)) {
            pending.replace(key, Some(&stored), None)?;
            purged += 1;
        }
    }
    Ok(CommandResult::Purge { purged })
}

/// Removes up to `limit` rows of the collection of `generation` under `key`, unless its key
/// row still names it; see [`leftovers`].
fn apply_sweep(
    pending: &mut Pending<'_>,
    key: &[u8],
    generation: u64,
    limit: u32,
    owned: SlotRange,
) -> Result<CommandResult, StorageError> {
    let named = || -> Result<bool, StorageError> {
        Ok(pending
            .get(key)?
            .and_then(|value| CollectionMeta::of(&value))
            .is_some_and(|meta| meta.generation == generation))
    };
    // A split carried the rows of a key moved away to its new shard, which sweeps them there.
    if !owned.contains(slot(key)) || named()? {
        pending.leftovers.remove(key, generation);
        return Ok(CommandResult::Swept {
            rows: 0,
            done: true,
        });
    }
    let rows = pending.first_members(key, generation, limit as usize)?;
    let removed = rows.len();
    for row in rows {
        pending.set_member(row, None);
    }
    let done = removed < limit as usize;
    if done {
        pending.leftovers.remove(key, generation);
    }
    Ok(CommandResult::Swept {
        rows: u32::try_from(removed).unwrap_or(u32::MAX),
        done,
    })
}

/// Which of a command's keys [`command_keys`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// Every key it reads or writes: the slots it must own.
    Touched,
    /// The keys whose current values applying it reads: what a run prefetches.
    Read,
}

/// `command`'s keys of the kind `which`, appended to `keys`.
fn command_keys<'c>(command: &'c Command, which: Keys, keys: &mut Vec<&'c [u8]>) {
    match &command.op {
        // An unconditional put's outcome does not depend on the key's value (a later command
        // of the run that reads the key sees the put through the run's overlay).
        Op::Put(put) if which == Keys::Read && !put.is_conditional() => {}
        Op::Put(put) => keys.push(&put.key),
        Op::Delete(delete) => keys.push(&delete.key),
        Op::Update(update) => keys.push(&update.key),
        Op::Txn(txn) => keys.extend(txn.keys()),
        Op::Purge { keys: purged } => keys.extend(purged.iter().map(|(key, _)| key.as_slice())),
        Op::Batch(commands) => {
            for command in commands {
                command_keys(command, which, keys);
            }
        }
        // A sweep reads a key row no command in flight depends on: no prefetch, no refusal.
        Op::Split(_) | Op::Sweep { .. } => {}
    }
}

/// The writes of a run of entries not yet committed to storage, readable by
/// later entries of the same run.
struct Pending<'a> {
    storage: &'a dyn Storage,
    /// The value of each key the run touches at this point of the run: read before it
    /// began, then as the run wrote it.
    overlay: HashMap<Vec<u8>, Option<StoredValue>>,
    /// The member rows the run wrote, as it left them (`None`: removed).
    members: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The machine's, kept up to date by [`put`](Self::put) and
    /// [`drop_members`](Self::drop_members).
    collections: CollectionKeys,
    /// The machine's: collections whose rows are left for the sweeper.
    leftovers: Arc<Leftovers>,
    batch: WriteBatch,
}

impl<'a> Pending<'a> {
    fn new(
        storage: &'a dyn Storage,
        collections: CollectionKeys,
        leftovers: Arc<Leftovers>,
    ) -> Self {
        Self {
            storage,
            overlay: HashMap::new(),
            members: BTreeMap::new(),
            collections,
            leftovers,
            batch: WriteBatch::new(),
        }
    }

    /// Reads every key whose value the entries' commands depend on in one call, so that a run
    /// pays for one read transaction rather than one per write (and none for a run of
    /// unconditional puts). Runs before the run's first command.
    fn prefetch(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut keys = Vec::new();
        for entry in entries {
            if let EntryPayload::Normal(command) = &entry.payload {
                command_keys(command, Keys::Read, &mut keys);
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let values = self.storage.get_many(&keys)?;
        self.overlay = keys.into_iter().map(<[u8]>::to_vec).zip(values).collect();
        Ok(())
    }

    /// The stored value, expired or not.
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.storage.get(key),
        }
    }

    /// The value visible at `now_ms`.
    fn live(&self, key: &[u8], now_ms: u64) -> Result<Option<StoredValue>, StorageError> {
        Ok(self.get(key)?.filter(|v| v.is_live(now_ms)))
    }

    /// The value visible at `now_ms`, a hash in member rows gathered whole.
    fn live_whole(&self, key: &[u8], now_ms: u64) -> Result<Option<StoredValue>, StorageError> {
        let Some(live) = self.live(key, now_ms)? else {
            return Ok(None);
        };
        let Some(meta) = CollectionMeta::of(&live) else {
            return Ok(Some(live));
        };
        let rows = self.members(key, meta.generation)?;
        Ok(gather_hash(key, &live, rows))
    }

    /// Every member row of the collection under `key` of `generation`, as the run left it.
    fn members(&self, key: &[u8], generation: u64) -> Result<AuxRows, StorageError> {
        let range = members_of(key, generation);
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = self
            .storage
            .aux_range(range.bounds(), usize::MAX)?
            .into_iter()
            .collect();
        for (row, value) in self.members.range::<[u8], _>(range.bounds()) {
            match value {
                Some(value) => rows.insert(row.clone(), value.clone()),
                None => rows.remove(row),
            };
        }
        Ok(rows.into_iter().collect())
    }

    /// The first `limit` member rows of the collection under `key` of `generation`, as the
    /// run left them: the storage's first rows, enough of them that the run's own changes in
    /// the range cannot hide one.
    fn first_members(
        &self,
        key: &[u8],
        generation: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let range = members_of(key, generation);
        let staged: Vec<_> = self.members.range::<[u8], _>(range.bounds()).collect();
        let mut rows: std::collections::BTreeSet<Vec<u8>> = self
            .storage
            .aux_range(range.bounds(), limit.saturating_add(staged.len()))?
            .into_iter()
            .map(|(row, _)| row)
            .collect();
        for (row, value) in staged {
            match value {
                Some(_) => rows.insert(row.clone()),
                None => rows.remove(row),
            };
        }
        Ok(rows.into_iter().take(limit).collect())
    }

    /// The current values of the members `action` names in the hash whose key row is `live`.
    fn named_members(
        &self,
        key: &[u8],
        live: &StoredValue,
        action: &HashUpdate,
    ) -> Result<HashValue, StorageError> {
        let mut named = HashValue::new();
        let Some(meta) = CollectionMeta::of(live) else {
            return Ok(named);
        };
        for field in update::named_fields(action) {
            let row = member_row(key, meta.generation, field);
            let value = match self.members.get(&row) {
                Some(value) => value.clone(),
                None => {
                    let bounds = (
                        Bound::Included(row.as_slice()),
                        Bound::Included(row.as_slice()),
                    );
                    self.storage.aux_range(bounds, 1)?.pop().map(|(_, v)| v)
                }
            };
            if let Some(value) = value {
                named.set(field, value);
            }
        }
        Ok(named)
    }

    /// Stores (`Some`) or removes a member row.
    fn set_member(&mut self, row: Vec<u8>, value: Option<Vec<u8>>) {
        self.members.insert(row.clone(), value.clone());
        self.batch.aux.push((row, value));
    }

    /// Writes `key`'s new key row (`None`: removes the key) over `stored`, the one it had. A
    /// collection's member rows go with a key row that is replaced or removed, and stay with
    /// one of the same collection (a changed expiry, a member write).
    fn replace(
        &mut self,
        key: &[u8],
        stored: Option<&StoredValue>,
        new: Option<StoredValue>,
    ) -> Result<(), StorageError> {
        if let Some(stored) = stored {
            let generation = |value: &StoredValue| CollectionMeta::of(value).map(|m| m.generation);
            let same = generation(stored).is_some()
                && generation(stored) == new.as_ref().and_then(generation);
            if !same {
                self.drop_members(key, stored)?;
            }
        }
        match new {
            Some(value) => self.put(key.to_vec(), value),
            None => self.delete(key.to_vec()),
        }
        Ok(())
    }

    /// Removes the member rows of the collection whose key row is `stored`, if it is one: at
    /// once when it is small, by the sweeper otherwise (see [`leftovers`]).
    fn drop_members(&mut self, key: &[u8], stored: &StoredValue) -> Result<(), StorageError> {
        let Some(meta) = CollectionMeta::of(stored) else {
            return Ok(());
        };
        self.collections.forget(key);
        if meta.len > INLINE_DROP_MAX {
            self.leftovers.add(key, meta.generation);
            return Ok(());
        }
        for (row, _) in self.members(key, meta.generation)? {
            self.set_member(row, None);
        }
        Ok(())
    }

    fn put(&mut self, key: Vec<u8>, value: StoredValue) {
        if value.kind == ValueKind::HashMembers {
            self.collections.note(&key);
        }
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.batch.ops.push(WriteOp::Put { key, value });
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key.clone(), None);
        self.batch.ops.push(WriteOp::Delete { key });
    }
}

impl Machine<ShardRaftConfig> for KvMachine {
    /// Every batch records its log id with its data, so the storage is the shard's snapshot.
    const DURABLE: bool = true;

    fn sync(&self) -> Result<(), io::Error> {
        self.storage.sync().map_err(io::Error::other)
    }

    fn applied_state(
        &self,
    ) -> Result<(Option<LogId<RaftId>>, StoredMembership<RaftId, ShardNode>), io::Error> {
        Ok(KvMachine::applied_state(self))
    }

    /// Hands the batch to [`Storage::commit`], which may buffer it with other shards'.
    fn apply(&mut self, entries: Vec<Entry>) -> Result<Applied<CommandResult>, io::Error> {
        let (responses, staged) = self.stage(entries).map_err(io::Error::other)?;
        let commit = staged.map(|batch| self.storage.commit(batch));
        Ok(Applied { responses, commit })
    }

    /// An apply blocks when it writes many keys; a usual run of batches is staged in well
    /// under a millisecond, and its commit waits without holding the thread.
    fn apply_blocks(&self, entries: &[Entry]) -> bool {
        let writes: usize = entries
            .iter()
            .map(|entry| match &entry.payload {
                EntryPayload::Normal(Command {
                    op: Op::Batch(commands),
                    ..
                }) => commands.len(),
                // A split copies every key of the moved slots.
                EntryPayload::Normal(Command {
                    op: Op::Split(_), ..
                }) => usize::MAX,
                EntryPayload::Normal(Command {
                    op: Op::Sweep { limit, .. },
                    ..
                }) => *limit as usize,
                _ => 1,
            })
            .fold(0, usize::saturating_add);
        writes > INLINE_APPLY_WRITES
    }

    fn export(&self) -> Result<Vec<u8>, io::Error> {
        KvMachine::export(self).map_err(io::Error::other)
    }

    fn import(
        &mut self,
        last_applied: Option<LogId<RaftId>>,
        membership: StoredMembership<RaftId, ShardNode>,
        data: &[u8],
    ) -> Result<(), io::Error> {
        KvMachine::import(self, last_applied, membership, data).map_err(io::Error::other)
    }
}

mod collections;
pub mod leftovers;
mod snapshot;
mod split;

use collections::CollectionKeys;
use leftovers::{INLINE_DROP_MAX, Leftovers};

#[cfg(test)]
mod tests;
