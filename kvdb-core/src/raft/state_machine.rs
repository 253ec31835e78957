//! openraft's `RaftStateMachine` over an application [`Machine`], with snapshots kept in redb
//! for machines that live in memory and exported on demand for durable ones.
//!
//! The coordinator's metadata and each shard's key-value data are different machines with the
//! same Raft obligations: apply committed entries in order, report the last applied log id and
//! membership, and turn the whole state into a snapshot and back. [`Machine`] is that contract
//! in synchronous form; [`StateMachineStore`] does the openraft side once for all of them:
//!
//! - the machine sits behind a tokio [`RwLock`], so a node serves reads from the applied state
//!   ([`StateMachineStore::machine`]) while apply takes the write lock;
//! - machine calls that may block for long run on tokio's blocking pool, never on an async
//!   worker; a machine may hand its write to the storage as a commit to wait for
//!   ([`Applied::commit`]), which the store awaits while it still holds the write lock, so no
//!   reader or snapshot sees an applied state whose data is not yet committed;
//! - a machine kept in memory (the coordinator's) has its current snapshot (meta and bytes)
//!   stored durably per group, so `get_current_snapshot` answers after a restart, and at open
//!   a stored snapshot newer than the machine's applied state is imported (an install that
//!   crashed half way is finished);
//! - a [durable](Machine::DURABLE) machine (a shard's key-value data) is never copied into a
//!   stored snapshot: that copy doubled a node's disk use. See "Snapshots of durable machines".
//!
//! # Snapshots of durable machines
//!
//! openraft needs two things of a snapshot: when one is built, its meta (the log id it covers,
//! which lets the log be purged up to it), and later, when a follower lags behind the purged
//! log, bytes covering at least that log id. A durable machine provides both from its own
//! state:
//!
//! - **build** makes everything applied durable ([`Machine::sync`]) under the read lock, so
//!   no apply runs meanwhile, and returns the meta of the applied state with no bytes (openraft
//!   keeps only the meta of a built snapshot). The log is purged only up to a built or
//!   installed snapshot, so after a crash the machine reopens at or past every purged entry
//!   and replays the rest from the log;
//! - **get** exports the current applied state under the read lock. It covers the last built
//!   or installed snapshot's log id or more, since applied state only moves forward, and
//!   openraft accepts a snapshot newer than the one it asked for (its replication records what
//!   the follower acknowledged). Before anything was built or installed since the store
//!   opened it answers `None`, which makes openraft build one at start-up if the log was
//!   purged. An export at the same log id keeps the snapshot id, so a follower resuming a
//!   chunked transfer gets the same bytes;
//! - **install** imports the bytes and syncs before it returns, so the follower's log is
//!   purged behind a durable state.
//!
//! Out of scope: streaming snapshots larger than memory (snapshots are `Cursor<Vec<u8>>`), and
//! deciding when to snapshot (openraft's `SnapshotPolicy`).

mod snapshot_table;

use std::io::{self, Cursor};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use redb::Database;
use tokio::sync::RwLock;

use super::codec::CodecError;
use super::lock;
use super::log_store::KvdbRaftConfig;
use crate::storage::Commit;
use snapshot_table::SnapshotTable;

/// The last applied log id and the membership as of it.
pub type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, BasicNode>);

/// What [`Machine::apply`] produced: one response per entry and, for a machine that does not
/// write inline, the commit that makes the new state visible.
pub struct Applied<R> {
    /// One response per applied entry, in order.
    pub responses: Vec<R>,
    /// The state's commit, awaited before the responses are released; `None` when the state
    /// is already written.
    pub commit: Option<Commit>,
}

impl<R> From<Vec<R>> for Applied<R> {
    fn from(responses: Vec<R>) -> Self {
        Self {
            responses,
            commit: None,
        }
    }
}

/// The application part of a Raft state machine.
///
/// Deterministic: `apply` must not read clocks or randomness, so every replica that applies
/// the same entries reaches the same state. Errors are fatal to the Raft group (openraft stops
/// it), so return them only when the state can no longer be trusted or persisted.
pub trait Machine<C: KvdbRaftConfig>: Send + Sync + 'static {
    /// Whether the machine's state outlives the process: it stores its applied log id with its
    /// data, and [`Machine::sync`] makes everything applied durable. The store then keeps no
    /// snapshot bytes of its own (see the module doc).
    const DURABLE: bool = false;

    /// Blocks until everything applied so far is durable. Called before openraft may purge
    /// the log behind a snapshot of a [durable](Machine::DURABLE) machine.
    fn sync(&self) -> Result<(), io::Error> {
        Ok(())
    }

    /// The last applied log id and membership, as of the machine's durable (or imported) state.
    fn applied_state(&self) -> Result<AppliedState, io::Error>;

    /// Applies committed entries in log order, returning one response per entry. Blank and
    /// membership entries are included: the machine records the log id (and membership) and
    /// returns its "empty" response. A durable machine persists its state together with the
    /// new applied state, atomically, either before it returns or in the returned
    /// [`Applied::commit`].
    fn apply(&mut self, entries: Vec<Entry<C>>) -> Result<Applied<C::R>, io::Error>;

    /// Whether applying `entries` next may block the thread for long (an fsync, a large
    /// transaction). Such applies run on the blocking pool; the rest run inline on the Raft
    /// task, which saves a thread hand-off per apply (about 10% of smart-client puts).
    fn apply_blocks(&self, entries: &[Entry<C>]) -> bool {
        let _ = entries;
        true
    }

    /// The full state as bytes, for a snapshot. Called under a read lock, so it sees the state
    /// as of [`Machine::applied_state`].
    fn export(&self) -> Result<Vec<u8>, io::Error>;

    /// Replaces the whole state with a snapshot's: `data` from [`Machine::export`], applied up
    /// to `last_applied` with `membership`.
    fn import(
        &mut self,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        data: &[u8],
    ) -> Result<(), io::Error>;
}

/// What can go wrong opening a [`StateMachineStore`] or persisting its snapshots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateMachineError {
    /// A redb operation on the snapshot tables failed.
    #[error("snapshot table: {0}")]
    Redb(#[from] redb::Error),
    /// A snapshot meta could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The application machine failed.
    #[error("state machine: {0}")]
    Machine(#[from] io::Error),
    /// A snapshot meta row exists without its data row: the database is damaged.
    #[error("raft group {group}: snapshot meta without data")]
    MissingSnapshotData {
        /// The Raft group whose snapshot is damaged.
        group: u64,
    },
    /// The machine returned a different number of responses than it was given entries.
    #[error("state machine returned {responses} responses for {entries} entries")]
    ResponseCount {
        /// Entries handed to the machine.
        entries: usize,
        /// Responses it returned.
        responses: usize,
    },
    /// A blocking task running the machine panicked or was cancelled.
    #[error("state machine task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

macro_rules! redb_error_from {
    ($($source:ty),*) => {$(
        impl From<$source> for StateMachineError {
            fn from(e: $source) -> Self {
                Self::Redb(e.into())
            }
        }
    )*};
}
redb_error_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A Raft group's state machine: an application [`Machine`] plus persisted snapshots.
pub struct StateMachineStore<C, M> {
    machine: Arc<RwLock<M>>,
    snapshots: SnapshotTable,
    /// A durable machine's last snapshot built, installed or exported since the store opened.
    current: Arc<Mutex<Option<SnapshotMeta<u64, BasicNode>>>>,
    counts: Arc<SnapshotCounts>,
    _config: PhantomData<fn() -> C>,
}

/// Snapshots a group built and installed since it opened, for its node's metrics: a replica
/// that keeps installing snapshots is one its leader cannot catch up by log.
#[derive(Debug, Default)]
pub struct SnapshotCounts {
    built: AtomicU64,
    installed: AtomicU64,
}

impl SnapshotCounts {
    /// Snapshots built from this group's state.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Snapshots received from a leader and installed.
    pub fn installed(&self) -> u64 {
        self.installed.load(Ordering::Relaxed)
    }
}

impl<C: KvdbRaftConfig, M: Machine<C>> StateMachineStore<C, M> {
    /// Opens group `group`'s state machine over `machine`, keeping snapshots in `db` (usually
    /// the [`super::log_store::LogDb`]'s database). If the stored snapshot is newer than the
    /// machine's applied state, the machine imports it first. A durable machine's stored
    /// snapshot (written by an earlier release) is then deleted: its state holds it. Blocking:
    /// call it at startup or from a blocking task.
    pub fn open(db: Arc<Database>, group: u64, mut machine: M) -> Result<Self, StateMachineError> {
        let snapshots = SnapshotTable::open(db, group)?;
        if let Some(stored) = snapshots.load()? {
            let (applied, _) = machine.applied_state()?;
            if stored.meta.last_log_id > applied {
                tracing::info!(group, snapshot = %stored.meta, "importing stored snapshot");
                let meta = stored.meta;
                machine.import(meta.last_log_id, meta.last_membership, &stored.data)?;
                if M::DURABLE {
                    machine.sync()?;
                }
            }
            if M::DURABLE {
                snapshots.remove()?;
            }
        }
        Ok(Self {
            machine: Arc::new(RwLock::new(machine)),
            snapshots,
            current: Arc::default(),
            counts: Arc::default(),
            _config: PhantomData,
        })
    }

    /// The group's snapshot counts, shared with the store.
    pub fn snapshot_counts(&self) -> Arc<SnapshotCounts> {
        self.counts.clone()
    }

    /// The machine, for serving reads from the applied state. Hold the read lock briefly:
    /// apply waits for it.
    pub fn machine(&self) -> Arc<RwLock<M>> {
        self.machine.clone()
    }

    /// The Raft group this state machine belongs to.
    pub fn group_id(&self) -> u64 {
        self.snapshots.group()
    }

    /// Whether the group has a snapshot stored in the database.
    #[cfg(test)]
    pub(crate) fn has_stored_snapshot(&self) -> bool {
        self.snapshots.load().expect("snapshot table").is_some()
    }

    /// Deletes group `group`'s persisted snapshot, once the group is gone from this node.
    pub fn remove_snapshot(db: Arc<Database>, group: u64) -> Result<(), StateMachineError> {
        SnapshotTable::open(db, group)?.remove()
    }
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, StateMachineError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StateMachineError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<u64, BasicNode>>,
    e: &StateMachineError,
) -> StorageError<u64> {
    StorageIOError::write_snapshot(meta.map(SnapshotMeta::signature), AnyError::new(e)).into()
}

impl<C: KvdbRaftConfig, M: Machine<C>> RaftStateMachine<C> for StateMachineStore<C, M> {
    type SnapshotBuilder = SnapshotBuilder<C, M>;

    async fn applied_state(&mut self) -> Result<AppliedState, StorageError<u64>> {
        self.machine
            .read()
            .await
            .applied_state()
            .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            return Ok(Vec::new());
        };
        let mut machine = self.machine.clone().write_owned().await;
        let blocks = machine.apply_blocks(&entries);
        let apply = move || {
            let count = entries.len();
            let applied = machine.apply(entries)?;
            if applied.responses.len() != count {
                return Err(StateMachineError::ResponseCount {
                    entries: count,
                    responses: applied.responses.len(),
                });
            }
            Ok((machine, applied))
        };
        let result = if blocks {
            blocking(apply).await
        } else {
            apply()
        };
        let (machine, applied) =
            result.map_err(|e| StorageIOError::apply(last, AnyError::new(&e)))?;
        if let Some(commit) = applied.commit {
            commit
                .await
                .map_err(|e| StorageIOError::apply(last, AnyError::new(&e)))?;
        }
        // Readers see the new applied state only now that its data is committed.
        drop(machine);
        Ok(applied.responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            machine: self.machine.clone(),
            snapshots: self.snapshots.clone(),
            current: self.current.clone(),
            counts: self.counts.clone(),
            _config: PhantomData,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let snapshots = self.snapshots.clone();
        let owned_meta = meta.clone();
        let mut machine = self.machine.clone().write_owned().await;
        let result = blocking(move || {
            if !M::DURABLE {
                // Stored first: if the import is cut short, the next open imports it again.
                snapshots.save(&owned_meta, &data)?;
            }
            let SnapshotMeta {
                last_log_id,
                last_membership,
                ..
            } = owned_meta;
            machine.import(last_log_id, last_membership, &data)?;
            if M::DURABLE {
                // Durable before openraft purges the log behind it.
                machine.sync()?;
            }
            Ok(())
        })
        .await;
        result.map_err(|e| snapshot_error(Some(meta), &e))?;
        if M::DURABLE {
            *lock(&self.current) = Some(meta.clone());
        }
        self.counts.installed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StorageError<u64>> {
        if M::DURABLE {
            return self.export_current().await;
        }
        let snapshots = self.snapshots.clone();
        let stored = blocking(move || snapshots.load())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        Ok(stored.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

/// Builds a snapshot of a [`StateMachineStore`]'s machine and stores it as the current one.
pub struct SnapshotBuilder<C, M> {
    machine: Arc<RwLock<M>>,
    snapshots: SnapshotTable,
    current: Arc<Mutex<Option<SnapshotMeta<u64, BasicNode>>>>,
    counts: Arc<SnapshotCounts>,
    _config: PhantomData<fn() -> C>,
}

impl<C: KvdbRaftConfig, M: Machine<C>> RaftSnapshotBuilder<C> for SnapshotBuilder<C, M> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<u64>> {
        if M::DURABLE {
            return self.build_durable().await;
        }
        let machine = self.machine.clone().read_owned().await;
        let snapshots = self.snapshots.clone();
        let built = blocking(move || {
            let (last_log_id, last_membership) = machine.applied_state()?;
            let data = machine.export()?;
            drop(machine);
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: snapshot_id(snapshots.group(), last_log_id),
            };
            if !snapshots.save(&meta, &data)? {
                tracing::debug!(snapshot = %meta, "a newer snapshot is already stored");
            }
            Ok((meta, data))
        })
        .await;
        let (meta, data) = built.map_err(|e| snapshot_error(None, &e))?;
        self.counts.built.fetch_add(1, Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<C: KvdbRaftConfig, M: Machine<C>> StateMachineStore<C, M> {
    /// A durable machine's current snapshot: its applied state, exported now.
    async fn export_current(&mut self) -> Result<Option<Snapshot<C>>, StorageError<u64>> {
        if lock(&self.current).is_none() {
            return Ok(None);
        }
        let machine = self.machine.clone().read_owned().await;
        let current = self.current.clone();
        let group = self.group_id();
        let exported = blocking(move || {
            let (last_log_id, last_membership) = machine.applied_state()?;
            let data = machine.export()?;
            drop(machine);
            let mut current = lock(&current);
            let meta = match current.as_ref() {
                Some(meta) if meta.last_log_id == last_log_id => meta.clone(),
                _ => SnapshotMeta {
                    last_log_id,
                    last_membership,
                    snapshot_id: snapshot_id(group, last_log_id),
                },
            };
            *current = Some(meta.clone());
            Ok((meta, data))
        })
        .await;
        let (meta, data) =
            exported.map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

impl<C: KvdbRaftConfig, M: Machine<C>> SnapshotBuilder<C, M> {
    /// A durable machine's snapshot: its applied state made durable, with no bytes (openraft
    /// keeps only the meta of a built snapshot; followers get bytes from `get_current_snapshot`).
    async fn build_durable(&mut self) -> Result<Snapshot<C>, StorageError<u64>> {
        let machine = self.machine.clone().read_owned().await;
        let group = self.snapshots.group();
        let current = self.current.clone();
        let built = blocking(move || {
            let (last_log_id, last_membership) = machine.applied_state()?;
            machine.sync()?;
            drop(machine);
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: snapshot_id(group, last_log_id),
            };
            *lock(&current) = Some(meta.clone());
            Ok(meta)
        })
        .await;
        let meta = built.map_err(|e| snapshot_error(None, &e))?;
        self.counts.built.fetch_add(1, Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

/// A snapshot id unique per build: two builds at the same log id may differ in bytes.
fn snapshot_id(group: u64, last: Option<LogId<u64>>) -> String {
    let (term, index) = last.map_or((0, 0), |id| (id.leader_id.term, id.index));
    format!("{group}-{term}-{index}-{:016x}", rand::random::<u64>())
}
