//! A minimal in-memory log and state machine, just enough for openraft to run
//! the transport tests. Not durable and not for production use: the real
//! storage lives in `raft::log_store` and `raft::state_machine`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use super::TestTypes;
use crate::raft::codec;

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// Log and vote, shared between the store and its readers.
#[derive(Debug, Clone, Default)]
pub(super) struct MemLog(Arc<Mutex<LogInner>>);

#[derive(Debug, Default)]
struct LogInner {
    vote: Option<Vote<u64>>,
    last_purged: Option<LogId<u64>>,
    entries: BTreeMap<u64, Entry<TestTypes>>,
}

impl RaftLogReader<TestTypes> for MemLog {
    async fn try_get_log_entries<R>(&mut self, range: R) -> Result<Vec<Entry<TestTypes>>>
    where
        R: RangeBounds<u64> + Clone + std::fmt::Debug + Send,
    {
        let log = self.0.lock().unwrap();
        Ok(log.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TestTypes> for MemLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TestTypes>> {
        let log = self.0.lock().unwrap();
        let last = log.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or(log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        Ok(self.0.lock().unwrap().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TestTypes>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TestTypes>> + Send,
    {
        let mut log = self.0.lock().unwrap();
        log.entries
            .extend(entries.into_iter().map(|e| (e.log_id.index, e)));
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.0.lock().unwrap().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        let mut log = self.0.lock().unwrap();
        log.entries = log.entries.split_off(&(log_id.index + 1));
        log.last_purged = Some(log_id);
        Ok(())
    }
}

/// Applied state: every normal entry's payload, in log order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft::BasicNode>,
    values: Vec<String>,
}

/// A state machine that records what it applied; tests read it via [`values`](Self::values).
#[derive(Debug, Clone, Default)]
pub(super) struct MemMachine(Arc<Mutex<MachineInner>>);

#[derive(Debug, Default)]
struct MachineInner {
    applied: Applied,
    snapshot: Option<(SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>)>,
}

impl MemMachine {
    /// The payloads applied so far, in log order.
    pub(super) fn values(&self) -> Vec<String> {
        self.0.lock().unwrap().applied.values.clone()
    }
}

impl RaftSnapshotBuilder<TestTypes> for MemMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestTypes>> {
        let mut inner = self.0.lock().unwrap();
        let data = codec::encode(&inner.applied).unwrap();
        let meta = SnapshotMeta {
            last_log_id: inner.applied.last_applied,
            last_membership: inner.applied.membership.clone(),
            snapshot_id: format!("{:?}", inner.applied.last_applied),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TestTypes> for MemMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(
        Option<LogId<u64>>,
        StoredMembership<u64, openraft::BasicNode>,
    )> {
        let inner = self.0.lock().unwrap();
        Ok((inner.applied.last_applied, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = Entry<TestTypes>> + Send,
    {
        let mut inner = self.0.lock().unwrap();
        let applied = &mut inner.applied;
        let mut replies = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(value) => applied.values.push(value),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(String::new());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let mut inner = self.0.lock().unwrap();
        inner.applied = codec::decode(&data).unwrap();
        inner.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TestTypes>>> {
        let inner = self.0.lock().unwrap();
        Ok(inner.snapshot.clone().map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
