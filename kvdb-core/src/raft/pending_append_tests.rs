//! Appends that are readable before they are durable: the log store's overlay of pending
//! entries, observed by holding the writer before its commits.

use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader};
use tokio::task::JoinHandle;

use super::log_store::{GroupLogStore, LogDb, LogDbOptions};
use super::test_support::{KvRequest, TempLogDb, TestConfig};

const DEADLINE: Duration = Duration::from_secs(10);

fn set(term: u64, index: u64, value: &str) -> Entry<TestConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: "k".to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// `(term, index)` of every entry the store reads back.
async fn read_back(log: &GroupLogStore<TestConfig>) -> Vec<(u64, u64)> {
    let mut reader = log.clone();
    reader
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect()
}

/// Waits until the store reads back exactly `expected`.
async fn wait_for_log(log: &GroupLogStore<TestConfig>, expected: &[(u64, u64)]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = read_back(log).await;
        if got == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log is {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Appends in a task that finishes once the entries are reported flushed.
fn spawn_append(
    log: &GroupLogStore<TestConfig>,
    entries: Vec<Entry<TestConfig>>,
) -> JoinHandle<Result<(), openraft::StorageError<u64>>> {
    let mut log = log.clone();
    tokio::spawn(async move { log.blocking_append(entries).await })
}

#[tokio::test]
async fn appended_entries_are_readable_before_they_are_flushed() {
    let db = TempLogDb::new(LogDbOptions::default());
    let mut log = db.log_db.group::<TestConfig>(1);

    // --- hold the writer: the append is readable, but not reported flushed
    log.writer_gate().hold();
    let append = spawn_append(&log, (1..=3).map(|i| set(1, i, "a")).collect());
    wait_for_log(&log, &[(1, 1), (1, 2), (1, 3)]).await;
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 3)));
    assert!(!append.is_finished(), "flushed while the writer was held");
    assert_eq!(db.log_db.stats().commits, 0);

    // --- release it: flushed, and still readable from the database alone
    log.writer_gate().open();
    append.await.unwrap().unwrap();
    assert_eq!(db.log_db.stats().entries, 3);
    wait_for_log(&log, &[(1, 1), (1, 2), (1, 3)]).await;
}

#[tokio::test]
async fn truncating_pending_entries_hides_them_and_keeps_later_rewrites() {
    let TempLogDb { dir, log_db } = TempLogDb::new(LogDbOptions::default());
    let log = log_db.group::<TestConfig>(1);

    // --- append 1..=3 and truncate from 2, all before anything is committed
    log.writer_gate().hold();
    let first = spawn_append(&log, (1..=3).map(|i| set(1, i, "old")).collect());
    wait_for_log(&log, &[(1, 1), (1, 2), (1, 3)]).await;
    let mut truncating = log.clone();
    let truncate = tokio::spawn(async move { truncating.truncate(log_id(1, 1, 2)).await });
    wait_for_log(&log, &[(1, 1)]).await;

    // --- a new leader's entry at index 2 survives the old append's settling
    let second = spawn_append(&log, vec![set(2, 2, "new")]);
    wait_for_log(&log, &[(1, 1), (2, 2)]).await;
    log.writer_gate().open();
    first.await.unwrap().unwrap();
    truncate.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    wait_for_log(&log, &[(1, 1), (2, 2)]).await;

    // --- and the database alone agrees
    drop((log, log_db));
    let log_db = LogDb::open(dir.path().join(TempLogDb::FILE), LogDbOptions::default()).unwrap();
    let log = log_db.group::<TestConfig>(1);
    assert_eq!(read_back(&log).await, vec![(1, 1), (2, 2)]);
}

#[tokio::test]
async fn a_crash_before_the_flush_loses_only_unflushed_entries() {
    let TempLogDb { dir, log_db } = TempLogDb::new(LogDbOptions::default());
    let mut log = log_db.group::<TestConfig>(1);

    // --- entries 1..=2 are flushed; 3..=4 are only pending when the process dies
    log.blocking_append((1..=2).map(|i| set(1, i, "kept")))
        .await
        .unwrap();
    log.writer_gate().hold();
    let lost = spawn_append(&log, (3..=4).map(|i| set(1, i, "lost")).collect());
    wait_for_log(&log, &[(1, 1), (1, 2), (1, 3), (1, 4)]).await;
    log.writer_gate().crash();
    assert!(
        lost.await.unwrap().is_err(),
        "an entry that never reached the disk was reported flushed"
    );

    // --- after a restart only the flushed entries are there
    drop((log, log_db));
    let log_db = LogDb::open(dir.path().join(TempLogDb::FILE), LogDbOptions::default()).unwrap();
    let mut log = log_db.group::<TestConfig>(1);
    assert_eq!(read_back(&log).await, vec![(1, 1), (1, 2)]);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 2)));
}

#[tokio::test]
async fn a_committed_id_save_does_not_wait_and_reads_back_at_once() {
    let db = TempLogDb::new(LogDbOptions::default());
    let mut log = db.log_db.group::<TestConfig>(1);

    // --- the writer is held, yet the save returns and is visible
    log.writer_gate().hold();
    log.save_committed(Some(log_id(1, 1, 7))).await.unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 7)));
    log.writer_gate().open();
}
