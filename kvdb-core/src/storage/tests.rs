//! Both backends against the conformance suite and each other, plus what is
//! specific to redb: reopening, shards sharing a database, corrupt records.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use redb::{Database, StorageBackend, TableDefinition};

use super::{
    CommitDurability, MemoryStorage, RedbStorage, Storage, StorageError, StorageOp, StoredValue,
    WriteBatch, WriteBuffer, conformance,
};
use crate::{ShardId, Version};

fn create_db(dir: &Path) -> Arc<Database> {
    Arc::new(Database::create(dir.join("kv.redb")).unwrap())
}

fn sample_batch() -> WriteBatch {
    WriteBatch::new()
        .put(b"a", StoredValue::new(b"1", Version(1)))
        .put(b"b", StoredValue::new(b"2", Version(1)).with_expiry(50))
        .with_meta(b"applied=1".to_vec())
}

fn assert_holds_sample(store: &impl Storage) {
    assert_eq!(
        store.get(b"a").unwrap(),
        Some(StoredValue::new(b"1", Version(1)))
    );
    assert_eq!(store.meta().unwrap(), Some(b"applied=1".to_vec()));
    assert_eq!(
        store.expired(50, 10).unwrap(),
        [(b"b".to_vec(), Version(1))]
    );
}

#[test]
fn memory_storage_conforms() {
    conformance::run_all(MemoryStorage::new);
}

#[test]
fn redb_storage_conforms() {
    // Every store is a new shard of one database, which also exercises sharing.
    let dir = tempfile::tempdir().unwrap();
    let db = create_db(dir.path());
    let next_shard = AtomicU64::new(1);
    conformance::run_all(|| {
        let shard = ShardId(next_shard.fetch_add(1, Ordering::Relaxed));
        RedbStorage::open(db.clone(), shard).unwrap()
    });
}

/// A redb store whose writes stay in the write buffer until a sync, so that every read
/// merges the buffer with the tables.
struct Buffered(RedbStorage);

impl Buffered {
    fn open(buffer: &Arc<WriteBuffer>, shard: ShardId) -> Self {
        Self(RedbStorage::open_in(buffer, shard, CommitDurability::Deferred).unwrap())
    }
}

impl Storage for Buffered {
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        self.0.get(key)
    }
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<StoredValue>>, StorageError> {
        self.0.get_many(keys)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError> {
        futures::executor::block_on(self.0.commit(batch))
    }
    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.meta()
    }
    fn aux(&self) -> Result<super::AuxRows, StorageError> {
        self.0.aux()
    }
    fn get_with_aux(
        &self,
        key: Option<&[u8]>,
        range: super::AuxBounds<'_>,
        limit: usize,
    ) -> Result<(Option<StoredValue>, super::AuxRows), StorageError> {
        self.0.get_with_aux(key, range, limit)
    }
    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        self.0.export()
    }
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        self.0.scan(after, limit)
    }
    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: super::AuxRows,
    ) -> Result<(), StorageError> {
        self.0.install(entries, meta, aux)
    }
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        self.0.expired(now_ms, limit)
    }
    fn len(&self) -> Result<u64, StorageError> {
        self.0.len()
    }
    fn clear(&self) -> Result<(), StorageError> {
        self.0.clear()
    }
    fn sync(&self) -> Result<(), StorageError> {
        self.0.sync()
    }
}

const NO_TIMED_FLUSH: Duration = Duration::from_secs(3600);

#[test]
fn buffered_redb_storage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = WriteBuffer::with_flush_interval(create_db(dir.path()), NO_TIMED_FLUSH);
    let next_shard = AtomicU64::new(1);
    conformance::run_all(|| {
        Buffered::open(&buffer, ShardId(next_shard.fetch_add(1, Ordering::Relaxed)))
    });
}

#[test]
fn redb_durable_commits_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // --- write with immediate commits, then drop the database
    let db = create_db(dir.path());
    let store = RedbStorage::open_with(db, ShardId(1), CommitDurability::Immediate).unwrap();
    store.apply(sample_batch()).unwrap();
    drop(store);
    // --- reopen
    let store = RedbStorage::open(create_db(dir.path()), ShardId(1)).unwrap();
    assert_holds_sample(&store);
}

#[test]
fn redb_deferred_commits_survive_reopen_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStorage::open(create_db(dir.path()), ShardId(1)).unwrap();
    store.apply(sample_batch()).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = RedbStorage::open(create_db(dir.path()), ShardId(1)).unwrap();
    assert_holds_sample(&store);
}

#[test]
fn redb_shards_in_one_database_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let db = create_db(dir.path());
    let one = RedbStorage::open(db.clone(), ShardId(1)).unwrap();
    let two = RedbStorage::open(db, ShardId(2)).unwrap();
    one.apply(sample_batch()).unwrap();
    let other = WriteBatch::new()
        .put(b"a", StoredValue::new(b"two", Version(5)).with_expiry(7))
        .with_meta(b"two".to_vec());
    two.apply(other).unwrap();

    // --- each shard sees only its own data, index and meta
    assert_holds_sample(&one);
    assert_eq!(two.len().unwrap(), 1);
    assert_eq!(
        two.expired(u64::MAX, 10).unwrap(),
        [(b"a".to_vec(), Version(5))]
    );

    // --- clearing or replacing one leaves the other
    one.clear().unwrap();
    assert_eq!(one.len().unwrap(), 0);
    assert_eq!(two.meta().unwrap(), Some(b"two".to_vec()));
    assert_eq!(two.get(b"a").unwrap().unwrap().version, Version(5));
    two.install(Vec::new(), None, Vec::new()).unwrap();
    one.apply(sample_batch()).unwrap();
    assert_holds_sample(&one);
}

#[test]
fn redb_corrupt_record_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = create_db(dir.path());
    let store = RedbStorage::open(db.clone(), ShardId(3)).unwrap();
    // --- write a record shorter than the header behind the store's back
    let table: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_3");
    let txn = db.begin_write().unwrap();
    txn.open_table(table)
        .unwrap()
        .insert(b"bad".as_slice(), [1u8, 2].as_slice())
        .unwrap();
    txn.commit().unwrap();

    let err = store.get(b"bad").unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { op: StorageOp::Get, key, .. } if key == b"bad"),
        "{err}"
    );
    assert!(store.export().is_err());
}

/// A disk in memory that keeps, besides what was written, what was last
/// synced: the only state a crash is sure to leave behind.
#[derive(Debug, Clone, Default)]
struct CrashDisk {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    written: Vec<u8>,
    synced: Vec<u8>,
}

impl CrashDisk {
    /// A fresh disk holding only what this one had synced.
    fn after_crash(&self) -> Self {
        let synced = self.state.lock().unwrap().synced.clone();
        let state = DiskState {
            written: synced.clone(),
            synced,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }
}

impl StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().unwrap().written.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        let bytes = state.written.get(start..start + out.len());
        out.copy_from_slice(bytes.ok_or(io::ErrorKind::UnexpectedEof)?);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).unwrap();
        self.state.lock().unwrap().written.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.synced = state.written.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        let end = start + data.len();
        if state.written.len() < end {
            state.written.resize(end, 0);
        }
        state.written[start..end].copy_from_slice(data);
        Ok(())
    }
}

#[test]
fn redb_crash_rolls_back_deferred_commits_with_their_meta() {
    let disk = CrashDisk::default();
    let db = Database::builder()
        .create_with_backend(disk.clone())
        .unwrap();
    let store = RedbStorage::open(Arc::new(db), ShardId(1)).unwrap();
    // --- a synced batch, then a deferred one
    store.apply(sample_batch()).unwrap();
    store.sync().unwrap();
    let deferred = WriteBatch::new()
        .delete(b"a")
        .put(b"c", StoredValue::new(b"3", Version(2)).with_expiry(10))
        .with_meta(b"applied=2".to_vec());
    store.apply(deferred).unwrap();
    assert_eq!(store.meta().unwrap(), Some(b"applied=2".to_vec()));

    // --- crash: only synced bytes survive
    let survivor = disk.after_crash();
    drop(store);
    let db = Database::builder().create_with_backend(survivor).unwrap();
    let store = RedbStorage::open(Arc::new(db), ShardId(1)).unwrap();
    assert_holds_sample(&store);
    assert_eq!(store.get(b"c").unwrap(), None);
    assert_eq!(store.len().unwrap(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>, Option<u64>),
    Delete(Vec<u8>),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec![
        vec![],
        vec![0x00],
        vec![0xFF],
        b"k".to_vec(),
        b"k2".to_vec(),
    ]);
    prop_oneof![
        3 => (key.clone(), prop::collection::vec(any::<u8>(), 0..4), prop::option::of(0u64..6))
            .prop_map(|(k, v, exp)| Op::Put(k, v, exp)),
        1 => key.prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random batches leave both backends with the same entries, expiry
    /// index and metadata, and so does redb with its writes buffered and
    /// flushed at random points.
    #[test]
    fn backends_agree_on_random_batches(
        batches in prop::collection::vec(
            (prop::collection::vec(op_strategy(), 0..5), any::<bool>()),
            1..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStorage::open(create_db(dir.path()), ShardId(1)).unwrap();
        let other = tempfile::tempdir().unwrap();
        let buffer = WriteBuffer::with_flush_interval(create_db(other.path()), NO_TIMED_FLUSH);
        let buffered = Buffered::open(&buffer, ShardId(1));
        let memory = MemoryStorage::new();
        for (index, (ops, flush)) in batches.into_iter().enumerate() {
            let version = Version(index as u64 + 1);
            let batch = ops.into_iter().fold(WriteBatch::new(), |batch, op| match op {
                Op::Put(k, v, exp) => {
                    let value = StoredValue::new(v, version);
                    let value = StoredValue { expire_at_ms: exp, ..value };
                    batch.put(k, value)
                }
                Op::Delete(k) => batch.delete(k),
            });
            let batch = batch.with_meta(version.0.to_le_bytes().to_vec());
            redb.apply(batch.clone()).unwrap();
            buffered.apply(batch.clone()).unwrap();
            memory.apply(batch).unwrap();
            if flush {
                buffered.sync().unwrap();
            }
            prop_assert_eq!(redb.export().unwrap(), memory.export().unwrap());
            prop_assert_eq!(redb.meta().unwrap(), memory.meta().unwrap());
            prop_assert_eq!(buffered.export().unwrap(), memory.export().unwrap());
            prop_assert_eq!(buffered.meta().unwrap(), memory.meta().unwrap());
            prop_assert_eq!(buffered.len().unwrap(), memory.len().unwrap());
            for now in [0, 2, 5] {
                prop_assert_eq!(redb.expired(now, 3).unwrap(), memory.expired(now, 3).unwrap());
                prop_assert_eq!(buffered.expired(now, 3).unwrap(), memory.expired(now, 3).unwrap());
            }
        }
    }
}

#[test]
fn the_tagged_form_keeps_strings_as_they_were_and_refuses_unknown_kinds() {
    use super::{TYPED_VERSION_BIT, ValueKind};
    let string = StoredValue::new(b"\x01v".to_vec(), Version(7));
    let (version, bytes) = string.tagged();
    assert_eq!((version, &bytes[..]), (7, &b"\x01v"[..]));
    let hash = string.clone().with_kind(ValueKind::Hash);
    let (version, bytes) = hash.tagged();
    assert_eq!(
        (version, &bytes[..]),
        (7 | TYPED_VERSION_BIT, &b"\x01\x01v"[..])
    );
    assert_eq!(
        StoredValue::untag(version, &bytes),
        Some((Version(7), ValueKind::Hash, &b"\x01v"[..]))
    );
    // Anything written before kinds reads as a string, whatever its bytes.
    assert_eq!(
        StoredValue::untag(7, b"\x01v"),
        Some((Version(7), ValueKind::String, &b"\x01v"[..]))
    );
    for unknown in [&b""[..], b"\x00v", b"\x7fv"] {
        assert_eq!(StoredValue::untag(7 | TYPED_VERSION_BIT, unknown), None);
    }
}

/// A key row and its auxiliary rows are read at one point in time while flushes move
/// batches from the write buffer to the tables: batch `n` sets the key to `n` and replaces
/// the one row with row `n`, so a read that mixed two points in time would see a key and a
/// row that differ, or two rows.
#[test]
fn redb_key_and_aux_rows_are_read_at_one_point_in_time_during_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let buffer =
        WriteBuffer::with_flush_interval(create_db(dir.path()), Duration::from_micros(100));
    let store = RedbStorage::open_in(&buffer, ShardId(1), CommitDurability::Deferred).unwrap();
    let row = |n: u64| format!("m/{n:08}").into_bytes();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            let mut n = 0;
            while std::time::Instant::now() < deadline {
                n += 1;
                let batch = WriteBatch::new()
                    .put(b"h", StoredValue::new(n.to_string(), Version(n)))
                    .with_aux([(row(n - 1), None), (row(n), Some(Vec::new()))]);
                futures::executor::block_on(store.commit(batch)).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let rows = super::PrefixRange::new(b"m/".to_vec());
    let mut reads = 0u64;
    let mut last = 0u64;
    while !done.load(Ordering::Acquire) {
        let (value, rows) = store.get_with_aux(Some(b"h"), rows.bounds(), 10).unwrap();
        let Some(value) = value else { continue };
        let n: u64 = String::from_utf8(value.value).unwrap().parse().unwrap();
        let rows: Vec<Vec<u8>> = rows.into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            rows,
            [row(n)],
            "read {reads}: the key and its rows disagree"
        );
        assert!(n >= last, "read {reads}: went back from {last} to {n}");
        last = n;
        reads += 1;
    }
    writer.join().unwrap();
    assert!(
        reads > 100 && buffer.stats().flushes > 10,
        "the reads never raced flushes"
    );
}

#[test]
fn a_prefix_range_holds_exactly_the_keys_with_the_prefix() {
    use std::ops::RangeBounds;
    let holds = |prefix: &[u8], key: &[u8]| {
        let range = super::PrefixRange::new(prefix.to_vec());
        RangeBounds::<[u8]>::contains(&range.bounds(), key)
    };
    assert!(holds(b"ab", b"ab") && holds(b"ab", b"ab\x00") && holds(b"ab", b"ab\xff\xff"));
    assert!(!holds(b"ab", b"aa\xff") && !holds(b"ab", b"ac") && !holds(b"ab", b"a"));
    assert!(holds(b"a\xff", b"a\xff\x01") && !holds(b"a\xff", b"b") && !holds(b"a\xff", b"a"));
    assert!(holds(b"\xff\xff", b"\xff\xff\x00") && !holds(b"\xff\xff", b"\xff"));
    assert!(holds(b"", b"") && holds(b"", b"\xff"));
}
