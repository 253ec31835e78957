//! Flushing, coalescing, ordering against direct writes, and failure.
//!
//! Most buffers here get a flush interval of an hour, so that only the test decides when a
//! flush happens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{FlushStats, WriteBuffer};
use crate::storage::{
    CommitDurability, RedbStorage, Storage, StorageError, StoredValue, WriteBatch,
};
use crate::{ShardId, Version};

const NEVER: Duration = Duration::from_secs(3600);

fn open(
    interval: Duration,
    shards: u64,
) -> (tempfile::TempDir, Arc<WriteBuffer>, Vec<RedbStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::create(dir.path().join("kv.redb")).unwrap());
    let buffer = WriteBuffer::with_flush_interval(db, interval);
    let stores = (1..=shards)
        .map(|shard| RedbStorage::open_in(&buffer, ShardId(shard), CommitDurability::Deferred))
        .collect::<Result<_, _>>()
        .unwrap();
    (dir, buffer, stores)
}

fn put(key: &str, version: u64) -> WriteBatch {
    WriteBatch::new()
        .put(
            key,
            StoredValue::new(format!("v{version}"), Version(version)),
        )
        .with_meta(version.to_le_bytes().to_vec())
}

/// Commits `batch` the way a state machine does, and waits for it.
fn commit(store: &RedbStorage, batch: WriteBatch) -> Result<(), StorageError> {
    futures::executor::block_on(store.commit(batch))
}

/// The version stored in the table itself, bypassing the buffer.
fn in_table(buffer: &WriteBuffer, shard: u64, key: &str) -> Option<u64> {
    let txn = buffer.database().begin_read().unwrap();
    let name = format!("kv_{shard}");
    let table = txn
        .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
        .unwrap();
    let record = table.get(key.as_bytes()).unwrap()?;
    Some(u64::from_le_bytes(record.value()[..8].try_into().unwrap()))
}

#[test]
fn batches_of_many_shards_and_rounds_share_one_flush() {
    let (_dir, buffer, stores) = open(NEVER, 8);
    for round in 1..=3 {
        for store in &stores {
            commit(store, put("k", round)).unwrap();
        }
    }
    // Visible at once, though nothing is written yet.
    for store in &stores {
        assert_eq!(store.get(b"k").unwrap().unwrap().version, Version(3));
        assert_eq!(store.meta().unwrap(), Some(3u64.to_le_bytes().to_vec()));
        assert_eq!(in_table(&buffer, store.shard().0, "k"), None);
    }
    stores[0].sync().unwrap();
    assert_eq!(
        buffer.stats(),
        FlushStats {
            flushes: 1,
            batches: 24
        }
    );
    for store in &stores {
        assert_eq!(in_table(&buffer, store.shard().0, "k"), Some(3));
        assert_eq!(store.get(b"k").unwrap().unwrap().version, Version(3));
    }
}

#[test]
fn the_flusher_writes_buffered_batches_within_its_interval() {
    let (_dir, buffer, stores) = open(Duration::from_millis(5), 2);
    commit(&stores[1], put("k", 7)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_table(&buffer, 2, "k").is_none() {
        assert!(Instant::now() < deadline, "no flush within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(buffer.stats().flushes, 1);
}

#[test]
fn dropping_the_buffer_flushes_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    {
        let buffer =
            WriteBuffer::with_flush_interval(Arc::new(Database::create(&path).unwrap()), NEVER);
        let store = RedbStorage::open_in(&buffer, ShardId(1), CommitDurability::Deferred).unwrap();
        commit(&store, put("k", 4)).unwrap();
    }
    let store = RedbStorage::open(Arc::new(Database::create(&path).unwrap()), ShardId(1)).unwrap();
    assert_eq!(store.get(b"k").unwrap().unwrap().version, Version(4));
    assert_eq!(store.meta().unwrap(), Some(4u64.to_le_bytes().to_vec()));
}

#[test]
fn an_install_replaces_buffered_writes_and_a_later_flush_keeps_it() {
    let (_dir, buffer, stores) = open(NEVER, 1);
    let store = &stores[0];
    commit(store, put("stale", 1)).unwrap();
    commit(store, put("k", 2)).unwrap();
    let installed = vec![(b"k".to_vec(), StoredValue::new("snap", Version(9)))];
    store
        .install(installed, Some(b"snap".to_vec()), Vec::new())
        .unwrap();
    assert_eq!(store.get(b"stale").unwrap(), None);
    assert_eq!(store.get(b"k").unwrap().unwrap().version, Version(9));
    store.sync().unwrap();
    assert_eq!(in_table(&buffer, 1, "stale"), None);
    assert_eq!(in_table(&buffer, 1, "k"), Some(9));
    assert_eq!(store.meta().unwrap(), Some(b"snap".to_vec()));
}

#[test]
fn a_synchronous_apply_lands_after_every_buffered_batch() {
    let (_dir, buffer, stores) = open(NEVER, 1);
    let store = &stores[0];
    commit(store, put("k", 1)).unwrap();
    store.apply(put("k", 2)).unwrap();
    assert_eq!(in_table(&buffer, 1, "k"), Some(2));
    store.sync().unwrap();
    assert_eq!(in_table(&buffer, 1, "k"), Some(2));
}

#[test]
fn a_failed_flush_keeps_its_batches_visible_and_refuses_later_writes() {
    let (_dir, buffer, stores) = open(NEVER, 2);
    // Shard 2's data table is replaced by one of another type: writing it now fails.
    let txn = buffer.database().begin_write().unwrap();
    txn.delete_table(TableDefinition::<&[u8], &[u8]>::new("kv_2"))
        .unwrap();
    txn.open_table(TableDefinition::<u64, u64>::new("kv_2"))
        .unwrap();
    txn.commit().unwrap();

    commit(&stores[0], put("k", 1)).unwrap();
    commit(&stores[1], put("k", 2)).unwrap();
    let error = stores[0].sync().unwrap_err();
    assert!(matches!(error, StorageError::Backend { .. }), "{error}");
    assert_eq!(stores[0].get(b"k").unwrap().unwrap().version, Version(1));
    assert_eq!(stores[1].get(b"k").unwrap().unwrap().version, Version(2));
    let refused = commit(&stores[0], put("k", 3)).unwrap_err();
    assert!(
        matches!(refused, StorageError::FlushFailed { .. }),
        "{refused}"
    );
    assert_eq!(stores[0].get(b"k").unwrap().unwrap().version, Version(1));
}
