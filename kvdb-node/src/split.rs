//! Shard splits on a node: which slots a replica still serves, creating a new shard's state
//! from its parent's, and when this node may open a shard that a split creates.
//!
//! A split starts at the coordinator, which narrows the parent's range in the map and adds
//! the new shard as `Splitting { from: parent }` on the same replicas. The parent's leader
//! sees that ([`pending_split`]) and proposes an [`Op::Split`](crate::command::Op) entry. Every
//! replica of the parent, applying it at the same log index, does the same three things:
//! - copies the new shard's slots (values with their versions and expiries) and the whole
//!   client-session table into the new shard's tables, as the state applied up to that index,
//!   with the parent's membership ([`Nursery::create`]); the new group then starts from that
//!   state, like a replica that installed a snapshot, and elects a leader among the copies;
//! - narrows its own [`Fence`] before the batch that deletes those slots becomes visible, so a
//!   read that finds a key missing after the split is refused rather than answered;
//! - refuses later writes to the moved slots (`CommandResult::NotOwned`): a write admitted
//!   against an older map but ordered after the split in the log is never applied to the
//!   parent, and the client retries it at the new shard, whose session table knows every
//!   write the parent applied.
//!
//! Everything is decided by the parent's log, so a replica that lags applies the split later
//! and a replica that missed it receives the parent's state after it from a snapshot (which
//! carries the narrowed range). A new shard's replica is opened only once the local parent no
//! longer owns its slots ([`may_open`]), and a replica already open is never overwritten: its
//! state then comes from the new group's leader, like any new replica's. While the new shard
//! is `Splitting`, every replica waits for its parent, so the new group can only elect a leader
//! among copies made by the split.
//!
//! Out of scope: merging shards back, and splits of a shard whose replicas are moving (the
//! coordinator refuses both orders of that).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kvdb_core::raft::log_store::LogDb;
use kvdb_core::storage::{AuxRows, CommitDurability, RedbStorage, Storage, StorageError};
use kvdb_core::storage::{StoredValue, WriteBuffer};
use kvdb_core::{NodeId, SLOT_COUNT, ShardId, ShardInfo, ShardMap, ShardState, Slot};
use serde::{Deserialize, Serialize};

use crate::command::{Split, SplitChild};
use crate::raft_types::ShardRaftConfig;

/// An inclusive range of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    /// First slot, inclusive.
    pub start: Slot,
    /// Last slot, inclusive.
    pub end: Slot,
}

impl SlotRange {
    /// Every slot: what a shard that was never split serves, as far as its state machine
    /// knows (the map's range is checked before a request reaches it).
    pub const ALL: SlotRange = SlotRange {
        start: Slot(0),
        end: Slot(SLOT_COUNT - 1),
    };

    /// Whether `slot` is in the range.
    pub fn contains(self, slot: Slot) -> bool {
        self.start <= slot && slot <= self.end
    }

    /// Whether the two ranges share a slot.
    pub fn overlaps(self, other: SlotRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The range of a shard in the map.
    pub fn of(shard: &ShardInfo) -> Self {
        Self {
            start: shard.slot_start,
            end: shard.slot_end,
        }
    }

    fn pack(self) -> u32 {
        u32::from(self.start.0) << 16 | u32::from(self.end.0)
    }

    fn unpack(bits: u32) -> Self {
        Self {
            start: Slot((bits >> 16) as u16),
            end: Slot(bits as u16),
        }
    }
}

/// The slots a replica's state machine still serves, readable without a lock. Narrowed by a
/// split before the deletion of the moved slots becomes visible; a reader checks it after it
/// read the storage, so a value it returns was read while the slot still belonged here.
#[derive(Debug)]
pub struct Fence(AtomicU32);

impl Fence {
    /// A fence serving `range`.
    pub fn new(range: SlotRange) -> Self {
        Self(AtomicU32::new(range.pack()))
    }

    /// The slots served now.
    pub fn range(&self) -> SlotRange {
        SlotRange::unpack(self.0.load(Ordering::SeqCst))
    }

    /// Whether `slot` is served now.
    pub fn serves(&self, slot: Slot) -> bool {
        self.range().contains(slot)
    }

    /// Serves `range` from now on.
    pub fn set(&self, range: SlotRange) {
        self.0.store(range.pack(), Ordering::SeqCst);
    }
}

/// Where a replica applying a split writes the new shards' first state.
pub trait ShardCreator: Send + Sync + 'static {
    /// Writes `shard`'s first state (its slots, the session rows and the metadata of the
    /// split's log position), unless this node must not: whether it wrote. Durable when it
    /// returns.
    fn create(
        &self,
        shard: ShardId,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Vec<u8>,
        aux: AuxRows,
    ) -> Result<bool, StorageError>;
}

/// Creates the state of shards that splits carve out of this node's replicas, and tracks
/// which shards have a replica open here, so that a split never writes under a running group.
pub struct Nursery {
    kv_db: Arc<WriteBuffer>,
    /// The Raft logs, which remember every group that ever ran on this node.
    log_db: LogDb,
    /// Shards with a replica opening, open, or waiting for its data to be deleted.
    claimed: Mutex<HashSet<ShardId>>,
}

impl std::fmt::Debug for Nursery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nursery")
            .field("claimed", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Nursery {
    /// A nursery over the node's key-value and Raft log databases.
    pub fn new(kv_db: Arc<WriteBuffer>, log_db: LogDb) -> Self {
        Self {
            kv_db,
            log_db,
            claimed: Mutex::default(),
        }
    }

    /// Marks `shard` as having a replica here; call before opening it.
    pub fn claim(&self, shard: ShardId) {
        self.lock().insert(shard);
    }

    /// Ends a [`claim`](Self::claim): the replica failed to open or its data is deleted.
    pub fn release(&self, shard: ShardId) {
        self.lock().remove(&shard);
    }

    /// Whether a replica of `shard` ever ran on this node; `true` when the log cannot be
    /// read, as creating nothing is the safe side (the state then comes from the leader).
    fn ever_hosted(&self, shard: ShardId) -> bool {
        let store = self.log_db.group::<ShardRaftConfig>(shard.0);
        store.ever_hosted().unwrap_or_else(|e| {
            tracing::warn!(%shard, error = %e, "cannot read the shard's Raft history; not creating it from the split");
            true
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ShardId>> {
        self.claimed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ShardCreator for Nursery {
    /// Writes nothing when a replica of `shard` is claimed here (its state comes from its
    /// group's leader), its tables already hold a state (this split was applied before a
    /// crash lost the parent's side of it), or a replica of it ever ran here: a parent that
    /// applies the split late (it lagged, or re-applies after a restart) must not bring back
    /// a group this node has left. Its copy would carry the split's membership and, with
    /// the vote its old replica kept, could campaign as a member it no longer is; a replica
    /// given back gets its state from its leader, like any new one.
    fn create(
        &self,
        shard: ShardId,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Vec<u8>,
        aux: AuxRows,
    ) -> Result<bool, StorageError> {
        let claimed = self.lock();
        if claimed.contains(&shard) || self.ever_hosted(shard) {
            return Ok(false);
        }
        let storage = RedbStorage::open_in(&self.kv_db, shard, CommitDurability::Deferred)?;
        if storage.meta()?.is_some() {
            return Ok(false);
        }
        storage.install(entries, Some(meta), aux)?;
        drop(claimed);
        Ok(true)
    }
}

/// The shards of a map being split off, by the shard they come from: built once per look at
/// the map, so that a node leading a thousand shards does not scan the map once for each.
pub type SplitsByParent<'a> = HashMap<ShardId, Vec<&'a ShardInfo>>;

/// The shards of `map` in the `Splitting` state, grouped by parent.
pub fn splits_by_parent(map: &ShardMap) -> SplitsByParent<'_> {
    let mut splits = SplitsByParent::new();
    for shard in map.shards.values() {
        if let ShardState::Splitting { from } = shard.state {
            splits.entry(from).or_default().push(shard);
        }
    }
    splits
}

/// The split `parent`'s leader should propose, given the map's splits and the slots its
/// replica still serves: the shards `Splitting` from it, in slot order, when they continue its
/// map range without gaps and it still serves their first slot. `None` when there is nothing
/// to do, or the map is not (yet) a split this replica can apply.
pub fn pending_split(
    splits: &SplitsByParent<'_>,
    parent: &ShardInfo,
    serving: SlotRange,
) -> Option<Split> {
    let mut children = splits.get(&parent.id)?.clone();
    children.sort_by_key(|c| c.slot_start);
    let mut next = u32::from(parent.slot_end.0) + 1;
    for child in &children {
        if u32::from(child.slot_start.0) != next {
            return None;
        }
        next = u32::from(child.slot_end.0) + 1;
    }
    let first = children.first()?;
    if !serving.contains(first.slot_start) {
        return None;
    }
    Some(Split {
        children: children
            .iter()
            .map(|c| SplitChild {
                shard: c.id,
                slot_start: c.slot_start,
                slot_end: c.slot_end,
            })
            .collect(),
    })
}

/// Whether node `me` may open its replica of `shard` now. A shard being split off waits until
/// its parent's replica here no longer serves its slots (the split was applied, or a snapshot
/// after it installed): the split creates it from the parent's state. `parent_serving` is that
/// replica's [`Fence`] range, `None` when it is not open here. Every other shard may open.
pub fn may_open(
    map: &ShardMap,
    me: NodeId,
    shard: &ShardInfo,
    parent_serving: Option<SlotRange>,
) -> bool {
    let ShardState::Splitting { from } = shard.state else {
        return true;
    };
    let hosts_parent = map
        .shards
        .get(&from)
        .is_some_and(|p| p.members().contains(&me));
    if !hosts_parent {
        return true;
    }
    parent_serving.is_some_and(|serving| !serving.overlaps(SlotRange::of(shard)))
}

#[cfg(test)]
mod tests;
