//! Raft log and vote storage on redb, shared by every Raft group a process hosts.
//!
//! A node hosts many shard replicas, each its own openraft group, plus perhaps a coordinator
//! group. Giving each group its own database file would cost one fsync per group per write; so
//! all groups share one redb [`Database`] ([`LogDb`]) and each group gets a cheap handle
//! ([`RedbLogStore`]) that reads and writes rows keyed by `(group, index)`.
//!
//! Every write (appends, votes, committed ids, truncation, purges) goes through one writer
//! thread, which keeps each group's writes in submission order, as openraft requires. With
//! group commit on, the writer drains every request queued while the previous transaction was
//! being fsync'd into one transaction: one fsync makes many groups' entries durable. With it
//! off, each request is its own transaction, which is the baseline group commit is measured
//! against ([`LogDbStats`]). Committed-id saves never cost a transaction of their own: one that
//! finds nothing else to write waits for the next transaction (or closing the database), and
//! losing the latest one in a crash only means re-applying less at restart.
//!
//! `append` returns as soon as its entries are readable, not when they are durable: they wait
//! in the group's in-memory overlay, which readers merge over the database rows, and the
//! writer reports them flushed (openraft's `LogFlushed`) once the transaction holding them is
//! fsync'd, then drops them from the overlay. A crash before that loses only entries nobody
//! was told are durable. Truncations, purges and votes wait for their own commit, which comes
//! after every append queued before them.
//!
//! Note that openraft 0.9's core itself waits for each flush before its next step, so this
//! does not yet pipeline one group's appends; it does stop a group's committed-id saves from
//! waiting on other groups' fsyncs, and it is what newer openraft cores need.
//!
//! Reads run on the caller's thread in their own read transaction; they are short and mostly
//! served from redb's cache.
//!
//! Out of scope: snapshots and applied state (see [`super::state_machine`]); compacting the
//! database file after purges.

mod group_store;
mod overlay;
mod writer;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{BasicNode, Entry, RaftTypeConfig, Vote};
use redb::{Database, TableDefinition};

use super::codec::CodecError;
use writer::{WriteOp, Writer};

pub use group_store::RedbLogStore;
pub use writer::LogDbStats;

/// The openraft type configurations KvDB's Raft storage serves: `u64` node ids, [`BasicNode`]
/// addresses, openraft's own [`Entry`], and snapshots held in memory. Every
/// `declare_raft_types!` config with these four types implements it.
pub trait KvdbRaftConfig:
    RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<Self>, SnapshotData = Cursor<Vec<u8>>>
{
}

impl<C> KvdbRaftConfig for C where
    C: RaftTypeConfig<
            NodeId = u64,
            Node = BasicNode,
            Entry = Entry<C>,
            SnapshotData = Cursor<Vec<u8>>,
        >
{
}

/// A log row's key: `(group, log index)`.
type RowKey = (u64, u64);

/// Log entries of every group, keyed by `(group, log index)`, valued by the encoded entry.
const LOG_TABLE: TableDefinition<RowKey, &[u8]> = TableDefinition::new("raft_log");
/// Per-group vote, committed and last-purged log ids, keyed by `(group, MetaKey)`.
const META_TABLE: TableDefinition<(u64, u8), &[u8]> = TableDefinition::new("raft_log_meta");

/// Whether writes of concurrent groups share transactions, on by default.
pub const DEFAULT_GROUP_COMMIT: bool = true;
/// The most write requests one group-commit transaction takes.
pub const DEFAULT_MAX_BATCH: usize = 1024;
/// Default page cache of a log database: 32 MiB. A log is written at its tail and read back
/// mostly right after (replication, apply), so a small cache serves it; redb's own default
/// (1 GiB) let an idle node's memory grow with the log's size.
pub const DEFAULT_LOG_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How a [`LogDb`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDbOptions {
    /// Put every write request queued during a commit into the next single transaction.
    /// Off: one transaction (and one fsync) per request.
    pub group_commit: bool,
    /// The most requests one transaction takes when group commit is on.
    pub max_batch: usize,
    /// The database's page cache, in bytes (used by [`LogDb::open`]).
    pub cache_bytes: usize,
}

impl Default for LogDbOptions {
    fn default() -> Self {
        Self {
            group_commit: DEFAULT_GROUP_COMMIT,
            max_batch: DEFAULT_MAX_BATCH,
            cache_bytes: DEFAULT_LOG_CACHE_BYTES,
        }
    }
}

impl LogDbOptions {
    /// Checks the options make sense.
    pub fn validate(&self) -> Result<(), LogDbError> {
        if self.max_batch == 0 {
            return Err(LogDbError::InvalidOptions("max_batch must be at least 1"));
        }
        Ok(())
    }
}

/// What can go wrong opening or writing a [`LogDb`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogDbError {
    /// The database file could not be created or opened.
    #[error("open raft log database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why redb could not open it.
        #[source]
        source: redb::DatabaseError,
    },
    /// A redb operation failed.
    #[error("raft log database: {0}")]
    Redb(#[from] redb::Error),
    /// The transaction holding a write failed; every write batched into it failed with it.
    #[error("raft log commit failed: {source}")]
    Commit {
        /// The transaction's failure, shared (hence the `Arc`) by every write batched into it.
        #[source]
        source: Arc<redb::Error>,
    },
    /// A stored value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The writer thread could not be started.
    #[error("start raft log writer: {0}")]
    SpawnWriter(#[source] std::io::Error),
    /// The writer thread is gone (it panicked); nothing more can be written.
    #[error("raft log writer stopped")]
    WriterStopped,
    /// [`LogDbOptions::validate`] refused the options.
    #[error("invalid raft log options: {0}")]
    InvalidOptions(&'static str),
}

impl From<redb::TransactionError> for LogDbError {
    fn from(e: redb::TransactionError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::TableError> for LogDbError {
    fn from(e: redb::TableError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::StorageError> for LogDbError {
    fn from(e: redb::StorageError) -> Self {
        Self::Redb(e.into())
    }
}

/// The Raft log database of a process: one redb file holding the logs of many groups, and
/// the writer thread that commits them. Cloning is cheap; the writer stops when the last
/// clone (and the last [`RedbLogStore`]) is dropped.
#[derive(Clone)]
pub struct LogDb {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

impl LogDb {
    /// Creates or opens the database file at `path`, with a page cache of
    /// [`LogDbOptions::cache_bytes`].
    pub fn open(path: impl AsRef<Path>, options: LogDbOptions) -> Result<Self, LogDbError> {
        let path = path.as_ref();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|source| LogDbError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Self::new(Arc::new(db), options)
    }

    /// Uses an already open database, which other stores (such as the snapshots of
    /// [`super::state_machine::StateMachineStore`]) may share.
    pub fn new(db: Arc<Database>, options: LogDbOptions) -> Result<Self, LogDbError> {
        options.validate()?;
        let txn = db.begin_write()?;
        txn.open_table(LOG_TABLE)?;
        txn.open_table(META_TABLE)?;
        txn.commit().map_err(redb::Error::from)?;
        let writer = Writer::start(db.clone(), options)?;
        Ok(Self {
            db,
            writer: Arc::new(writer),
        })
    }

    /// The underlying database, to share with other stores.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The log store of Raft group `group`. Groups never see each other's rows.
    pub fn group<C: KvdbRaftConfig>(&self, group: u64) -> RedbLogStore<C> {
        RedbLogStore::new(group, self.db.clone(), self.writer.clone())
    }

    /// Deletes the log of `group` once the group is gone from this node, keeping what a
    /// replica of it must not forget if the group is ever given back to this node under the
    /// same Raft id: its vote (so it never votes twice in a term) and, as its vote floor, the
    /// last log id it had ([`RedbLogStore::vote_floor`]). A returning replica starts with an
    /// empty log; without the floor it would vote for any candidate, even one whose stale
    /// log lacks entries this replica had helped commit in an old configuration that still
    /// counts it, and such a candidate could then overwrite them.
    ///
    /// The vote is kept as not committed. A committed vote for this node means "I lead this
    /// term", and openraft resumes such a leadership at start-up without an election. A
    /// replica that comes back with a state but without its old log (a split re-applied by
    /// its parent recreates one) would then lead its old term again from a shorter log,
    /// writing new entries under log ids its old leadership had already used for others: two
    /// different entries with one id, which Raft's log matching cannot tell apart.
    pub async fn remove_group<C: KvdbRaftConfig>(&self, group: u64) -> Result<(), LogDbError> {
        let store = self.group::<C>(group);
        let last = store.last_log_id()?;
        let floor = match (store.vote_floor()?, last) {
            (Some(old), Some(last)) => Some(old.max(last)),
            (old, last) => old.or(last),
        };
        let floor = floor.as_ref().map(super::codec::encode).transpose()?;
        let vote = store.read_vote_meta()?.map(|vote| Vote {
            committed: false,
            ..vote
        });
        let vote = vote.as_ref().map(super::codec::encode).transpose()?;
        self.writer
            .submit(WriteOp::RemoveGroup { group, floor, vote })
            .await
    }

    /// Returns once every write queued before the call is durable: a group reopened after its
    /// Raft core stopped must read the appends that core queued, not race them.
    pub async fn barrier(&self) -> Result<(), LogDbError> {
        self.writer.submit(WriteOp::Barrier).await
    }

    /// Counters of the writes so far, for metrics and the group-commit report.
    pub fn stats(&self) -> LogDbStats {
        self.writer.stats()
    }

    /// Registers the writer's figures in `registry`: `kvdb_raft_log_*` counters and the
    /// latency of its durable commits.
    pub fn register_metrics(&self, registry: &mut crate::metrics::Registry) {
        registry.register_with_unit(
            "raft_log_commit_duration",
            "Time of each durable Raft log transaction, fsync included",
            crate::metrics::Unit::Seconds,
            self.writer.commit_seconds(),
        );
        registry.register_collector(Box::new(LogDbCollector(self.writer.clone())));
    }
}

/// The writer's counters, read at scrape time.
struct LogDbCollector(Arc<Writer>);

impl std::fmt::Debug for LogDbCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogDbCollector")
    }
}

impl crate::metrics::Collector for LogDbCollector {
    fn encode(
        &self,
        mut encoder: crate::metrics::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::metrics::{ConstCounter, encode_family};
        let stats = self.0.stats();
        let no_labels: [(&str, &str); 0] = [];
        let counters = [
            (
                "raft_log_commits",
                "Durable Raft log transactions (one fsync each)",
                stats.commits,
            ),
            (
                "raft_log_requests",
                "Raft log writes completed (appends, votes, truncations, purges, commit saves)",
                stats.requests,
            ),
            (
                "raft_log_appends",
                "Raft log appends completed; appends per commit is the group-commit batch",
                stats.appends,
            ),
            (
                "raft_log_entries",
                "Raft log entries written",
                stats.entries,
            ),
            (
                "raft_log_failed_commits",
                "Raft log transactions that failed, failing every write in them",
                stats.failed_commits,
            ),
        ];
        for (name, help, value) in counters {
            encode_family(
                &mut encoder,
                name,
                help,
                [(no_labels, ConstCounter::new(value))],
            )?;
        }
        Ok(())
    }
}
