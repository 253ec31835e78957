//! A test type configuration and an in-memory key-value [`Machine`], for exercising the Raft
//! storage without the real coordinator or shard machines.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{BasicNode, Entry, EntryPayload, LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use super::codec;
use super::log_store::{GroupLogStore, LogDb, LogDbOptions};
use super::state_machine::{Applied, AppliedState, Machine, StateMachineStore};

/// A write to the test machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    Set { key: String, value: String },
}

/// The test machine's answer: the previous value of the key, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The Raft types of the storage tests.
    pub TestConfig:
        D = KvRequest,
        R = KvResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TestConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// An in-memory key-value machine. Not durable: after a restart it starts empty and is
/// rebuilt from the stored snapshot and the log.
#[derive(Debug, Default)]
pub struct MemKv {
    pub applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub data: BTreeMap<String, String>,
}

impl Machine<TestConfig> for MemKv {
    fn applied_state(&self) -> Result<AppliedState, io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    fn apply(&mut self, entries: Vec<Entry<TestConfig>>) -> Result<Applied<KvResponse>, io::Error> {
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            self.applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => KvResponse::default(),
                EntryPayload::Normal(KvRequest::Set { key, value }) => KvResponse {
                    previous: self.data.insert(key, value),
                },
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    KvResponse::default()
                }
            };
            responses.push(response);
        }
        Ok(responses.into())
    }

    fn export(&self) -> Result<Vec<u8>, io::Error> {
        codec::encode(&self.data).map_err(io::Error::other)
    }

    fn import(
        &mut self,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        data: &[u8],
    ) -> Result<(), io::Error> {
        self.data = codec::decode(data).map_err(io::Error::other)?;
        self.applied = last_applied;
        self.membership = membership;
        Ok(())
    }
}

/// A [`MemKv`] whose state survives a restart only as far as its last [`Machine::sync`], which
/// writes it to a file: like a shard's storage, what was applied after the last sync is lost
/// in a crash and replayed from the log.
#[derive(Debug)]
pub struct DurableKv {
    pub kv: MemKv,
    path: PathBuf,
}

impl DurableKv {
    /// The machine as of the last sync to `path`, or empty.
    pub fn open(path: &Path) -> Self {
        let mut kv = MemKv::default();
        if let Ok(bytes) = std::fs::read(path) {
            (kv.applied, kv.membership, kv.data) = codec::decode(&bytes).expect("machine file");
        }
        Self {
            kv,
            path: path.to_owned(),
        }
    }
}

impl Machine<TestConfig> for DurableKv {
    const DURABLE: bool = true;

    fn sync(&self) -> Result<(), io::Error> {
        let state = (self.kv.applied, &self.kv.membership, &self.kv.data);
        let bytes = codec::encode(&state).map_err(io::Error::other)?;
        let partial = self.path.with_extension("partial");
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, &self.path)
    }

    fn applied_state(&self) -> Result<AppliedState, io::Error> {
        self.kv.applied_state()
    }

    fn apply(&mut self, entries: Vec<Entry<TestConfig>>) -> Result<Applied<KvResponse>, io::Error> {
        self.kv.apply(entries)
    }

    fn export(&self) -> Result<Vec<u8>, io::Error> {
        self.kv.export()
    }

    fn import(
        &mut self,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        data: &[u8],
    ) -> Result<(), io::Error> {
        self.kv.import(last_applied, membership, data)
    }
}

/// A log database in a fresh temporary directory.
pub struct TempLogDb {
    pub dir: TempDir,
    pub log_db: LogDb,
}

impl TempLogDb {
    /// The database file inside `dir`.
    pub const FILE: &str = "raft.redb";

    pub fn new(options: LogDbOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_db = LogDb::open(dir.path().join(Self::FILE), options).expect("open log db");
        Self { dir, log_db }
    }

    /// Group `group`'s log store and a [`MemKv`] state machine sharing the database.
    pub fn group(
        &self,
        group: u64,
    ) -> (
        GroupLogStore<TestConfig>,
        StateMachineStore<TestConfig, MemKv>,
    ) {
        self.group_with(group, MemKv::default())
    }

    /// Group `group`'s log store and a [`DurableKv`] state machine kept beside the database.
    pub fn durable_group(
        &self,
        group: u64,
    ) -> (
        GroupLogStore<TestConfig>,
        StateMachineStore<TestConfig, DurableKv>,
    ) {
        self.group_with(group, DurableKv::open(&self.machine_file(group)))
    }

    fn group_with<M: Machine<TestConfig>>(
        &self,
        group: u64,
        machine: M,
    ) -> (GroupLogStore<TestConfig>, StateMachineStore<TestConfig, M>) {
        let log = self.log_db.group(group);
        let db = Arc::clone(self.log_db.database());
        let sm = StateMachineStore::open(db, group, machine).expect("open state machine");
        (log, sm)
    }

    /// Where group `group`'s [`DurableKv`] keeps its state.
    pub fn machine_file(&self, group: u64) -> PathBuf {
        self.dir.path().join(format!("machine-{group}"))
    }
}
