//! The current snapshot of each group, kept in redb so it survives a restart.
//!
//! Two tables keyed by group: the encoded snapshot meta, and the raw snapshot bytes (stored
//! as they are, never re-encoded). Both rows are written in one durable transaction.

use std::sync::Arc;

use openraft::{BasicNode, SnapshotMeta};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::StateMachineError;
use crate::raft::codec;

const SNAPSHOT_META_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_snapshot_meta");
const SNAPSHOT_DATA_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_snapshot_data");

/// A group's persisted snapshot.
pub(super) struct StoredSnapshot {
    pub(super) meta: SnapshotMeta<u64, BasicNode>,
    pub(super) data: Vec<u8>,
}

/// One group's view of the snapshot tables.
#[derive(Clone)]
pub(super) struct SnapshotTable {
    db: Arc<Database>,
    group: u64,
}

impl SnapshotTable {
    /// Opens the tables, creating them on first use.
    pub(super) fn open(db: Arc<Database>, group: u64) -> Result<Self, StateMachineError> {
        let txn = db.begin_write()?;
        txn.open_table(SNAPSHOT_META_TABLE)?;
        txn.open_table(SNAPSHOT_DATA_TABLE)?;
        txn.commit()?;
        Ok(Self { db, group })
    }

    pub(super) fn group(&self) -> u64 {
        self.group
    }

    /// The group's current snapshot, if it has one.
    pub(super) fn load(&self) -> Result<Option<StoredSnapshot>, StateMachineError> {
        let txn = self.db.begin_read()?;
        let metas = txn.open_table(SNAPSHOT_META_TABLE)?;
        let Some(meta) = metas.get(self.group)? else {
            return Ok(None);
        };
        let meta = codec::decode(meta.value())?;
        let datas = txn.open_table(SNAPSHOT_DATA_TABLE)?;
        let data = datas
            .get(self.group)?
            .map(|data| data.value().to_vec())
            .ok_or(StateMachineError::MissingSnapshotData { group: self.group })?;
        Ok(Some(StoredSnapshot { meta, data }))
    }

    /// Makes `meta` and `data` the group's current snapshot, durably, unless the stored one
    /// covers more of the log (a snapshot built from an older state lost a race with an
    /// installed one). Returns whether it was stored.
    pub(super) fn save(
        &self,
        meta: &SnapshotMeta<u64, BasicNode>,
        data: &[u8],
    ) -> Result<bool, StateMachineError> {
        let encoded = codec::encode(meta)?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut metas = txn.open_table(SNAPSHOT_META_TABLE)?;
            if let Some(current) = metas.get(self.group)? {
                let current: SnapshotMeta<u64, BasicNode> = codec::decode(current.value())?;
                if current.last_log_id > meta.last_log_id {
                    return Ok(false);
                }
            }
            metas.insert(self.group, encoded.as_slice())?;
            let mut datas = txn.open_table(SNAPSHOT_DATA_TABLE)?;
            datas.insert(self.group, data)?;
        }
        txn.commit()?;
        Ok(true)
    }

    /// Deletes the group's snapshot.
    pub(super) fn remove(&self) -> Result<(), StateMachineError> {
        let txn = self.db.begin_write()?;
        {
            let mut metas = txn.open_table(SNAPSHOT_META_TABLE)?;
            metas.remove(self.group)?;
            let mut datas = txn.open_table(SNAPSHOT_DATA_TABLE)?;
            datas.remove(self.group)?;
        }
        txn.commit()?;
        Ok(())
    }
}
