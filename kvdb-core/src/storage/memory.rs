//! [`MemoryStorage`]: a shard's state in process memory, for tests and the
//! embedded dev cluster. Nothing survives the process, so [`Storage::sync`]
//! is a no-op.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    AuxBounds, AuxRows, Storage, StorageError, StorageOp, StoredValue, WriteBatch, WriteOp,
};
use crate::Version;

/// An in-memory [`Storage`]: an ordered map plus an expiry index, behind one
/// `RwLock` so every batch is atomic with respect to readers.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<Vec<u8>, StoredValue>,
    /// `(expire_at_ms, key)` for every entry with an expiry.
    expiry: BTreeSet<(u64, Vec<u8>)>,
    meta: Option<Vec<u8>>,
    aux: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl State {
    fn put(&mut self, key: Vec<u8>, value: StoredValue) {
        self.unindex(&key);
        let value = value.normalized();
        if let Some(at) = value.expire_at_ms {
            self.expiry.insert((at, key.clone()));
        }
        self.entries.insert(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.unindex(key);
        self.entries.remove(key);
    }

    /// Drops the expiry index entry of the value `key` holds now, if any.
    fn unindex(&mut self, key: &[u8]) {
        if let Some(at) = self.entries.get(key).and_then(|old| old.expire_at_ms) {
            self.expiry.remove(&(at, key.to_vec()));
        }
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self, op: StorageOp) -> Result<RwLockReadGuard<'_, State>, StorageError> {
        self.state.read().map_err(|_| StorageError::Poisoned { op })
    }

    fn write(&self, op: StorageOp) -> Result<RwLockWriteGuard<'_, State>, StorageError> {
        self.state
            .write()
            .map_err(|_| StorageError::Poisoned { op })
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        Ok(self.read(StorageOp::Get)?.entries.get(key).cloned())
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut state = self.write(StorageOp::Apply)?;
        for op in batch.ops {
            match op {
                WriteOp::Put { key, value } => state.put(key, value),
                WriteOp::Delete { key } => state.delete(&key),
            }
        }
        for (key, row) in batch.aux {
            match row {
                Some(row) => state.aux.insert(key, row),
                None => state.aux.remove(&key),
            };
        }
        if let Some(meta) = batch.meta {
            state.meta = Some(meta);
        }
        Ok(())
    }

    fn aux(&self) -> Result<AuxRows, StorageError> {
        let state = self.read(StorageOp::Aux)?;
        Ok(state
            .aux
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn get_with_aux(
        &self,
        key: Option<&[u8]>,
        range: AuxBounds<'_>,
        limit: usize,
    ) -> Result<(Option<StoredValue>, AuxRows), StorageError> {
        let state = self.read(StorageOp::Aux)?;
        let value = key.and_then(|key| state.entries.get(key).cloned());
        let rows = state
            .aux
            .range::<[u8], _>(range)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((value, rows))
    }

    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read(StorageOp::Meta)?.meta.clone())
    }

    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        let state = self.read(StorageOp::Export)?;
        Ok(state
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        use std::ops::Bound;
        let state = self.read(StorageOp::Scan)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .entries
            .range::<[u8], _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: AuxRows,
    ) -> Result<(), StorageError> {
        // Build the replacement first so readers never see a partial install.
        let mut fresh = State {
            meta,
            aux: aux.into_iter().collect(),
            ..State::default()
        };
        for (key, value) in entries {
            fresh.put(key, value);
        }
        *self.write(StorageOp::Install)? = fresh;
        Ok(())
    }

    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        let state = self.read(StorageOp::Expired)?;
        let due = state
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit);
        due.map(|(_, key)| match state.entries.get(key) {
            Some(value) => Ok((key.clone(), value.version)),
            None => Err(StorageError::Corrupt {
                op: StorageOp::Expired,
                key: key.clone(),
                reason: "expiry index names a missing key",
            }),
        })
        .collect()
    }

    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.read(StorageOp::Len)?.entries.len() as u64)
    }

    fn clear(&self) -> Result<(), StorageError> {
        *self.write(StorageOp::Clear)? = State::default();
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
