//! Entries a group has appended but the writer has not yet committed: what makes an append
//! readable before it is durable.
//!
//! openraft requires appended entries to be readable as soon as `append` returns, and durable
//! only when the flush callback runs. The index shows entries only after the commit holding
//! them is durable, so each group keeps its not-yet-committed entries here; readers merge them
//! over the indexed ones. The writer removes an append's entries right after the commit
//! holding them is durable and indexed, and before it reports them flushed.
//!
//! An entry is tagged with the append that wrote it, so that settling an old append never
//! removes a newer entry at the same index (written after a truncation).
//!
//! Out of scope: durability (the writer's job) and decoding (entries stay encoded).

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

/// An encoded log entry, shared by the overlay and the write request that persists it.
pub(super) type EncodedEntry = Arc<[u8]>;

/// One group's appended, not yet committed entries. Shared by the group's store and its
/// readers.
#[derive(Default)]
pub(super) struct Overlay {
    inner: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Tag of the next append.
    next_append: u64,
    /// `index -> (tag of the append that wrote it, entry)`.
    entries: BTreeMap<u64, (u64, EncodedEntry)>,
}

/// What [`Overlay::settle`] needs to remove one append's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AppendTag {
    tag: u64,
    first: u64,
    last: u64,
}

impl Overlay {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `entries` (index order, contiguous) readable; returns the tag that settles them.
    /// `None` when there is nothing to add.
    pub(super) fn insert(&self, entries: &[(u64, EncodedEntry)]) -> Option<AppendTag> {
        let (first, last) = (entries.first()?.0, entries.last()?.0);
        let mut pending = self.lock();
        let tag = pending.next_append;
        pending.next_append += 1;
        // An append replaces everything from its first index on (openraft truncates first,
        // but a stale tail must never show through either way).
        pending.entries.split_off(&first);
        for (index, bytes) in entries {
            pending.entries.insert(*index, (tag, bytes.clone()));
        }
        Some(AppendTag { tag, first, last })
    }

    /// Removes the entries of the append `tag` once the index holds them (or once their
    /// commit failed). Entries rewritten by a later append stay.
    pub(super) fn settle(&self, tag: AppendTag) {
        let mut pending = self.lock();
        let settled: Vec<u64> = pending
            .entries
            .range(tag.first..=tag.last)
            .filter(|(_, (t, _))| *t == tag.tag)
            .map(|(index, _)| *index)
            .collect();
        for index in settled {
            pending.entries.remove(&index);
        }
    }

    /// Forgets pending entries from index `since` on (a truncation).
    pub(super) fn remove_since(&self, since: u64) {
        self.lock().entries.split_off(&since);
    }

    /// Forgets pending entries up to index `upto` (a purge).
    pub(super) fn remove_upto(&self, upto: u64) {
        let mut pending = self.lock();
        let kept = match upto.checked_add(1) {
            Some(next) => pending.entries.split_off(&next),
            None => BTreeMap::new(),
        };
        pending.entries = kept;
    }

    /// Pending entries with index in `range`, in index order.
    pub(super) fn range(&self, range: &impl RangeBounds<u64>) -> Vec<(u64, EncodedEntry)> {
        let bounds = (cloned(range.start_bound()), cloned(range.end_bound()));
        if is_empty(bounds) {
            return Vec::new();
        }
        self.lock()
            .entries
            .range(bounds)
            .map(|(index, (_, bytes))| (*index, bytes.clone()))
            .collect()
    }

    /// The pending entry with the highest index.
    pub(super) fn last(&self) -> Option<EncodedEntry> {
        let pending = self.lock();
        pending
            .entries
            .last_key_value()
            .map(|(_, (_, bytes))| bytes.clone())
    }
}

fn cloned(bound: Bound<&u64>) -> Bound<u64> {
    bound.cloned()
}

/// `BTreeMap::range` panics on inverted or empty-excluded bounds; openraft may ask for them.
fn is_empty((start, end): (Bound<u64>, Bound<u64>)) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
            s >= e
        }
        (Bound::Excluded(s), Bound::Excluded(e)) => s >= e || s + 1 == e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(indexes: impl IntoIterator<Item = u64>, byte: u8) -> Vec<(u64, EncodedEntry)> {
        indexes
            .into_iter()
            .map(|i| (i, Arc::from(vec![byte])))
            .collect()
    }

    fn held(overlay: &Overlay) -> Vec<(u64, u8)> {
        overlay
            .range(&(..))
            .into_iter()
            .map(|(i, b)| (i, b[0]))
            .collect()
    }

    #[test]
    fn settling_an_old_append_keeps_entries_rewritten_after_it() {
        let overlay = Overlay::default();
        let old = overlay.insert(&entries(1..=3, 1)).unwrap();
        overlay.remove_since(2);
        overlay.insert(&entries(2..=2, 2)).unwrap();
        overlay.settle(old);
        assert_eq!(held(&overlay), vec![(2, 2)]);
    }

    #[test]
    fn an_append_replaces_the_pending_tail() {
        let overlay = Overlay::default();
        overlay.insert(&entries(1..=5, 1)).unwrap();
        overlay.insert(&entries(3..=3, 2)).unwrap();
        assert_eq!(held(&overlay), vec![(1, 1), (2, 1), (3, 2)]);
        overlay.remove_upto(1);
        assert_eq!(held(&overlay), vec![(2, 1), (3, 2)]);
        assert_eq!(overlay.last().unwrap()[0], 2);
    }

    #[test]
    fn empty_and_inverted_ranges_are_empty() {
        let overlay = Overlay::default();
        overlay.insert(&entries(1..=5, 1)).unwrap();
        assert!(overlay.range(&(3..3)).is_empty());
        let (start, end) = (4, 3);
        assert!(overlay.range(&(start..=end)).is_empty());
        assert_eq!(overlay.range(&(2..4)).len(), 2);
        assert!(overlay.insert(&[]).is_none());
    }
}
