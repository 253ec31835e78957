//! Snapshots of a [`KvMachine`]: the whole state (data, sessions, metadata) as one image.

use kvdb_core::member_rows::all_member_rows;
use kvdb_core::raft::codec;
use kvdb_core::storage::{AuxRows, StorageError, StorageOp, StoredValue};
use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use super::{CollectionKeys, KvMachine, MachineError, Meta, MetaBeforeSplits};
use crate::raft_types::{RaftId, ShardNode};
use crate::sessions::Sessions;

/// A full copy of the machine's state: what a snapshot carries.
#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    meta: Meta,
    sessions: Sessions,
    entries: Vec<ImageEntry>,
    /// The member rows of collections kept in them (`kvdb_core::member_rows`).
    members: AuxRows,
}

/// [`SnapshotImage`] as made before collections had member rows; still read.
#[derive(Deserialize)]
struct ImageBeforeMembers {
    meta: Meta,
    sessions: Sessions,
    entries: Vec<ImageEntry>,
}

/// [`SnapshotImage`] as made before shards could split; still read.
#[derive(Deserialize)]
struct ImageBeforeSplits {
    meta: MetaBeforeSplits,
    sessions: Sessions,
    entries: Vec<ImageEntry>,
}

impl SnapshotImage {
    fn decode(bytes: &[u8]) -> Result<Self, codec::CodecError> {
        codec::decode(bytes)
            .or_else(|e| {
                let old: ImageBeforeMembers = codec::decode(bytes).map_err(|_| e)?;
                Ok(SnapshotImage {
                    meta: old.meta,
                    sessions: old.sessions,
                    entries: old.entries,
                    members: AuxRows::new(),
                })
            })
            .or_else(|e: codec::CodecError| {
                let old: ImageBeforeSplits = codec::decode(bytes).map_err(|_| e)?;
                Ok(SnapshotImage {
                    meta: Meta {
                        last_applied: old.meta.last_applied,
                        membership: old.meta.membership,
                        owned: None,
                    },
                    sessions: old.sessions,
                    entries: old.entries,
                    members: AuxRows::new(),
                })
            })
    }
}

/// One key in a [`SnapshotImage`].
#[derive(Serialize, Deserialize)]
struct ImageEntry {
    key: Vec<u8>,
    /// The value's bytes and version in [`StoredValue::tagged`] form, so that images made
    /// before value kinds existed read as strings.
    value: Vec<u8>,
    version: u64,
    expire_at_ms: Option<u64>,
}

impl KvMachine {
    /// Encodes the whole state (data and metadata) as a snapshot image.
    pub fn export(&self) -> Result<Vec<u8>, MachineError> {
        let entries = self
            .storage
            .export()?
            .into_iter()
            .map(|(key, v)| {
                let (version, value) = v.tagged();
                ImageEntry {
                    key,
                    value: value.into_owned(),
                    version,
                    expire_at_ms: v.expire_at_ms,
                }
            })
            .collect();
        let members = self
            .storage
            .aux_range(all_member_rows().bounds(), usize::MAX)?;
        let image = SnapshotImage {
            meta: self.meta.clone(),
            sessions: self.sessions.clone(),
            entries,
            members,
        };
        Ok(codec::encode(&image)?)
    }

    /// Replaces the whole state with a snapshot image made by
    /// [`export`](Self::export), applied up to `last_applied` with `membership`.
    pub fn import(
        &mut self,
        last_applied: Option<LogId<RaftId>>,
        membership: StoredMembership<RaftId, ShardNode>,
        bytes: &[u8],
    ) -> Result<(), MachineError> {
        let mut image = SnapshotImage::decode(bytes)?;
        image.meta.last_applied = last_applied;
        image.meta.membership = membership;
        let entries = image
            .entries
            .into_iter()
            .map(|e| {
                let value = StoredValue::from_tagged(e.version, &e.value, e.expire_at_ms)
                    .ok_or_else(|| StorageError::Corrupt {
                        op: StorageOp::Install,
                        key: e.key.clone(),
                        reason: "snapshot entry of a value kind this build does not know",
                    })?;
                Ok((e.key, value))
            })
            .collect::<Result<_, StorageError>>()?;
        let mut sessions = image.sessions;
        // Installed whole below: nothing is left to journal.
        sessions.take_changes()?;
        // Ranges only narrow: set before the slots handed away vanish from the storage.
        self.fence.set(image.meta.owned());
        let mut aux = sessions.rows()?;
        aux.extend(image.members);
        self.storage
            .install(entries, Some(codec::encode(&image.meta)?), aux)?;
        self.meta = image.meta;
        self.sessions = sessions;
        let (collections, left) = CollectionKeys::load(self.storage.as_ref())?;
        self.collections = collections;
        self.leftovers.reset(left);
        Ok(())
    }
}
