//! Where every group's log entries are, and its metadata: the in-memory state the segments
//! are replayed into at open and that every commit updates.
//!
//! A group's entries are contiguous, so its index is a deque of locations from its first
//! index on (24 bytes an entry). Metadata values (vote, committed, purged, vote floor) are
//! small and kept whole. Only the writer thread changes the index, after the record holding
//! a change is durable; readers lock one group at a time.
//!
//! [`Liveness`] counts, per segment, the entries each group still has there: a segment with
//! none left can be deleted, and the groups left in an old one are the ones to copy forward.
//!
//! Applying a write is the same function at replay and after a commit, which is what makes the
//! replayed state the committed one.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, RwLock};

use super::record::{MetaKey, Op, Span};
use super::segments::Segment;
use crate::raft::lock;

/// Where one entry's bytes are.
#[derive(Debug, Clone)]
pub(super) struct Loc {
    segment: Arc<Segment>,
    offset: u64,
    len: u32,
}

impl Loc {
    /// The entry at `span` of the record at `record` in `segment`.
    pub(super) fn new(segment: &Arc<Segment>, record: u64, span: Span) -> Self {
        Self {
            segment: segment.clone(),
            offset: record + u64::from(span.offset),
            len: span.len,
        }
    }

    pub(super) fn segment(&self) -> u64 {
        self.segment.seq()
    }
}

/// Hands the bytes of each entry at `locs` to `each`, in order, with one read per run of
/// adjacent entries and no copy of each entry.
pub(super) fn read_each<E: From<io::Error>>(
    locs: &[Loc],
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut run = 0;
    while run < locs.len() {
        let first = &locs[run];
        let mut end = run + 1;
        let mut bytes = u64::from(first.len);
        while end < locs.len()
            && Arc::ptr_eq(&locs[end].segment, &first.segment)
            && locs[end].offset == first.offset + bytes
        {
            bytes += u64::from(locs[end].len);
            end += 1;
        }
        let span = first.segment.read(first.offset, bytes as usize)?;
        let mut at = 0;
        for loc in &locs[run..end] {
            each(&span[at..at + loc.len as usize])?;
            at += loc.len as usize;
        }
        run = end;
    }
    Ok(())
}

/// One group's entries and metadata.
#[derive(Debug, Default)]
pub(super) struct GroupLog {
    /// Index of the first entry in `entries`.
    first: u64,
    entries: VecDeque<Loc>,
    meta: [Option<Vec<u8>>; 4],
}

impl GroupLog {
    pub(super) fn meta(&self, key: MetaKey) -> Option<&[u8]> {
        self.meta[key.slot()].as_deref()
    }

    /// Every metadata value present.
    pub(super) fn metas(&self) -> impl Iterator<Item = (MetaKey, &[u8])> {
        MetaKey::ALL
            .into_iter()
            .filter_map(|key| Some((key, self.meta(key)?)))
    }

    /// Index and location of the last entry.
    pub(super) fn last(&self) -> Option<(u64, &Loc)> {
        let loc = self.entries.back()?;
        Some((self.first + self.entries.len() as u64 - 1, loc))
    }

    /// Locations of the entries with index in `start..end`, and the first such index.
    pub(super) fn range(&self, start: u64, end: u64) -> (u64, Vec<Loc>) {
        let from = start.max(self.first);
        let to = end.min(self.first + self.entries.len() as u64);
        if from >= to {
            return (from, Vec::new());
        }
        let locs = self
            .entries
            .range((from - self.first) as usize..(to - self.first) as usize)
            .cloned()
            .collect();
        (from, locs)
    }

    /// Every entry: its first index and locations.
    pub(super) fn all(&self) -> (u64, Vec<Loc>) {
        self.range(0, u64::MAX)
    }

    /// Applies `op` (a write of this group) whose entries are in the record at `record` of
    /// `segment`, reporting entries added and dropped to `live`.
    pub(super) fn apply(
        &mut self,
        op: &Op<Span>,
        segment: &Arc<Segment>,
        record: u64,
        live: &mut impl LiveCount,
    ) {
        match op {
            Op::Append { entries, .. } => {
                let Some((first, _)) = entries.first() else {
                    return;
                };
                let next = self.first + self.entries.len() as u64;
                if self.entries.is_empty() || *first < self.first || *first > next {
                    // Not adjacent: a new run (at replay, the earlier one is dead anyway).
                    self.truncate(self.first, live);
                    self.first = *first;
                } else {
                    self.truncate(*first, live);
                }
                for (_, span) in entries {
                    let loc = Loc::new(segment, record, *span);
                    live.add(loc.segment());
                    self.entries.push_back(loc);
                }
            }
            Op::PutMeta { key, value, .. } => self.meta[key.slot()] = value.clone(),
            Op::Truncate { since, .. } => self.truncate(*since, live),
            Op::Purge { upto, purged, .. } => {
                self.meta[MetaKey::Purged.slot()] = Some(purged.clone());
                while self.first <= *upto
                    && let Some(loc) = self.entries.pop_front()
                {
                    live.remove(loc.segment());
                    self.first += 1;
                }
                if self.entries.is_empty() {
                    self.first = upto.saturating_add(1);
                }
            }
            Op::RemoveGroup { floor, vote, .. } => {
                self.truncate(self.first, live);
                self.meta[MetaKey::Committed.slot()] = None;
                self.meta[MetaKey::Purged.slot()] = None;
                if floor.is_some() {
                    self.meta[MetaKey::VoteFloor.slot()] = floor.clone();
                }
                if vote.is_some() {
                    self.meta[MetaKey::Vote.slot()] = vote.clone();
                }
            }
            Op::Barrier => {}
        }
    }

    /// Drops entries from index `since` on.
    fn truncate(&mut self, since: u64, live: &mut impl LiveCount) {
        let keep = since.saturating_sub(self.first) as usize;
        while self.entries.len() > keep {
            if let Some(loc) = self.entries.pop_back() {
                live.remove(loc.segment());
            }
        }
    }
}

/// What a change to a group's entries reports, per segment.
pub(super) trait LiveCount {
    fn add(&mut self, segment: u64);
    fn remove(&mut self, segment: u64);
}

/// Entries still in use per segment and group.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    segments: HashMap<u64, HashMap<u64, u32>>,
}

impl Liveness {
    /// The counter for `group`'s changes.
    pub(super) fn of(&mut self, group: u64) -> GroupLiveness<'_> {
        GroupLiveness { live: self, group }
    }

    /// Whether any entry is still in use in `segment`.
    pub(super) fn in_use(&self, segment: u64) -> bool {
        self.segments.contains_key(&segment)
    }

    /// The groups with entries in `segment`.
    pub(super) fn groups_in(&self, segment: u64) -> Vec<u64> {
        let mut groups: Vec<u64> = self
            .segments
            .get(&segment)
            .map(|groups| groups.keys().copied().collect())
            .unwrap_or_default();
        groups.sort_unstable();
        groups
    }
}

/// [`Liveness`] seen from one group.
pub(super) struct GroupLiveness<'a> {
    live: &'a mut Liveness,
    group: u64,
}

impl LiveCount for GroupLiveness<'_> {
    fn add(&mut self, segment: u64) {
        *self
            .live
            .segments
            .entry(segment)
            .or_default()
            .entry(self.group)
            .or_default() += 1;
    }

    fn remove(&mut self, segment: u64) {
        let Some(groups) = self.live.segments.get_mut(&segment) else {
            return;
        };
        if let Some(count) = groups.get_mut(&self.group) {
            *count -= 1;
            if *count == 0 {
                groups.remove(&self.group);
            }
        }
        if groups.is_empty() {
            self.live.segments.remove(&segment);
        }
    }
}

/// Every group's [`GroupLog`], shared by the writer and the groups' stores.
#[derive(Default)]
pub(super) struct LogIndex {
    groups: RwLock<HashMap<u64, Arc<Mutex<GroupLog>>>>,
}

impl LogIndex {
    /// Group `group`'s log, created empty if the group has none yet.
    pub(super) fn group(&self, group: u64) -> Arc<Mutex<GroupLog>> {
        let found = self
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&group)
            .cloned();
        if let Some(log) = found {
            return log;
        }
        self.groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(group)
            .or_default()
            .clone()
    }

    /// Every group with a log, in id order.
    pub(super) fn groups(&self) -> Vec<(u64, Arc<Mutex<GroupLog>>)> {
        let mut groups: Vec<_> = self
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, log)| (*id, log.clone()))
            .collect();
        groups.sort_unstable_by_key(|(id, _)| *id);
        groups
    }

    /// Applies `op` to its group (see [`GroupLog::apply`]).
    pub(super) fn apply(
        &self,
        op: &Op<Span>,
        segment: &Arc<Segment>,
        record: u64,
        live: &mut Liveness,
    ) {
        let Some(group) = op_group(op) else {
            return;
        };
        let log = self.group(group);
        lock(&log).apply(op, segment, record, &mut live.of(group));
    }
}

/// The group a write belongs to; `None` for a barrier.
fn op_group<E>(op: &Op<E>) -> Option<u64> {
    match op {
        Op::Append { group, .. }
        | Op::PutMeta { group, .. }
        | Op::Truncate { group, .. }
        | Op::Purge { group, .. }
        | Op::RemoveGroup { group, .. } => Some(*group),
        Op::Barrier => None,
    }
}
