//! One Raft group's handle on the shared log: the openraft log traits.
//!
//! `append` returns once its entries are in the group's [`Overlay`] (readable) and queued for
//! the writer; the writer reports them flushed after their commit is durable. Truncations
//! and purges drop matching overlay entries at once, then wait for their own commit, which the
//! writer orders after every append queued before them. Committed-id saves are queued without
//! waiting: their latest value is remembered here for `read_committed`.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};

use super::index::{self, GroupLog};
use super::overlay::{EncodedEntry, Overlay};
use super::record::{MetaKey, Op};
use super::writer::Writer;
use super::{KvdbRaftConfig, LogDbError};
use crate::raft::codec::{self, CodecError};
use crate::raft::lease::LeaseClock;
use crate::raft::lock;

/// The latest committed log id saved, if any since the store was made: `Some(None)` is a saved
/// "nothing committed".
type SavedCommitted = Arc<Mutex<Option<Option<LogId<u64>>>>>;

/// One Raft group's log and vote, in a shared [`super::LogDb`]. Cloning is cheap; a clone is also
/// the group's log reader and shares its pending entries. Use one store (and its clones) per
/// group at a time: another store of the same group would not see its pending entries.
pub struct GroupLogStore<C> {
    group: u64,
    log: Arc<Mutex<GroupLog>>,
    writer: Arc<Writer>,
    overlay: Arc<Overlay>,
    committed: SavedCommitted,
    lease: Option<Arc<LeaseClock>>,
    /// Bytes of entries appended since the store opened (see [`GroupLogStore::appended_bytes`]).
    appended: Arc<AtomicU64>,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for GroupLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group: self.group,
            log: self.log.clone(),
            writer: self.writer.clone(),
            overlay: self.overlay.clone(),
            committed: self.committed.clone(),
            lease: self.lease.clone(),
            appended: self.appended.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: KvdbRaftConfig> GroupLogStore<C> {
    pub(super) fn new(group: u64, log: Arc<Mutex<GroupLog>>, writer: Arc<Writer>) -> Self {
        Self {
            group,
            log,
            writer,
            overlay: Arc::default(),
            committed: Arc::default(),
            lease: None,
            appended: Arc::default(),
            _config: PhantomData,
        }
    }

    /// A running count of the encoded bytes of every entry appended to this group's log since
    /// the store opened: how fast the log grows, for compacting it by size (an entry may pack
    /// many writes, so counting entries says little about bytes).
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    /// Reports every vote this store saves to `lease`, before saving it.
    pub fn with_lease_clock(mut self, lease: Arc<LeaseClock>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The Raft group this store belongs to.
    pub fn group_id(&self) -> u64 {
        self.group
    }

    /// The writer test hook, to hold or crash commits.
    #[cfg(test)]
    pub(in crate::raft) fn writer_gate(&self) -> &super::writer::gate::Gate {
        self.writer.gate()
    }

    /// Entries with index in `range`, in index order: durable entries with pending ones laid
    /// over them.
    fn read_entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry<C>>, LogDbError> {
        let Some((start, end)) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        // Pending entries first: one settled between the two reads is then in the index.
        let pending = self.overlay.range(&range);
        let first_pending = pending.first().map_or(u64::MAX, |(index, _)| *index);
        let (_, locs) = lock(&self.log).range(start, end.min(first_pending));
        let mut entries = Vec::with_capacity(locs.len() + pending.len());
        index::read_each(&locs, |bytes| {
            entries.push(codec::decode(bytes)?);
            Ok::<_, LogDbError>(())
        })?;
        for (_, bytes) in &pending {
            entries.push(codec::decode(bytes)?);
        }
        Ok(entries)
    }

    /// The log id of the last entry present, pending or durable, if any.
    fn read_last_log_id(&self) -> Result<Option<LogId<u64>>, LogDbError> {
        if let Some(bytes) = self.overlay.last() {
            let entry: Entry<C> = codec::decode(&bytes)?;
            return Ok(Some(entry.log_id));
        }
        let last = lock(&self.log).last().map(|(_, loc)| loc.clone());
        match last {
            Some(loc) => {
                let mut last = None;
                index::read_each(std::slice::from_ref(&loc), |bytes| {
                    let entry: Entry<C> = codec::decode(bytes)?;
                    last = Some(entry.log_id);
                    Ok::<_, LogDbError>(())
                })?;
                Ok(last)
            }
            None => Ok(None),
        }
    }

    /// The last log id, purged or not.
    pub(super) fn last_log_id(&self) -> Result<Option<LogId<u64>>, LogDbError> {
        let purged: Option<LogId<u64>> = self.read_meta(MetaKey::Purged)?;
        Ok(self.read_last_log_id()?.or(purged))
    }

    /// The last log id an earlier, removed replica of this group on this node had, if the
    /// group was ever removed here (see [`super::LogDb::remove_group`]): a candidate whose
    /// log is older must not get this replica's vote, whatever its log holds now.
    pub fn vote_floor(&self) -> Result<Option<LogId<u64>>, LogDbError> {
        self.read_meta(MetaKey::VoteFloor)
    }

    /// The saved vote, if any.
    pub(super) fn read_vote_meta(&self) -> Result<Option<Vote<u64>>, LogDbError> {
        self.read_meta(MetaKey::Vote)
    }

    /// Whether a replica of this group ever ran on this node: it saved a vote, or was
    /// removed (see [`super::LogDb::remove_group`]).
    pub fn ever_hosted(&self) -> Result<bool, LogDbError> {
        Ok(self.read_vote_meta()?.is_some() || self.vote_floor()?.is_some())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: MetaKey,
    ) -> Result<Option<T>, LogDbError> {
        match lock(&self.log).meta(key) {
            Some(value) => Ok(Some(codec::decode(value)?)),
            None => Ok(None),
        }
    }

    async fn put_meta<T: serde::Serialize>(
        &self,
        key: MetaKey,
        value: Option<&T>,
    ) -> Result<(), LogDbError> {
        let value = value.map(codec::encode).transpose()?;
        let op = Op::PutMeta {
            group: self.group,
            key,
            value,
        };
        self.writer.submit(op).await
    }
}

/// `range` as `start..end`; `None` if it is empty.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start < end).then_some((start, end))
}

fn storage_error(subject: ErrorSubject<u64>, verb: ErrorVerb, e: LogDbError) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

impl<C: KvdbRaftConfig> RaftLogReader<C> for GroupLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<u64>> {
        self.read_entries(range)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<C: KvdbRaftConfig> RaftLogStorage<C> for GroupLogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<u64>> {
        let read = || -> Result<_, LogDbError> {
            let last_purged: Option<LogId<u64>> = self.read_meta(MetaKey::Purged)?;
            let last = self.read_last_log_id()?.or(last_purged);
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        };
        read().map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        // Before the write: a replica granting its vote away must stop serving lease reads
        // before the reply that could elect someone else leaves.
        if let Some(lease) = &self.lease {
            lease.vote_saved(*vote);
        }
        self.put_meta(MetaKey::Vote, Some(vote))
            .await
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    /// The saved vote, never as committed. openraft reads it only at start-up, and a committed
    /// vote for itself would make the replica resume that leadership at once, without an
    /// election. A leader hands entries to its followers before they are durable on it
    /// (third_party/README.md), so after a crash or a failed flush its log can lack entries of
    /// its term that followers hold: leading that term again, it would give other entries
    /// those log ids, and followers that match entries by log id would keep the old ones.
    /// Uncommitted, the vote still keeps the replica from voting twice in its term; it
    /// becomes leader again only by winning an election in a higher term.
    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        let vote = self
            .read_vote_meta()
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))?;
        Ok(vote.map(|vote| Vote {
            committed: false,
            ..vote
        }))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // Not waited for: it is optional state, and waiting would stall the group behind other
        // groups' fsyncs. The writer keeps it in order with this group's other writes.
        let queue = || -> Result<(), LogDbError> {
            let op = Op::PutMeta {
                group: self.group,
                key: MetaKey::Committed,
                value: committed.as_ref().map(codec::encode).transpose()?,
            };
            let group = self.group;
            self.writer.enqueue(
                op,
                Box::new(move |result| {
                    if let Err(e) = result {
                        tracing::warn!(group, error = %e, "saving the committed log id failed");
                    }
                }),
            )
        };
        queue().map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        *lock(&self.committed) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        if let Some(saved) = *lock(&self.committed) {
            return Ok(saved);
        }
        self.read_meta(MetaKey::Committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Result<Vec<(u64, EncodedEntry)>, CodecError> = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, codec::encode(&entry)?.into())))
            .collect();
        let entries = match encoded {
            Ok(entries) => {
                let bytes: usize = entries.iter().map(|(_, e)| e.len()).sum();
                self.appended.fetch_add(bytes as u64, Ordering::Relaxed);
                entries
            }
            Err(e) => {
                let e = LogDbError::from(e);
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                return Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, e));
            }
        };
        let Some(tag) = self.overlay.insert(&entries) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let overlay = self.overlay.clone();
        let op = Op::Append {
            group: self.group,
            entries,
        };
        // Readable from here on; flushed once the writer has made it durable.
        let queued = self.writer.enqueue(
            op,
            Box::new(move |result| {
                overlay.settle(tag);
                let result = result.map_err(|e| std::io::Error::other(e.to_string()));
                callback.log_io_completed(result);
            }),
        );
        queued.map_err(|e| {
            self.overlay.settle(tag);
            storage_error(ErrorSubject::Logs, ErrorVerb::Write, e)
        })
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.overlay.remove_since(log_id.index);
        let op = Op::Truncate {
            group: self.group,
            since: log_id.index,
        };
        self.writer
            .submit(op)
            .await
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.overlay.remove_upto(log_id.index);
        let submit = async {
            let op = Op::Purge {
                group: self.group,
                upto: log_id.index,
                purged: codec::encode(&log_id)?,
            };
            self.writer.submit(op).await
        };
        submit
            .await
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }
}
