//! One Raft group's handle on the shared log database: the openraft log traits.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};
use redb::{Database, ReadableDatabase};

use super::writer::{MetaKey, WriteOp, Writer};
use super::{KvdbRaftConfig, LOG_TABLE, LogDbError, META_TABLE, RowKey};
use crate::raft::codec::{self, CodecError};

/// One Raft group's log and vote, in a shared [`super::LogDb`]. Cloning is cheap; a clone is also
/// the group's log reader.
pub struct RedbLogStore<C> {
    group: u64,
    db: Arc<Database>,
    writer: Arc<Writer>,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for RedbLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group: self.group,
            db: self.db.clone(),
            writer: self.writer.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: KvdbRaftConfig> RedbLogStore<C> {
    pub(super) fn new(group: u64, db: Arc<Database>, writer: Arc<Writer>) -> Self {
        Self {
            group,
            db,
            writer,
            _config: PhantomData,
        }
    }

    /// The Raft group this store belongs to.
    pub fn group_id(&self) -> u64 {
        self.group
    }

    /// Entries with index in `range`, in index order.
    fn read_entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry<C>>, LogDbError> {
        let Some(bounds) = row_bounds(self.group, &range) else {
            return Ok(Vec::new());
        };
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOG_TABLE)?;
        let mut entries = Vec::new();
        for row in table.range::<RowKey>(bounds)? {
            let (_, value) = row?;
            entries.push(codec::decode(value.value())?);
        }
        Ok(entries)
    }

    /// The log id of the last entry present, if any.
    fn read_last_log_id(&self) -> Result<Option<LogId<u64>>, LogDbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOG_TABLE)?;
        let mut rows = table.range((self.group, 0)..=(self.group, u64::MAX))?;
        match rows.next_back() {
            Some(row) => {
                let entry: Entry<C> = codec::decode(row?.1.value())?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: MetaKey,
    ) -> Result<Option<T>, LogDbError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META_TABLE)?;
        match table.get((self.group, key as u8))? {
            Some(value) => Ok(Some(codec::decode(value.value())?)),
            None => Ok(None),
        }
    }

    async fn put_meta<T: serde::Serialize>(
        &self,
        key: MetaKey,
        value: Option<&T>,
    ) -> Result<(), LogDbError> {
        let value = value.map(codec::encode).transpose()?;
        let op = WriteOp::PutMeta {
            group: self.group,
            key,
            value,
        };
        self.writer.submit(op).await
    }
}

/// The redb key range of `group`'s entries with index in `range`; `None` if it is empty.
fn row_bounds(group: u64, range: &impl RangeBounds<u64>) -> Option<(Bound<RowKey>, Bound<RowKey>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) if e >= start => Bound::Included((group, e)),
        Bound::Excluded(&e) if e > start => Bound::Excluded((group, e)),
        Bound::Unbounded => Bound::Included((group, u64::MAX)),
        _ => return None,
    };
    Some((Bound::Included((group, start)), end))
}

fn storage_error(subject: ErrorSubject<u64>, verb: ErrorVerb, e: LogDbError) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

impl<C: KvdbRaftConfig> RaftLogReader<C> for RedbLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<u64>> {
        self.read_entries(range)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<C: KvdbRaftConfig> RaftLogStorage<C> for RedbLogStore<C> {
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
        self.put_meta(MetaKey::Vote, Some(vote))
            .await
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.read_meta(MetaKey::Vote)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.put_meta(MetaKey::Committed, committed.as_ref())
            .await
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
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
        let encoded: Result<Vec<_>, CodecError> = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, codec::encode(&entry)?)))
            .collect();
        let result = match encoded {
            Ok(entries) => {
                let op = WriteOp::Append {
                    group: self.group,
                    entries,
                };
                self.writer.submit(op).await
            }
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let op = WriteOp::Truncate {
            group: self.group,
            since: log_id.index,
        };
        self.writer
            .submit(op)
            .await
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let submit = async {
            let op = WriteOp::Purge {
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
