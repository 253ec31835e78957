//! Snapshots of a [`KvMachine`]: the whole state (data, sessions, metadata) as one image.

use kvdb_core::Version;
use kvdb_core::raft::codec;
use kvdb_core::storage::{StorageError, StorageOp, StoredValue};
use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use super::{KvMachine, MachineError, Meta, MetaBeforeSplits};
use crate::raft_types::{RaftId, ShardNode};
use crate::sessions::Sessions;

/// A full copy of the machine's state: what a snapshot carries.
#[derive(Serialize, Deserialize)]
struct SnapshotImage {
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
        codec::decode(bytes).or_else(|e| {
            let old: ImageBeforeSplits = codec::decode(bytes).map_err(|_| e)?;
            Ok(SnapshotImage {
                meta: Meta {
                    last_applied: old.meta.last_applied,
                    membership: old.meta.membership,
                    owned: None,
                },
                sessions: old.sessions,
                entries: old.entries,
            })
        })
    }
}

/// One key in a [`SnapshotImage`].
#[derive(Serialize, Deserialize)]
struct ImageEntry {
    key: Vec<u8>,
    value: Vec<u8>,
    version: u64,
    /// The value's [`StoredValue::expiry_word`], `None` for 0 (a string that never expires),
    /// so that images made before value kinds existed read the same.
    expiry_word: Option<u64>,
}

impl KvMachine {
    /// Encodes the whole state (data and metadata) as a snapshot image.
    pub fn export(&self) -> Result<Vec<u8>, MachineError> {
        let entries = self
            .storage
            .export()?
            .into_iter()
            .map(|(key, v)| ImageEntry {
                expiry_word: Some(v.expiry_word()).filter(|word| *word != 0),
                key,
                value: v.value,
                version: v.version.0,
            })
            .collect();
        let image = SnapshotImage {
            meta: self.meta.clone(),
            sessions: self.sessions.clone(),
            entries,
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
                let (kind, expire_at_ms) = StoredValue::split_expiry_word(
                    e.expiry_word.unwrap_or(0),
                )
                .ok_or_else(|| StorageError::Corrupt {
                    op: StorageOp::Install,
                    key: e.key.clone(),
                    reason: "snapshot entry of a value kind this build does not know",
                })?;
                let value = StoredValue {
                    value: e.value,
                    version: Version(e.version),
                    expire_at_ms,
                    kind,
                };
                Ok((e.key, value))
            })
            .collect::<Result<_, StorageError>>()?;
        let mut sessions = image.sessions;
        // Installed whole below: nothing is left to journal.
        sessions.take_changes()?;
        // Ranges only narrow: set before the slots handed away vanish from the storage.
        self.fence.set(image.meta.owned());
        self.storage
            .install(entries, Some(codec::encode(&image.meta)?), sessions.rows()?)?;
        self.meta = image.meta;
        self.sessions = sessions;
        Ok(())
    }
}
