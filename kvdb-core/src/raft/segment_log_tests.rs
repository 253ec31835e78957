//! The log's segment files over many writes and reopenings: old segments go once nothing in
//! them is used, idle groups are copied forward instead of pinning them, and a log kept by an
//! earlier release in the snapshot database is taken over.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader, Vote};
use redb::{Database, ReadableDatabase};

use super::codec;
use super::log_store::{GroupLogStore, LogDb, LogDbOptions};
use super::test_support::{KvRequest, TempLogDb, TestConfig};

fn set(index: u64, value: &str) -> Entry<TestConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: "k".to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn small_segments() -> LogDbOptions {
    LogDbOptions {
        segment_bytes: 4096,
        max_segments: 3,
        ..LogDbOptions::default()
    }
}

/// Segment files on disk, the one being prepared included.
fn segment_files(path: &Path) -> usize {
    std::fs::read_dir(LogDb::segments_dir(path))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

async fn values(log: &GroupLogStore<TestConfig>) -> Vec<(u64, String)> {
    let mut reader = log.clone();
    reader
        .try_get_log_entries(..)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| match entry.payload {
            EntryPayload::Normal(KvRequest::Set { value, .. }) => (entry.log_id.index, value),
            other => panic!("unexpected payload {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn old_segments_are_deleted_and_idle_groups_copied_forward() {
    let TempLogDb { dir, log_db } = TempLogDb::new(small_segments());
    let path = dir.path().join(TempLogDb::FILE);

    // --- an idle group writes once, first; a busy one fills many segments, purging behind
    let mut idle = log_db.group::<TestConfig>(2);
    idle.blocking_append([set(1, "idle")]).await.unwrap();
    idle.save_vote(&Vote::new(3, 2)).await.unwrap();
    let mut busy = log_db.group::<TestConfig>(1);
    let value = "v".repeat(100);
    for round in 0..40u64 {
        let entries = (round * 5 + 1..=round * 5 + 5).map(|i| set(i, &value));
        busy.blocking_append(entries).await.unwrap();
        if round > 0 {
            busy.purge(log_id(1, 1, round * 5 - 2)).await.unwrap();
        }
        let files = segment_files(&path);
        assert!(files <= 4, "{files} segment files after round {round}");
    }
    busy.truncate(log_id(1, 1, 199)).await.unwrap();

    // --- everything reads back, before and after reopening
    check_logs(&idle, &busy).await;
    drop((idle, busy, log_db));
    let log_db = LogDb::open(&path, small_segments()).unwrap();
    check_logs(&log_db.group(2), &log_db.group(1)).await;
}

async fn check_logs(idle: &GroupLogStore<TestConfig>, busy: &GroupLogStore<TestConfig>) {
    assert_eq!(values(idle).await, vec![(1, "idle".to_owned())]);
    assert_eq!(
        idle.clone().read_vote().await.unwrap(),
        Some(Vote::new(3, 2))
    );
    let indexes: Vec<u64> = values(busy).await.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, (194..=198).collect::<Vec<_>>());
    let state = busy.clone().get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 193)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 198)));
}

#[tokio::test]
async fn a_log_kept_by_an_earlier_release_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TempLogDb::FILE);

    // --- the tables an earlier release wrote: entries 3..=5 of group 9, its vote and purge
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(super::log_store::LOG_TABLE).unwrap();
            for index in 3..=5 {
                let bytes = codec::encode(&set(index, &format!("v{index}"))).unwrap();
                log.insert((9, index), bytes.as_slice()).unwrap();
            }
            let mut meta = txn.open_table(super::log_store::META_TABLE).unwrap();
            let vote = codec::encode(&Vote::<u64>::new_committed(1, 1)).unwrap();
            meta.insert((9, 1), vote.as_slice()).unwrap();
            let purged = codec::encode(&log_id::<u64>(1, 1, 2)).unwrap();
            meta.insert((9, 3), purged.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }

    // --- opened, the log is in the segments and the tables are gone, also after reopening
    for _ in 0..2 {
        let log_db = LogDb::open(&path, LogDbOptions::default()).unwrap();
        let mut log = log_db.group::<TestConfig>(9);
        let expected: Vec<(u64, String)> = (3..=5).map(|i| (i, format!("v{i}"))).collect();
        assert_eq!(values(&log).await, expected);
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new(1, 1)),
            "read back uncommitted, so that no leadership resumes"
        );
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
        let read = log_db.database().begin_read().unwrap();
        assert!(read.open_table(super::log_store::LOG_TABLE).is_err());
    }
}

/// What a group's log must hold: entries by index, the purge point and the vote.
#[derive(Debug, Default, Clone)]
struct ModelGroup {
    entries: std::collections::BTreeMap<u64, String>,
    purged: Option<u64>,
    vote: Option<Vote<u64>>,
}

impl ModelGroup {
    fn next(&self) -> u64 {
        match (self.entries.keys().next_back(), self.purged) {
            (Some(last), _) => last + 1,
            (None, Some(purged)) => purged + 1,
            (None, None) => 1,
        }
    }
}

/// A small deterministic generator, so that a failing history is reproduced by its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn check_model(log_db: &LogDb, model: &[ModelGroup], seed: u64, step: usize) {
    for (g, expected) in model.iter().enumerate() {
        let mut log = log_db.group::<TestConfig>(g as u64 + 1);
        let got: std::collections::BTreeMap<u64, String> = values(&log).await.into_iter().collect();
        assert_eq!(
            got,
            expected.entries,
            "group {} seed {seed} step {step}",
            g + 1
        );
        let state = log.get_log_state().await.unwrap();
        let purged = expected.purged.map(|p| log_id(1, 1, p));
        assert_eq!(state.last_purged_log_id, purged, "seed {seed} step {step}");
        let last = expected
            .entries
            .keys()
            .next_back()
            .map(|i| log_id(1, 1, *i));
        assert_eq!(
            state.last_log_id,
            last.or(purged),
            "seed {seed} step {step}"
        );
        assert_eq!(
            log.read_vote().await.unwrap(),
            expected.vote,
            "seed {seed} step {step}"
        );
    }
}

/// Random appends, overwrites, purges (also past the last entry, as a snapshot does), votes,
/// removed groups and reopenings over tiny segments: whatever was acknowledged reads back
/// exactly, before and after every reopening, while segments rotate, are copied forward and
/// are deleted.
#[tokio::test]
async fn random_histories_read_back_after_every_reopening() {
    const GROUPS: usize = 4;
    for seed in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TempLogDb::FILE);
        let mut log_db = LogDb::open(&path, small_segments()).unwrap();
        let mut model = vec![ModelGroup::default(); GROUPS];
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for step in 0..400 {
            let g = rng.below(GROUPS as u64) as usize;
            // Group 1 is written rarely, so that it pins old segments.
            if g == 0 && rng.below(8) != 0 {
                continue;
            }
            let group = g as u64 + 1;
            let mut log = log_db.group::<TestConfig>(group);
            let m = &mut model[g];
            match rng.below(20) {
                0..=10 => {
                    let start = m.next();
                    let count = 1 + rng.below(6);
                    let value = format!("s{step}-").repeat(1 + rng.below(30) as usize);
                    let entries = (start..start + count).map(|i| set(i, &value));
                    log.blocking_append(entries).await.unwrap();
                    for i in start..start + count {
                        m.entries.insert(i, value.clone());
                    }
                }
                11..=12 => {
                    // A new leader overwrites the tail past the purge point.
                    let floor = m.purged.map_or(1, |p| p + 1);
                    let next = m.next();
                    if next <= floor {
                        continue;
                    }
                    let since = floor + rng.below(next - floor);
                    log.truncate(log_id(1, 1, since)).await.unwrap();
                    m.entries.split_off(&since);
                    let value = format!("o{step}");
                    log.blocking_append([set(since, &value)]).await.unwrap();
                    m.entries.insert(since, value);
                }
                13..=15 => {
                    let next = m.next();
                    let floor = m.purged.unwrap_or(0);
                    // Up to a few past the last entry, as installing a snapshot does.
                    let upto = floor + 1 + rng.below(next - floor + 2);
                    log.purge(log_id(1, 1, upto)).await.unwrap();
                    m.entries = m.entries.split_off(&(upto + 1));
                    m.purged = Some(upto);
                }
                16..=17 => {
                    let vote = Vote::new(1 + rng.below(50), 1 + rng.below(3));
                    log.save_vote(&vote).await.unwrap();
                    m.vote = Some(vote);
                }
                18 => {
                    drop(log);
                    log_db.remove_group::<TestConfig>(group).await.unwrap();
                    m.entries.clear();
                    m.purged = None;
                }
                _ => {
                    drop(log);
                    drop(log_db);
                    log_db = LogDb::open(&path, small_segments()).unwrap();
                    check_model(&log_db, &model, seed, step).await;
                }
            }
        }
        check_model(&log_db, &model, seed, 400).await;
        drop(log_db);
        let log_db = LogDb::open(&path, small_segments()).unwrap();
        check_model(&log_db, &model, seed, 401).await;
        assert!(
            segment_files(&path) <= 6,
            "seed {seed}: {} files",
            segment_files(&path)
        );
    }
}
