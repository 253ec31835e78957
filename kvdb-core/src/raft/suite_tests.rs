//! The Raft storage against openraft's own storage test suite, plus what the suite does not
//! cover: restarts, many groups in one database, and group commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite, log_id};
use openraft::{
    BasicNode, Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StoredMembership, Vote,
};

use super::codec;
use super::log_store::{GroupLogStore, LogDb, LogDbOptions, LogDbStats};
use super::state_machine::{Machine, StateMachineStore};
use super::test_support::{DurableKv, KvRequest, MemKv, TempLogDb, TestConfig};

/// Builds a store in a fresh temporary database for each suite case.
struct RedbStoreBuilder {
    options: LogDbOptions,
}

impl
    StoreBuilder<
        TestConfig,
        GroupLogStore<TestConfig>,
        StateMachineStore<TestConfig, MemKv>,
        TempLogDb,
    > for RedbStoreBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            TempLogDb,
            GroupLogStore<TestConfig>,
            StateMachineStore<TestConfig, MemKv>,
        ),
        StorageError<u64>,
    > {
        let db = TempLogDb::new(self.options);
        let (log, sm) = db.group(1);
        Ok((db, log, sm))
    }
}

/// The same with a [`DurableKv`] machine, whose snapshots are exported on demand.
struct DurableStoreBuilder;

impl
    StoreBuilder<
        TestConfig,
        GroupLogStore<TestConfig>,
        StateMachineStore<TestConfig, DurableKv>,
        TempLogDb,
    > for DurableStoreBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            TempLogDb,
            GroupLogStore<TestConfig>,
            StateMachineStore<TestConfig, DurableKv>,
        ),
        StorageError<u64>,
    > {
        let db = TempLogDb::new(options(true));
        let (log, sm) = db.durable_group(1);
        Ok((db, log, sm))
    }
}

fn options(group_commit: bool) -> LogDbOptions {
    LogDbOptions {
        group_commit,
        ..LogDbOptions::default()
    }
}

fn set(term: u64, index: u64, key: &str, value: &str) -> Entry<TestConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn membership(term: u64, index: u64, voters: &[u64]) -> Entry<TestConfig> {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
    }
}

async fn build_snapshot<M: Machine<TestConfig>>(
    sm: &mut StateMachineStore<TestConfig, M>,
) -> Snapshot<TestConfig> {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

fn indexes(entries: &[Entry<TestConfig>]) -> Vec<u64> {
    entries.iter().map(|entry| entry.log_id.index).collect()
}

#[test]
fn openraft_suite_passes_with_group_commit() {
    Suite::test_all(RedbStoreBuilder {
        options: options(true),
    })
    .unwrap();
}

#[test]
fn openraft_suite_passes_without_group_commit() {
    Suite::test_all(RedbStoreBuilder {
        options: options(false),
    })
    .unwrap();
}

#[test]
fn openraft_suite_passes_with_a_durable_machine() {
    Suite::test_all(DurableStoreBuilder).unwrap();
}

#[test]
fn openraft_types_round_trip_through_postcard() {
    let entries = [
        Entry::<TestConfig> {
            log_id: log_id(1, 2, 3),
            payload: EntryPayload::Blank,
        },
        set(2, 4, "k", "v"),
        membership(3, 5, &[1, 2, 3]),
    ];
    for entry in &entries {
        let back: Entry<TestConfig> = codec::decode(&codec::encode(entry).unwrap()).unwrap();
        assert_eq!(&back, entry);
    }
    let mut vote = Vote::new(7, 2);
    vote.commit();
    assert_eq!(
        codec::decode::<Vote<u64>>(&codec::encode(&vote).unwrap()).unwrap(),
        vote
    );

    let nodes = [
        (1, BasicNode::new("127.0.0.1:1")),
        (2, BasicNode::new("127.0.0.1:2")),
    ];
    let voters = vec![BTreeSet::from([1]), BTreeSet::from([1, 2])];
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 1, 9)),
        last_membership: StoredMembership::new(
            Some(log_id(3, 1, 8)),
            Membership::new(voters, std::collections::BTreeMap::from(nodes)),
        ),
        snapshot_id: "1-3-9-abc".to_owned(),
    };
    let back: SnapshotMeta<u64, BasicNode> = codec::decode(&codec::encode(&meta).unwrap()).unwrap();
    assert_eq!(back, meta);
}

#[tokio::test]
async fn log_vote_and_committed_survive_reopen() {
    let TempLogDb { dir, log_db } = TempLogDb::new(LogDbOptions::default());
    let path = dir.path().join(TempLogDb::FILE);

    // --- write a log, vote and committed id, purge the head
    {
        let mut log = log_db.group::<TestConfig>(7);
        let entries: Vec<_> = (1..=5).map(|i| set(1, i, "k", &i.to_string())).collect();
        log.blocking_append(entries).await.unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 3))).await.unwrap();
        log.purge(log_id(1, 1, 1)).await.unwrap();
    }
    drop(log_db);

    // --- reopen and read everything back
    let log_db = LogDb::open(&path, LogDbOptions::default()).unwrap();
    let mut log = log_db.group::<TestConfig>(7);
    let entries = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(indexes(&entries), vec![2, 3, 4, 5]);
    assert_eq!(entries[3], set(1, 5, "k", "5"));
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new(1, 1)),
        "read back uncommitted, so that no leadership resumes"
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 3)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 5)));
}

#[tokio::test]
async fn snapshot_survives_reopen_and_is_imported() {
    let TempLogDb { dir, log_db } = TempLogDb::new(LogDbOptions::default());
    let path = dir.path().join(TempLogDb::FILE);
    let db = Arc::clone(log_db.database());

    // --- apply, snapshot, then lose the in-memory machine
    let built = {
        let mut sm = StateMachineStore::open(db.clone(), 3, MemKv::default()).unwrap();
        sm.apply([membership(1, 1, &[1]), set(1, 2, "a", "1")])
            .await
            .unwrap();
        let snapshot = build_snapshot(&mut sm).await;
        let counts = sm.snapshot_counts();
        assert_eq!((counts.built(), counts.installed()), (1, 0));
        snapshot.meta
    };
    drop((db, log_db));

    // --- reopen: the stored snapshot is newer than the empty machine, so it is imported
    let log_db = LogDb::open(&path, LogDbOptions::default()).unwrap();
    let mut sm = StateMachineStore::open(log_db.database().clone(), 3, MemKv::default()).unwrap();
    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("stored snapshot");
    assert_eq!(current.meta, built);
    let (applied, members) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    assert_eq!(members.log_id(), &Some(log_id(1, 1, 1)));
    let machine = sm.machine();
    assert_eq!(
        machine.read().await.data.get("a").map(String::as_str),
        Some("1")
    );

    // --- another group of the same database has no snapshot
    let mut other =
        StateMachineStore::open(log_db.database().clone(), 4, MemKv::default()).unwrap();
    assert!(other.get_current_snapshot().await.unwrap().is_none());

    // --- a snapshot installed from a leader is counted as installed, not built
    let snapshot = current.snapshot;
    other.install_snapshot(&built, snapshot).await.unwrap();
    let counts = other.snapshot_counts();
    assert_eq!((counts.built(), counts.installed()), (0, 1));
}

#[tokio::test]
async fn a_durable_machine_stores_no_snapshot_and_exports_its_current_state() {
    let db = TempLogDb::new(LogDbOptions::default());
    let (_, mut sm) = db.durable_group(3);
    sm.apply([membership(1, 1, &[1]), set(1, 2, "a", "1")])
        .await
        .unwrap();
    // Nothing built or installed yet: openraft builds one at start-up if the log was purged.
    assert!(sm.get_current_snapshot().await.unwrap().is_none());

    // --- a build makes the applied state durable and carries no bytes
    let built = build_snapshot(&mut sm).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 2)));
    assert!(built.snapshot.get_ref().is_empty());
    assert!(!sm.has_stored_snapshot());
    assert_eq!(
        DurableKv::open(&db.machine_file(3)).kv.applied,
        Some(log_id(1, 1, 2))
    );

    // --- later applies are exported by the next get, under one id per log id
    sm.apply([set(1, 3, "b", "2")]).await.unwrap();
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 1, 3)));
    let data: std::collections::BTreeMap<String, String> =
        codec::decode(current.snapshot.get_ref()).unwrap();
    assert_eq!(data.get("b").map(String::as_str), Some("2"));
    let again = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(again.meta, current.meta);
    assert_eq!(again.snapshot.get_ref(), current.snapshot.get_ref());

    // --- a crash loses only what was applied after the build, which the log still holds
    drop(sm);
    let (_, mut reopened) = db.durable_group(3);
    let (applied, _) = reopened.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));

    // --- an installed snapshot is durable before openraft purges the log behind it
    let (_, mut follower) = db.durable_group(4);
    follower
        .install_snapshot(&current.meta, current.snapshot)
        .await
        .unwrap();
    assert_eq!(
        DurableKv::open(&db.machine_file(4)).kv.data.get("b"),
        Some(&"2".to_owned())
    );
    let installed = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(installed.meta, current.meta);
    assert!(!follower.has_stored_snapshot());
    assert_eq!(follower.snapshot_counts().installed(), 1);
}

#[tokio::test]
async fn a_durable_machine_takes_over_a_stored_snapshot_and_deletes_it() {
    let db = TempLogDb::new(LogDbOptions::default());
    // --- a snapshot stored by an in-memory machine (as a release that stored them did)
    let built = {
        let (_, mut sm) = db.group(5);
        sm.apply([membership(1, 1, &[1]), set(1, 2, "a", "1")])
            .await
            .unwrap();
        let built = build_snapshot(&mut sm).await;
        assert!(sm.has_stored_snapshot());
        built.meta
    };

    // --- newer than the durable machine's state: imported, synced, and the copy deleted
    let (_, mut sm) = db.durable_group(5);
    assert_eq!(sm.applied_state().await.unwrap().0, built.last_log_id);
    assert!(!sm.has_stored_snapshot());
    assert_eq!(
        DurableKv::open(&db.machine_file(5)).kv.data.get("a"),
        Some(&"1".to_owned())
    );
}

#[tokio::test]
async fn groups_in_one_database_are_isolated() {
    let db = TempLogDb::new(LogDbOptions::default());
    let mut one = db.log_db.group::<TestConfig>(1);
    let mut two = db.log_db.group::<TestConfig>(2);

    // --- interleaved logs, a vote on one group only
    one.blocking_append((1..=4).map(|i| set(1, i, "one", "x")))
        .await
        .unwrap();
    two.blocking_append((1..=6).map(|i| set(2, i, "two", "y")))
        .await
        .unwrap();
    one.save_vote(&Vote::new(1, 1)).await.unwrap();
    assert_eq!(two.read_vote().await.unwrap(), None);

    // --- truncating one and purging the other touch only their own rows
    one.truncate(log_id(1, 1, 3)).await.unwrap();
    two.purge(log_id(2, 1, 2)).await.unwrap();
    assert_eq!(
        indexes(&one.try_get_log_entries(..).await.unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        indexes(&two.try_get_log_entries(..).await.unwrap()),
        vec![3, 4, 5, 6]
    );
    assert_eq!(one.get_log_state().await.unwrap().last_purged_log_id, None);
    assert_eq!(
        two.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 1, 6))
    );

    // --- removing a group leaves the other intact, and keeps its vote (no longer committed:
    // a returning replica must win an election before it leads) and last log id
    assert!(!two.ever_hosted().unwrap(), "group 2 never saved a vote");
    let vote = Vote::new_committed(3, 1);
    one.save_vote(&vote).await.unwrap();
    assert!(one.ever_hosted().unwrap());
    db.log_db.remove_group::<TestConfig>(1).await.unwrap();
    assert!(one.try_get_log_entries(..).await.unwrap().is_empty());
    assert_eq!(one.get_log_state().await.unwrap().last_log_id, None);
    assert_eq!(one.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert!(one.ever_hosted().unwrap());
    assert_eq!(one.vote_floor().unwrap(), Some(log_id(1, 1, 2)));
    assert_eq!(two.try_get_log_entries(..).await.unwrap().len(), 4);
    assert_eq!(two.vote_floor().unwrap(), None);
    // A second removal with an empty log keeps the floor.
    db.log_db.remove_group::<TestConfig>(1).await.unwrap();
    assert_eq!(one.vote_floor().unwrap(), Some(log_id(1, 1, 2)));
}

/// Appends one entry to each of `groups` groups concurrently, `rounds` times; returns the
/// database's stats.
async fn concurrent_appends(
    options: LogDbOptions,
    groups: u64,
    rounds: u64,
) -> super::log_store::LogDbStats {
    let db = TempLogDb::new(options);
    let mut stores: Vec<GroupLogStore<TestConfig>> =
        (0..groups).map(|g| db.log_db.group(g)).collect();
    for index in 1..=rounds {
        let appends = stores
            .iter_mut()
            .map(|store| store.blocking_append([set(1, index, "k", "v")]));
        for result in join_all(appends).await {
            result.unwrap();
        }
    }
    for store in &mut stores {
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 1, rounds))
        );
    }
    db.log_db.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_with_group_commit() {
    let stats = concurrent_appends(options(true), 16, 8).await;
    assert_eq!(stats.appends, 128);
    assert_eq!(stats.entries, 128);
    assert!(stats.commits < stats.appends, "no batching: {stats:?}");
    assert_eq!(stats.failed_commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_append_commits_alone_without_group_commit() {
    let stats = concurrent_appends(options(false), 4, 4).await;
    assert_eq!(stats.appends, 16);
    assert_eq!(stats.commits, stats.requests);
}

#[tokio::test]
async fn committed_id_saves_ride_along_with_other_writes_and_survive_reopen() {
    let TempLogDb { dir, log_db } = TempLogDb::new(LogDbOptions::default());
    let mut log = log_db.group::<TestConfig>(1);

    // --- a committed-id save alone waits, readable at once, without a transaction
    log.blocking_append([set(1, 1, "k", "v")]).await.unwrap();
    log.save_committed(Some(log_id(1, 1, 1))).await.unwrap();
    wait_for_stats(&log_db, |s| s.held_saves == 1).await;
    assert_eq!(log_db.stats().commits, 1);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 1)));

    // --- the next append carries it
    log.blocking_append([set(1, 2, "k", "w")]).await.unwrap();
    let stats = log_db.stats();
    assert_eq!((stats.commits, stats.requests), (2, 3));
    drop((log, log_db));
    let log_db = LogDb::open(dir.path().join(TempLogDb::FILE), LogDbOptions::default()).unwrap();
    let mut log = log_db.group::<TestConfig>(1);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 1)));

    // --- closing the database writes a save that is still waiting
    log.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
    wait_for_stats(&log_db, |s| s.held_saves == 1).await;
    drop((log, log_db));
    let log_db = LogDb::open(dir.path().join(TempLogDb::FILE), LogDbOptions::default()).unwrap();
    let mut log = log_db.group::<TestConfig>(1);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 2)));
}

/// Waits until the writer's counters satisfy `done`.
async fn wait_for_stats(log_db: &LogDb, done: impl Fn(&LogDbStats) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done(&log_db.stats()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never got there: {:?}",
            log_db.stats()
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn zero_max_batch_is_refused() {
    let options = LogDbOptions {
        max_batch: 0,
        ..LogDbOptions::default()
    };
    assert!(options.validate().is_err());
}
