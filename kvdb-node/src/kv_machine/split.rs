//! Applying a split (see [`crate::split`]): the new shards' first state, and the parent's
//! narrowed range.

use std::collections::BTreeMap;

use kvdb_core::member_rows::{all_member_rows, parse_member_row};
use kvdb_core::raft::codec;
use kvdb_core::slot::slot;
use kvdb_core::storage::StoredValue;
use openraft::{CommittedLeaderId, LogId, StoredMembership};

use super::{KvMachine, MachineError, Meta, Pending};
use crate::command::{CommandResult, Split};
use crate::split::SlotRange;

impl KvMachine {
    /// Applies the split of the entry at `index`. Deterministic: every replica creates the
    /// same state for each new shard, the one at this log position, recorded as applied up to
    /// log id `(term 0, index)`: its group's own entries follow at higher indexes (so versions
    /// keep growing per key) and any term it elects is above 0. A split that does not fit the
    /// slots this shard serves (applied already, or proposed from another map) changes nothing.
    pub(super) fn apply_split(
        &mut self,
        pending: &mut Pending<'_>,
        index: u64,
        split: &Split,
    ) -> Result<CommandResult, MachineError> {
        let nothing = Ok(CommandResult::Split {
            created: Vec::new(),
        });
        let Some(creator) = self.creator.clone() else {
            return nothing;
        };
        let owned = self.meta.owned();
        let (Some(first), Some(last)) = (split.children.first(), split.children.last()) else {
            return nothing;
        };
        let at = first.slot_start;
        let gapless = split
            .children
            .windows(2)
            .all(|w| u32::from(w[0].slot_end.0) + 1 == u32::from(w[1].slot_start.0));
        let fits = owned.start < at
            && at <= owned.end
            && (self.meta.owned.is_none() || last.slot_end == owned.end)
            && last.slot_end <= owned.end
            && split.children.iter().all(|c| c.slot_start <= c.slot_end);
        if !gapless || !fits {
            return nothing;
        }
        let moved_range = SlotRange {
            start: at,
            end: last.slot_end,
        };
        let mut moved: BTreeMap<Vec<u8>, StoredValue> = self
            .storage
            .export()?
            .into_iter()
            .filter(|(key, _)| moved_range.contains(slot(key)))
            .collect();
        // Writes earlier in this run are not in the storage yet.
        for (key, value) in &pending.overlay {
            if moved_range.contains(slot(key)) {
                match value {
                    Some(value) => moved.insert(key.clone(), value.clone()),
                    None => moved.remove(key),
                };
            }
        }
        let member_slot = |row: &[u8]| parse_member_row(row).map(|(key, _, _)| slot(key));
        let in_moved = |row: &[u8]| member_slot(row).is_some_and(|s| moved_range.contains(s));
        let mut moved_members: BTreeMap<Vec<u8>, Vec<u8>> = self
            .storage
            .aux_range(all_member_rows().bounds(), usize::MAX)?
            .into_iter()
            .filter(|(row, _)| in_moved(row))
            .collect();
        for (row, value) in &pending.members {
            if in_moved(row) {
                match value {
                    Some(value) => moved_members.insert(row.clone(), value.clone()),
                    None => moved_members.remove(row),
                };
            }
        }
        // PLANTED BUG (SplitSkipsBoundary): the split point's own slot is neither copied nor kept.
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(crate::planted::PlantedBug::SplitSkipsBoundary) {
            moved.retain(|key, _| slot(key) != at);
        }
        let born = LogId::new(CommittedLeaderId::new(0, 0), index);
        let membership =
            StoredMembership::new(Some(born), self.meta.membership.membership().clone());
        let sessions = self.sessions.rows()?;
        let mut created = Vec::new();
        for child in &split.children {
            let range = SlotRange {
                start: child.slot_start,
                end: child.slot_end,
            };
            let entries = moved
                .iter()
                .filter(|(key, _)| range.contains(slot(key)))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            let meta = Meta {
                last_applied: Some(born),
                membership: membership.clone(),
                owned: Some(range),
            };
            let mut aux = sessions.clone();
            aux.extend(
                moved_members
                    .iter()
                    .filter(|(row, _)| member_slot(row).is_some_and(|s| range.contains(s)))
                    .map(|(row, value)| (row.clone(), value.clone())),
            );
            if creator.create(child.shard, entries, codec::encode(&meta)?, aux)? {
                created.push(child.shard);
            }
        }
        let kept = SlotRange {
            start: owned.start,
            end: kvdb_core::Slot(at.0 - 1),
        };
        self.meta.owned = Some(kept);
        // Before the deletions below become visible: see `Fence`.
        self.fence.set(kept);
        for key in moved.into_keys() {
            pending.delete(key);
        }
        for row in moved_members.into_keys() {
            pending.set_member(row, None);
        }
        tracing::info!(
            ?created,
            slots = ?moved_range,
            index,
            "split applied: the slots now belong to the new shards"
        );
        Ok(CommandResult::Split { created })
    }
}
