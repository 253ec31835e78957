//! Splitting a shard: the coordinator's half of carving a new shard out of an
//! existing one.
//!
//! `SplitShard` narrows the parent's range to the slots below the split point
//! and adds a child for the rest, in one map version, both at the parent's
//! next epoch. The child is `Splitting { from: parent }` on the parent's
//! replicas, with no leader. The parent's Raft leader sees the narrowed range
//! and proposes the split in its own log; every replica of the parent builds
//! the child's group from its own state when it applies that entry, so the
//! child's data is never copied over the network nor started empty. The
//! child's first leader then reports itself (`ReportShardLeader`), which makes
//! it `Stable` (see `shards.rs`).
//!
//! Until then both shards are busy: neither may split again nor change
//! replicas, because the child's group is built from the parent's replica set
//! as it was at the split.
//!
//! Out of scope: merging shards back, and choosing split points by key
//! distribution (the default is the middle slot; the scheduler and operators
//! pick no better without per-slot figures).

use kvdb_core::{Epoch, ShardId, ShardInfo, ShardState, Slot};

use super::shards::check_epoch;
use super::{Change, MetaState};
use crate::command::{CommandResult, Outcome};
use crate::error::{BusyReason, CoordinatorError};

#[cfg(test)]
mod tests;

impl MetaState {
    pub(super) fn split_shard(
        &mut self,
        id: ShardId,
        epoch: Option<Epoch>,
        at: Option<Slot>,
    ) -> CommandResult {
        let parent = self.shard(id)?;
        check_epoch(parent, epoch)?;
        let busy = match &parent.state {
            ShardState::Moving { .. } => Some(BusyReason::Moving),
            ShardState::Stable | ShardState::Splitting { .. } => self.unsettled_split(parent),
        };
        if let Some(reason) = busy {
            return Err(CoordinatorError::ShardBusy { shard: id, reason });
        }
        let at = split_point(parent, at)?;
        let epoch = parent.epoch.next();
        let child = ShardInfo {
            id: self.next_shard_id(),
            slot_start: at,
            slot_end: parent.slot_end,
            replicas: parent.replicas.clone(),
            leader: None,
            leader_term: 0,
            epoch,
            state: ShardState::Splitting { from: id },
        };
        let parent = ShardInfo {
            slot_end: Slot(at.0 - 1),
            epoch,
            ..parent.clone()
        };
        let version = self.commit(Change {
            nodes: Vec::new(),
            shards: vec![parent.clone(), child.clone()],
        });
        Ok(Outcome::Split {
            parent,
            child,
            version,
        })
    }

    /// One past the largest shard id. Shards are never removed (a merge is
    /// out of scope), so this id has never named another shard, and no node
    /// can hold stale state of a group by that id.
    fn next_shard_id(&self) -> ShardId {
        self.map
            .shards
            .keys()
            .next_back()
            .map_or(ShardId(0), |last| ShardId(last.0 + 1))
    }
}

/// Where `shard` splits when no point is given: the middle of its range (the
/// upper half is the larger by one slot when the count is odd). `None` for a
/// one-slot shard, which cannot split.
pub(crate) fn split_midpoint(shard: &ShardInfo) -> Option<Slot> {
    let (start, end) = (u32::from(shard.slot_start.0), u32::from(shard.slot_end.0));
    let slots = end - start + 1;
    // At most `end`, so it fits in a slot.
    (slots > 1).then(|| Slot((start + slots / 2) as u16))
}

/// The child's first slot: `at`, or the middle of `shard`'s range. It must
/// leave at least one slot on each side.
fn split_point(shard: &ShardInfo, at: Option<Slot>) -> Result<Slot, CoordinatorError> {
    let (start, end) = (u32::from(shard.slot_start.0), u32::from(shard.slot_end.0));
    let id = shard.id;
    let Some(midpoint) = split_midpoint(shard) else {
        return Err(CoordinatorError::InvalidArgument(format!(
            "shard {id} has a single slot ({start}) and cannot be split"
        )));
    };
    let at = at.unwrap_or(midpoint);
    let slot = u32::from(at.0);
    let why = if slot == start {
        format!(
            "slot {slot} is the first slot of shard {id} (slots {start}..={end}), \
             so the shard would keep none"
        )
    } else if slot < start || slot > end {
        format!("slot {slot} is not inside shard {id} (slots {start}..={end})")
    } else {
        return Ok(at);
    };
    Err(CoordinatorError::InvalidArgument(format!(
        "{why}; a split point must be in {}..={end}",
        start + 1
    )))
}
