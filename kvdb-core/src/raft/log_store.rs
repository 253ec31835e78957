//! Raft log and vote storage shared by every Raft group a process hosts: one append-only log.
//!
//! A node hosts many shard replicas, each its own openraft group, plus perhaps a coordinator
//! group. Giving each group its own file would cost one fsync per group per write; so all
//! groups share one log ([`LogDb`]) and each group gets a cheap handle ([`GroupLogStore`]).
//!
//! Every write (appends, votes, committed ids, truncations, purges) goes through one writer
//! thread, which keeps each group's writes in submission order, as openraft requires. With
//! group commit on, the writer drains every request queued while the previous commit was
//! being fsync'd into one commit: one record appended to the current segment file and one
//! `fdatasync` make many groups' entries durable. With it off, each request is its own
//! commit, which is the baseline group commit is measured against ([`LogDbStats`]).
//! Committed-id saves never cost a commit of their own: one that finds nothing else to write
//! waits for the next commit (or closing the log), and losing the latest one in a crash only
//! means re-applying less at restart.
//!
//! The log is a directory of segment files (`segments.rs`) of checksummed records
//! (`record.rs`). A commit writes only its record: the files are zero-filled when created, so
//! syncing one writes the record's pages and nothing else (a B-tree rewrote about 16 pages per
//! commit). Where each group's entries are, and its vote and other metadata, is held in memory
//! (`index.rs`), rebuilt at open by replaying the segments. Truncations and purges only change
//! that index and are recorded as small writes; a segment is deleted once no group uses any
//! entry in it, and groups that stop writing are copied forward so they never pin old files
//! (`journal.rs`).
//!
//! `append` returns as soon as its entries are readable, not when they are durable: they wait
//! in the group's in-memory overlay, which readers merge over the indexed entries, and the
//! writer reports them flushed (openraft's `LogFlushed`) once the commit holding them is
//! fsync'd, then drops them from the overlay. A crash before that loses only entries nobody
//! was told are durable. Truncations, purges and votes wait for their own commit, which comes
//! after every append queued before them.
//!
//! Note that openraft 0.9's core itself waits for each flush before its next step, so this
//! does not yet pipeline one group's appends; it does stop a group's committed-id saves from
//! waiting on other groups' fsyncs, and it is what newer openraft cores need.
//!
//! Reads run on the caller's thread: an index lookup under the group's lock, then one
//! positioned read per run of adjacent entries, mostly served by the page cache.
//!
//! Beside the segments, a small redb database (the path given to [`LogDb::open`]) holds the
//! snapshots of machines kept in memory ([`super::state_machine`]). Earlier releases kept the
//! log itself in two of its tables; the first open takes those rows over into the segments.
//!
//! Out of scope: snapshots and applied state (see [`super::state_machine`]).

mod group_store;
mod index;
mod journal;
mod overlay;
mod record;
mod segments;
mod writer;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{BasicNode, Entry, RaftTypeConfig, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec::CodecError;
use index::LogIndex;
use journal::Journal;
use overlay::EncodedEntry;
use record::{MetaKey, Op};
use writer::Writer;

pub use group_store::GroupLogStore;
pub use record::RecordError;
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

/// Where earlier releases kept log entries, keyed by `(group, log index)`; taken over at open.
pub(in crate::raft) const LOG_TABLE: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("raft_log");
/// Where earlier releases kept per-group metadata, keyed by `(group, MetaKey)`.
pub(in crate::raft) const META_TABLE: TableDefinition<(u64, u8), &[u8]> =
    TableDefinition::new("raft_log_meta");

/// Whether writes of concurrent groups share commits, on by default.
pub const DEFAULT_GROUP_COMMIT: bool = true;
/// The most write requests one group commit takes.
pub const DEFAULT_MAX_BATCH: usize = 1024;
/// Default page cache of the snapshot database beside the log: 32 MiB (redb's own default,
/// 1 GiB, let an idle node's memory grow).
pub const DEFAULT_LOG_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Default size of a segment file: 8 MiB, zero-filled when created.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Default number of segment files kept before the groups left in the oldest are copied
/// forward: with 8 MiB segments, at most 48 MiB of log beside the one being written.
pub const DEFAULT_MAX_SEGMENTS: usize = 6;

/// How a [`LogDb`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDbOptions {
    /// Put every write request queued during a commit into the next single commit.
    /// Off: one commit (and one fsync) per request.
    pub group_commit: bool,
    /// The most requests one commit takes when group commit is on.
    pub max_batch: usize,
    /// The snapshot database's page cache, in bytes.
    pub cache_bytes: usize,
    /// The size segment files are created with.
    pub segment_bytes: u64,
    /// Segment files kept (the one being written included) before the groups still in the
    /// oldest are copied forward, so that it can be deleted.
    pub max_segments: usize,
}

impl Default for LogDbOptions {
    fn default() -> Self {
        Self {
            group_commit: DEFAULT_GROUP_COMMIT,
            max_batch: DEFAULT_MAX_BATCH,
            cache_bytes: DEFAULT_LOG_CACHE_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_segments: DEFAULT_MAX_SEGMENTS,
        }
    }
}

impl LogDbOptions {
    /// Checks the options make sense.
    pub fn validate(&self) -> Result<(), LogDbError> {
        if self.max_batch == 0 {
            return Err(LogDbError::InvalidOptions("max_batch must be at least 1"));
        }
        if self.segment_bytes < 4096 {
            return Err(LogDbError::InvalidOptions(
                "segment_bytes must be at least 4096",
            ));
        }
        if self.max_segments < 2 {
            return Err(LogDbError::InvalidOptions(
                "max_segments must be at least 2",
            ));
        }
        Ok(())
    }
}

/// What can go wrong opening or writing a [`LogDb`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogDbError {
    /// The snapshot database file could not be created or opened.
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
    /// The commit holding a write failed; every write batched into it failed with it.
    #[error("raft log commit failed: {source}")]
    Commit {
        /// The commit's failure, shared (hence the `Arc`) by every write batched into it.
        #[source]
        source: Arc<LogDbError>,
    },
    /// Reading or writing a segment file failed.
    #[error("raft log file: {0}")]
    Io(#[from] std::io::Error),
    /// A record that passed its checksum could not be read: a file of another format.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A stored value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The writer thread could not be started.
    #[error("start raft log writer: {0}")]
    SpawnWriter(#[source] std::io::Error),
    /// The writer thread is gone (it panicked); nothing more can be written.
    #[error("raft log writer stopped")]
    WriterStopped,
    /// Another open log (another process, or one in this process that is still closing)
    /// holds the log directory.
    #[error(
        "raft log {dir} is open elsewhere (another process, or a previous instance still closing)"
    )]
    InUse {
        /// The segment directory.
        dir: PathBuf,
    },
    /// [`LogDbOptions::validate`] refused the options.
    #[error("invalid raft log options: {0}")]
    InvalidOptions(&'static str),
}

impl LogDbError {
    /// Whether opening failed only because another open log holds the files.
    pub fn is_in_use(&self) -> bool {
        match self {
            Self::InUse { .. } => true,
            Self::Open { source, .. } => crate::reopen::redb_in_use(source),
            _ => false,
        }
    }
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

/// The Raft log of a process: the segment files holding the logs of many groups, the writer
/// thread that commits to them, and the snapshot database beside them. Cloning is cheap; the
/// writer stops when the last clone (and the last [`GroupLogStore`]) is dropped.
#[derive(Clone)]
pub struct LogDb {
    db: Arc<Database>,
    index: Arc<LogIndex>,
    writer: Arc<Writer>,
}

impl LogDb {
    /// Creates or opens the snapshot database at `path`, with a page cache of
    /// [`LogDbOptions::cache_bytes`], and the log in the directory beside it named like it
    /// with the extension `segments` ([`LogDb::segments_dir`]).
    pub fn open(path: impl AsRef<Path>, options: LogDbOptions) -> Result<Self, LogDbError> {
        options.validate()?;
        let path = path.as_ref();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|source| LogDbError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let (mut journal, index) = Journal::open(&Self::segments_dir(path), &options)?;
        take_over_stored_log(&db, &mut journal, &index)?;
        let writer = Writer::start(journal, options)?;
        Ok(Self {
            db: Arc::new(db),
            index,
            writer: Arc::new(writer),
        })
    }

    /// [`LogDb::open`], waiting up to [`crate::reopen::REOPEN_TIMEOUT`] while a previous
    /// instance in this process still holds the files (see [`crate::reopen`]). Blocking.
    pub fn open_when_free(
        path: impl AsRef<Path>,
        options: LogDbOptions,
    ) -> Result<Self, LogDbError> {
        crate::reopen::when_free(|| Self::open(path.as_ref(), options), LogDbError::is_in_use)
    }

    /// The directory of the log whose snapshot database is at `path`.
    pub fn segments_dir(path: &Path) -> PathBuf {
        path.with_extension("segments")
    }

    /// The snapshot database, to share with the state machine stores.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The log store of Raft group `group`. Groups never see each other's entries.
    pub fn group<C: KvdbRaftConfig>(&self, group: u64) -> GroupLogStore<C> {
        GroupLogStore::new(group, self.index.group(group), self.writer.clone())
    }

    /// Deletes the log of `group` once the group is gone from this node, keeping what a
    /// replica of it must not forget if the group is ever given back to this node under the
    /// same Raft id: its vote (so it never votes twice in a term) and, as its vote floor, the
    /// last log id it had ([`GroupLogStore::vote_floor`]). A returning replica starts with an
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
            .submit(Op::RemoveGroup { group, floor, vote })
            .await
    }

    /// Returns once every write queued before the call is durable: a group reopened after its
    /// Raft core stopped must read the appends that core queued, not race them.
    pub async fn barrier(&self) -> Result<(), LogDbError> {
        self.writer.submit(Op::Barrier).await
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
            "Time of each durable Raft log commit, fsync included",
            crate::metrics::Unit::Seconds,
            self.writer.commit_seconds(),
        );
        registry.register_collector(Box::new(LogDbCollector(self.writer.counters())));
    }
}

/// The writer's counters, read at scrape time.
struct LogDbCollector(Arc<writer::Counters>);

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
                "Durable Raft log commits (one fsync each)",
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
                "Raft log commits that failed, failing every write in them",
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

/// Takes over the log an earlier release kept in `db`'s tables: writes its rows into the
/// segments, then drops the tables. If the segments already hold a log, the tables are what
/// a crash left behind after an earlier take-over wrote them, and are only dropped.
fn take_over_stored_log(
    db: &Database,
    journal: &mut Journal,
    index: &LogIndex,
) -> Result<(), LogDbError> {
    let read = db.begin_read()?;
    let (log, meta) = match (read.open_table(LOG_TABLE), read.open_table(META_TABLE)) {
        (Ok(log), Ok(meta)) => (log, meta),
        (Err(redb::TableError::TableDoesNotExist(_)), _)
        | (_, Err(redb::TableError::TableDoesNotExist(_))) => return Ok(()),
        (Err(e), _) | (_, Err(e)) => return Err(e.into()),
    };
    if index.groups().is_empty() {
        let mut metas = Vec::new();
        for row in meta.iter()? {
            let (key, value) = row?;
            let (group, key) = key.value();
            let Some(key) = MetaKey::from_byte(key) else {
                continue;
            };
            let value = Some(value.value().to_vec());
            metas.push(Op::PutMeta { group, key, value });
        }
        journal.commit(&metas.iter().collect::<Vec<_>>())?;
        // Entries in chunks, so that a large log never sits in memory whole.
        let mut chunk: Option<(u64, Vec<(u64, EncodedEntry)>)> = None;
        let mut bytes = 0;
        for row in log.iter()? {
            let (key, value) = row?;
            let (group, index) = key.value();
            if chunk.as_ref().is_some_and(|(g, _)| *g != group) || bytes > 4 << 20 {
                flush_chunk(journal, chunk.take())?;
                bytes = 0;
            }
            bytes += value.value().len();
            let entries = &mut chunk.get_or_insert_with(|| (group, Vec::new())).1;
            entries.push((index, Arc::from(value.value())));
        }
        flush_chunk(journal, chunk)?;
    }
    drop((log, meta, read));
    let txn = db.begin_write()?;
    txn.delete_table(LOG_TABLE)?;
    txn.delete_table(META_TABLE)?;
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}

fn flush_chunk(
    journal: &mut Journal,
    chunk: Option<(u64, Vec<(u64, EncodedEntry)>)>,
) -> Result<(), LogDbError> {
    if let Some((group, entries)) = chunk {
        journal.commit(&[&Op::Append { group, entries }])?;
    }
    Ok(())
}
