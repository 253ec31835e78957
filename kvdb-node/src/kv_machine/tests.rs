//! Unit tests of the state machine over the in-memory storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvdb_core::storage::MemoryStorage;
use openraft::{CommittedLeaderId, EntryPayload, LogId};

use super::*;
use crate::command::WriteId;

/// Applies `entries` as the Raft state machine store does: stage, then wait for the commit.
fn apply(machine: &mut KvMachine, entries: Vec<Entry>) -> Vec<CommandResult> {
    let applied = Machine::apply(machine, entries).unwrap();
    if let Some(commit) = applied.commit {
        futures::executor::block_on(commit).unwrap();
    }
    applied.responses
}

/// The version of the only write of the entry at `index`.
fn ver(index: u64) -> Version {
    write_version(index, 0)
}

const NOW: u64 = 1_000_000;

struct Fixture {
    storage: Arc<MemoryStorage>,
    machine: KvMachine,
    next_index: u64,
}

impl Fixture {
    fn new() -> Self {
        let storage = Arc::new(MemoryStorage::new());
        let machine = KvMachine::open(storage.clone()).unwrap();
        Self {
            storage,
            machine,
            next_index: 1,
        }
    }

    fn entry(&mut self, payload: EntryPayload<crate::raft_types::ShardRaftConfig>) -> Entry {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), self.next_index);
        self.next_index += 1;
        Entry { log_id, payload }
    }

    fn run(&mut self, now_ms: u64, op: Op) -> CommandResult {
        let entry = self.entry(EntryPayload::Normal(Command { now_ms, op }));
        apply(&mut self.machine, vec![entry]).remove(0)
    }

    fn value(&self, key: &[u8], now_ms: u64) -> Option<StoredValue> {
        self.storage.get(key).unwrap().filter(|v| v.is_live(now_ms))
    }
}

fn put(key: &str, value: &str) -> Put {
    Put {
        key: key.into(),
        value: value.into(),
        expire_at_ms: None,
        if_version_equals: None,
        if_not_exists: false,
        write_id: None,
    }
}

fn delete(key: &str) -> Delete {
    Delete {
        key: key.into(),
        if_version_equals: None,
        write_id: None,
    }
}

fn written(v: u64) -> CommandResult {
    CommandResult::Put {
        applied: true,
        version: ver(v),
    }
}

fn refused(v: u64) -> CommandResult {
    CommandResult::Put {
        applied: false,
        version: ver(v),
    }
}

#[test]
fn a_put_is_versioned_by_its_log_index() {
    let mut f = Fixture::new();
    assert_eq!(f.run(NOW, Op::Put(put("k", "a"))), written(1));
    assert_eq!(f.run(NOW, Op::Put(put("k", "b"))), written(2));
    let v = f.value(b"k", NOW).unwrap();
    assert_eq!((v.value.as_slice(), v.version), (&b"b"[..], ver(2)));
}

#[test]
fn if_version_equals_applies_only_on_the_current_version() {
    let mut f = Fixture::new();
    f.run(NOW, Op::Put(put("k", "a")));
    let stale = Put {
        if_version_equals: Some(ver(7)),
        ..put("k", "b")
    };
    assert_eq!(f.run(NOW, Op::Put(stale)), refused(1));
    let fresh = Put {
        if_version_equals: Some(ver(1)),
        ..put("k", "c")
    };
    assert_eq!(f.run(NOW, Op::Put(fresh)), written(3));
    assert_eq!(f.value(b"k", NOW).unwrap().value, b"c");
}

#[test]
fn version_zero_means_absent() {
    let mut f = Fixture::new();
    let create = Put {
        if_version_equals: Some(ver(0)),
        ..put("k", "a")
    };
    assert_eq!(f.run(NOW, Op::Put(create.clone())), written(1));
    assert_eq!(f.run(NOW, Op::Put(create)), refused(1));
}

#[test]
fn if_not_exists_holds_for_absent_and_expired_keys() {
    let mut f = Fixture::new();
    let create = Put {
        if_not_exists: true,
        ..put("k", "a")
    };
    assert_eq!(f.run(NOW, Op::Put(create.clone())), written(1));
    assert_eq!(f.run(NOW, Op::Put(create.clone())), refused(1));
    let short = Put {
        expire_at_ms: Some(NOW + 10),
        ..put("t", "a")
    };
    f.run(NOW, Op::Put(short));
    let create_t = Put {
        if_not_exists: true,
        ..put("t", "b")
    };
    assert_eq!(f.run(NOW + 5, Op::Put(create_t.clone())), refused(3));
    assert_eq!(f.run(NOW + 10, Op::Put(create_t)), written(5));
}

#[test]
fn expired_values_read_as_absent() {
    let mut f = Fixture::new();
    let short = Put {
        expire_at_ms: Some(NOW + 100),
        ..put("k", "a")
    };
    f.run(NOW, Op::Put(short));
    assert!(f.value(b"k", NOW + 99).is_some());
    assert!(f.value(b"k", NOW + 100).is_none());
    // An expired key has version 0 for conditions.
    let cas = Put {
        if_version_equals: Some(ver(0)),
        ..put("k", "b")
    };
    assert_eq!(f.run(NOW + 100, Op::Put(cas)), written(2));
}

#[test]
fn deletes_report_existence_and_honour_conditions() {
    let mut f = Fixture::new();
    f.run(NOW, Op::Put(put("k", "a")));
    let wrong = Delete {
        if_version_equals: Some(ver(9)),
        ..delete("k")
    };
    let refused = CommandResult::Delete {
        applied: false,
        existed: true,
        version: ver(1),
    };
    assert_eq!(f.run(NOW, Op::Delete(wrong)), refused);
    let gone = CommandResult::Delete {
        applied: true,
        existed: true,
        version: ver(3),
    };
    assert_eq!(f.run(NOW, Op::Delete(delete("k"))), gone);
    assert!(f.storage.get(b"k").unwrap().is_none());
    let absent = CommandResult::Delete {
        applied: true,
        existed: false,
        version: ver(4),
    };
    assert_eq!(f.run(NOW, Op::Delete(delete("k"))), absent);
}

#[test]
fn a_duplicate_write_returns_its_first_result_without_applying() {
    let mut f = Fixture::new();
    let id = WriteId {
        client_id: "c1".into(),
        sequence: 1,
        settled_below: 0,
    };
    let first = Put {
        write_id: Some(id.clone()),
        ..put("k", "a")
    };
    assert_eq!(f.run(NOW, Op::Put(first)), written(1));
    f.run(NOW, Op::Put(put("k", "other")));
    let retry = Put {
        write_id: Some(id),
        ..put("k", "a")
    };
    assert_eq!(f.run(NOW, Op::Put(retry)), written(1));
    assert_eq!(f.value(b"k", NOW).unwrap().value, b"other");
}

#[test]
fn purge_removes_only_the_expired_version_it_names() {
    let mut f = Fixture::new();
    let short = |k: &str| Put {
        expire_at_ms: Some(NOW + 10),
        ..put(k, "a")
    };
    f.run(NOW, Op::Put(short("a")));
    f.run(NOW, Op::Put(short("b")));
    // "b" is rewritten after the leader saw it expire.
    f.run(NOW + 20, Op::Put(put("b", "fresh")));
    let keys = vec![(b"a".to_vec(), ver(1)), (b"b".to_vec(), ver(2))];
    let result = f.run(NOW + 20, Op::Purge { keys });
    assert_eq!(result, CommandResult::Purge { purged: 1 });
    assert!(f.storage.get(b"a").unwrap().is_none());
    assert_eq!(f.value(b"b", NOW + 20).unwrap().value, b"fresh");
    // A purge proposed before expiry (clock skew) removes nothing.
    f.run(NOW, Op::Put(short("c")));
    let early = vec![(b"c".to_vec(), ver(5))];
    let result = f.run(NOW + 5, Op::Purge { keys: early });
    assert_eq!(result, CommandResult::Purge { purged: 0 });
}

#[test]
fn commands_in_one_run_see_each_other_and_state_survives_reopen() {
    let mut f = Fixture::new();
    let a = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(put("k", "a")),
    }));
    let cas = Put {
        if_version_equals: Some(ver(1)),
        write_id: Some(WriteId {
            client_id: "c".into(),
            sequence: 9,
            settled_below: 0,
        }),
        ..put("k", "b")
    };
    let b = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(cas.clone()),
    }));
    let blank = f.entry(EntryPayload::Blank);
    let results = apply(&mut f.machine, vec![a, b, blank]);
    assert_eq!(results, vec![written(1), written(2), CommandResult::None]);

    let mut reopened = KvMachine::open(f.storage.clone()).unwrap();
    assert_eq!(reopened.applied_state().0.map(|l| l.index), Some(3));
    let retry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 4),
        payload: EntryPayload::Normal(Command {
            now_ms: NOW,
            op: Op::Put(cas),
        }),
    };
    assert_eq!(apply(&mut reopened, vec![retry]), vec![written(2)]);
}

#[test]
fn export_then_import_restores_data_and_sessions() {
    let mut f = Fixture::new();
    let first = Put {
        write_id: Some(WriteId {
            client_id: "c".into(),
            sequence: 1,
            settled_below: 0,
        }),
        expire_at_ms: Some(NOW + 50),
        ..put("k", "")
    };
    f.run(NOW, Op::Put(first.clone()));
    let image = f.machine.export().unwrap();

    let mut g = Fixture::new();
    g.run(NOW, Op::Put(put("junk", "x")));
    let (applied, membership) = f.machine.applied_state();
    g.machine.import(applied, membership, &image).unwrap();
    assert!(g.storage.get(b"junk").unwrap().is_none());
    let v = g.value(b"k", NOW).unwrap();
    assert_eq!((v.value.len(), v.expire_at_ms), (0, Some(NOW + 50)));
    assert_eq!(g.machine.applied_state(), f.machine.applied_state());
    g.next_index = 2;
    assert_eq!(g.run(NOW, Op::Put(first.clone())), written(1));
    // The sessions were installed with the data, not only kept in memory.
    g.machine = KvMachine::open(g.storage.clone()).unwrap();
    assert_eq!(g.run(NOW, Op::Put(first)), written(1));
}

#[test]
fn a_batch_applies_in_order_with_a_version_per_write_and_dedup_inside() {
    let mut f = Fixture::new();
    let id = WriteId {
        client_id: "c".into(),
        sequence: 1,
        settled_below: 0,
    };
    let tagged = Put {
        write_id: Some(id),
        ..put("k", "a")
    };
    let cas = Put {
        if_version_equals: Some(write_version(1, 0)),
        ..put("k", "b")
    };
    let batch = Op::Batch(
        [Op::Put(tagged.clone()), Op::Put(cas), Op::Put(tagged)]
            .into_iter()
            .map(|op| Command { now_ms: NOW, op })
            .collect(),
    );
    let first = CommandResult::Put {
        applied: true,
        version: write_version(1, 0),
    };
    let second = CommandResult::Put {
        applied: true,
        version: write_version(1, 1),
    };
    // The retry of the first write, third in the batch, answers the first result.
    assert_eq!(
        f.run(NOW, batch),
        CommandResult::Batch(vec![first.clone(), second, first])
    );
    let v = f.value(b"k", NOW).unwrap();
    assert_eq!(
        (v.value.as_slice(), v.version),
        (&b"b"[..], write_version(1, 1))
    );
    assert!(write_version(1, 1) < ver(2));
}

#[test]
fn applies_run_inline_unless_they_write_many_keys() {
    let mut f = Fixture::new();
    let small = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(put("k", "v")),
    }));
    assert!(!Machine::apply_blocks(
        &f.machine,
        std::slice::from_ref(&small)
    ));
    let many = (0..=INLINE_APPLY_WRITES)
        .map(|i| Command {
            now_ms: NOW,
            op: Op::Put(put(&format!("k{i}"), "v")),
        })
        .collect();
    let big = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Batch(many),
    }));
    assert!(Machine::apply_blocks(&f.machine, &[big]));
}

#[test]
fn the_raft_apply_hands_its_batch_to_the_storage_commit() {
    let storage = Arc::new(CountingStorage::default());
    let mut machine = KvMachine::open(storage.clone()).unwrap();
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
        payload: EntryPayload::Normal(Command {
            now_ms: NOW,
            op: Op::Put(put("k", "v")),
        }),
    };
    let applied = Machine::apply(&mut machine, vec![entry]).unwrap();
    assert_eq!(applied.responses, [written(1)]);
    assert_eq!(storage.commits.load(Ordering::Relaxed), 1);
    futures::executor::block_on(applied.commit.expect("a write to commit")).unwrap();
    assert_eq!(storage.get(b"k").unwrap().unwrap().version, ver(1));
}

/// Counts reads and commits; everything goes to the wrapped storage.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    gets: AtomicUsize,
    get_manys: AtomicUsize,
    commits: AtomicUsize,
    /// Auxiliary rows read.
    aux_rows: AtomicUsize,
}

impl Storage for CountingStorage {
    fn get(&self, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<StoredValue>>, StorageError> {
        self.get_manys.fetch_add(1, Ordering::Relaxed);
        self.inner.get_many(keys)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.apply(batch)
    }
    fn meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.meta()
    }
    fn aux(&self) -> Result<kvdb_core::storage::AuxRows, StorageError> {
        self.inner.aux()
    }
    fn get_with_aux(
        &self,
        key: Option<&[u8]>,
        range: kvdb_core::storage::AuxBounds<'_>,
        limit: usize,
    ) -> Result<(Option<StoredValue>, kvdb_core::storage::AuxRows), StorageError> {
        let read = self.inner.get_with_aux(key, range, limit)?;
        self.aux_rows.fetch_add(read.1.len(), Ordering::Relaxed);
        Ok(read)
    }
    fn export(&self) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        self.inner.export()
    }
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
        self.inner.scan(after, limit)
    }
    fn install(
        &self,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Option<Vec<u8>>,
        aux: kvdb_core::storage::AuxRows,
    ) -> Result<(), StorageError> {
        self.inner.install(entries, meta, aux)
    }
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        self.inner.expired(now_ms, limit)
    }
    fn len(&self) -> Result<u64, StorageError> {
        self.inner.len()
    }
    fn clear(&self) -> Result<(), StorageError> {
        self.inner.clear()
    }
    fn sync(&self) -> Result<(), StorageError> {
        self.inner.sync()
    }
    fn commit(&self, batch: WriteBatch) -> kvdb_core::storage::Commit {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.commit(batch)
    }
}

/// A batch of `ops`, each a command of its own, as the write queue proposes them.
fn batch(ops: Vec<Op>) -> Command {
    let commands = ops
        .into_iter()
        .map(|op| Command { now_ms: NOW, op })
        .collect();
    Command {
        now_ms: NOW,
        op: Op::Batch(commands),
    }
}

/// A machine over counting storage that holds "a" = "old" at version 7.
fn counting_machine() -> (Arc<CountingStorage>, KvMachine, Fixture) {
    let storage = Arc::new(CountingStorage::default());
    storage
        .inner
        .apply(WriteBatch::new().put("a", StoredValue::new("old", Version(7))))
        .unwrap();
    let machine = KvMachine::open(storage.clone()).unwrap();
    (storage, machine, Fixture::new())
}

#[test]
fn a_run_reads_every_key_it_touches_in_one_call() {
    let (storage, mut machine, mut fixture) = counting_machine();
    let cas = Put {
        if_version_equals: Some(Version(7)),
        ..put("a", "new")
    };
    let batch = batch(vec![
        Op::Put(cas),
        Op::Put(put("b", "1")),
        Op::Delete(delete("a")),
    ]);
    let first = fixture.entry(EntryPayload::Normal(batch));
    let second = fixture.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(put("c", "2")),
    }));
    let results = apply(&mut machine, vec![first, second]);

    // --- the CAS saw the stored version, the delete saw the CAS's write
    let CommandResult::Batch(batch) = &results[0] else {
        panic!("expected a batch result, got {results:?}");
    };
    assert_eq!(batch[0], written(1));
    let CommandResult::Delete { existed, .. } = batch[2] else {
        panic!("expected a delete result, got {batch:?}");
    };
    assert!(existed);
    assert!(storage.get(b"a").unwrap().is_none());
    assert_eq!(storage.get(b"c").unwrap().unwrap().value, b"2");

    // --- one read for the whole run, none per key (the two gets above are this test's)
    let order = Ordering::Relaxed;
    assert_eq!(storage.get_manys.load(order), 1);
    assert_eq!(storage.gets.load(order), 2);
}

#[test]
fn unconditional_puts_read_nothing_and_later_reads_see_them() {
    let (storage, mut machine, mut fixture) = counting_machine();
    let puts = fixture.entry(EntryPayload::Normal(batch(vec![
        Op::Put(put("a", "new")),
        Op::Put(put("b", "1")),
    ])));
    let results = apply(&mut machine, vec![puts]);
    let CommandResult::Batch(answers) = &results[0] else {
        panic!("expected a batch result, got {results:?}");
    };
    assert!(
        answers
            .iter()
            .all(|r| matches!(r, CommandResult::Put { applied: true, .. }))
    );
    let order = Ordering::Relaxed;
    assert_eq!(storage.get_manys.load(order), 0, "nothing prefetched");
    assert_eq!(storage.gets.load(order), 0, "nothing read");

    // --- a CAS in a later run, and an only-if-absent put in the same run as a write of its
    // key, see the unconditional writes
    let CommandResult::Put { version, .. } = answers[0] else {
        unreachable!()
    };
    let cas = Put {
        if_version_equals: Some(version),
        ..put("a", "cas")
    };
    let absent = Put {
        if_not_exists: true,
        ..put("c", "first")
    };
    let run = fixture.entry(EntryPayload::Normal(batch(vec![
        Op::Put(cas),
        Op::Put(put("c", "written")),
        Op::Put(absent),
    ])));
    let results = apply(&mut machine, vec![run]);
    let CommandResult::Batch(answers) = &results[0] else {
        panic!("expected a batch result, got {results:?}");
    };
    assert!(
        matches!(answers[0], CommandResult::Put { applied: true, .. }),
        "{answers:?}"
    );
    assert!(
        matches!(answers[2], CommandResult::Put { applied: false, .. }),
        "{answers:?}"
    );
    assert_eq!(storage.get(b"a").unwrap().unwrap().value, b"cas");
    assert_eq!(storage.get(b"c").unwrap().unwrap().value, b"written");
}

/// Creates split-off shards in memory, as the node's `Nursery` does in its database.
#[derive(Default)]
struct MemoryCreator {
    shards: std::sync::Mutex<std::collections::HashMap<kvdb_core::ShardId, Arc<MemoryStorage>>>,
}

impl ShardCreator for MemoryCreator {
    fn create(
        &self,
        shard: kvdb_core::ShardId,
        entries: Vec<(Vec<u8>, StoredValue)>,
        meta: Vec<u8>,
        aux: kvdb_core::storage::AuxRows,
    ) -> Result<bool, StorageError> {
        let mut shards = self.shards.lock().unwrap();
        if shards.contains_key(&shard) {
            return Ok(false);
        }
        let storage = Arc::new(MemoryStorage::new());
        storage.install(entries, Some(meta), aux)?;
        shards.insert(shard, storage);
        Ok(true)
    }
}

/// A fixture whose machine creates the shards its splits carve out, in memory.
fn splitting_fixture() -> (Arc<MemoryCreator>, Fixture) {
    let creator = Arc::new(MemoryCreator::default());
    let mut f = Fixture::new();
    f.machine = KvMachine::open(f.storage.clone())
        .unwrap()
        .with_creator(creator.clone());
    (creator, f)
}

fn key_in(range: std::ops::RangeInclusive<u16>, skip: usize) -> String {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| range.contains(&slot(k.as_bytes()).0))
        .nth(skip)
        .unwrap()
}

fn split_at(at: u16, child: u64) -> Op {
    Op::Split(crate::command::Split {
        children: vec![crate::command::SplitChild {
            shard: kvdb_core::ShardId(child),
            slot_start: kvdb_core::Slot(at),
            slot_end: kvdb_core::Slot(kvdb_core::SLOT_COUNT - 1),
        }],
    })
}

fn id(sequence: u64) -> Option<WriteId> {
    Some(WriteId {
        client_id: "c".into(),
        sequence,
        settled_below: 0,
    })
}

#[test]
fn a_split_hands_the_upper_slots_with_versions_ttls_and_sessions_to_the_new_shard() {
    let (creator, mut f) = splitting_fixture();
    let (low, high) = (key_in(0..=8191, 0), key_in(8192..=16383, 0));
    let expiring = key_in(8192..=16383, 1);
    f.run(NOW, Op::Put(put(&low, "l")));
    let first = Put {
        write_id: id(1),
        ..put(&high, "h")
    };
    assert_eq!(f.run(NOW, Op::Put(first.clone())), written(2));
    let ttl = Put {
        expire_at_ms: Some(NOW + 60_000),
        ..put(&expiring, "t")
    };
    f.run(NOW, Op::Put(ttl));

    let created = f.run(NOW, split_at(8192, 9));
    assert_eq!(
        created,
        CommandResult::Split {
            created: vec![kvdb_core::ShardId(9)]
        }
    );
    // The parent keeps its lower slots only, and serves nothing else.
    assert_eq!(f.value(low.as_bytes(), NOW).unwrap().value, b"l");
    assert!(f.storage.get(high.as_bytes()).unwrap().is_none());
    assert!(!f.machine.fence().serves(slot(high.as_bytes())));
    assert!(f.machine.fence().serves(slot(low.as_bytes())));
    assert_eq!(
        f.run(NOW, Op::Put(put(&high, "late"))),
        CommandResult::NotOwned
    );
    assert!(f.storage.get(high.as_bytes()).unwrap().is_none());

    // The new shard starts at the split's index with the keys, versions, expiries and
    // sessions of that point.
    let storage = creator.shards.lock().unwrap()[&kvdb_core::ShardId(9)].clone();
    let mut child = KvMachine::open(storage.clone()).unwrap();
    let (applied, _) = child.applied_state();
    assert_eq!(applied, Some(LogId::new(CommittedLeaderId::new(0, 0), 4)));
    let h = storage.get(high.as_bytes()).unwrap().unwrap();
    assert_eq!((h.value.as_slice(), h.version), (&b"h"[..], ver(2)));
    let t = storage.get(expiring.as_bytes()).unwrap().unwrap();
    assert_eq!(t.expire_at_ms, Some(NOW + 60_000));
    assert!(storage.get(low.as_bytes()).unwrap().is_none());
    assert!(!child.fence().serves(kvdb_core::Slot(8191)));
    // A retry of a write the parent applied is answered from the copied session.
    let retry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 2), 5),
        payload: EntryPayload::Normal(Command {
            now_ms: NOW,
            op: Op::Put(first),
        }),
    };
    assert_eq!(apply(&mut child, vec![retry]), vec![written(2)]);
}

#[test]
fn a_split_includes_writes_earlier_in_its_run_and_refuses_later_ones() {
    let (creator, mut f) = splitting_fixture();
    let high = key_in(8192..=16383, 0);
    let before = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(put(&high, "before")),
    }));
    let split = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: split_at(8192, 9),
    }));
    let after = f.entry(EntryPayload::Normal(Command {
        now_ms: NOW,
        op: Op::Put(put(&high, "after")),
    }));
    let results = apply(&mut f.machine, vec![before, split, after]);
    assert_eq!(results[2], CommandResult::NotOwned);
    let storage = creator.shards.lock().unwrap()[&kvdb_core::ShardId(9)].clone();
    assert_eq!(
        storage.get(high.as_bytes()).unwrap().unwrap().value,
        b"before"
    );
    assert!(f.storage.get(high.as_bytes()).unwrap().is_none());
}

#[test]
fn a_split_applied_twice_or_outside_the_range_changes_nothing() {
    let (_creator, mut f) = splitting_fixture();
    let mid = key_in(4096..=8191, 0);
    f.run(NOW, Op::Put(put(&mid, "m")));
    f.run(NOW, split_at(8192, 9));
    let nothing = CommandResult::Split {
        created: Vec::new(),
    };
    assert_eq!(f.run(NOW, split_at(8192, 9)), nothing);
    // Slot 0 can never be split off: a shard keeps at least its first slot.
    assert_eq!(f.run(NOW, split_at(0, 10)), nothing);
    // Children must reach the end of the range the shard serves.
    let short = Op::Split(crate::command::Split {
        children: vec![crate::command::SplitChild {
            shard: kvdb_core::ShardId(11),
            slot_start: kvdb_core::Slot(4096),
            slot_end: kvdb_core::Slot(5000),
        }],
    });
    assert_eq!(f.run(NOW, short), nothing);
    assert_eq!(f.value(mid.as_bytes(), NOW).unwrap().value, b"m");
    assert_eq!(f.machine.fence().range().end, kvdb_core::Slot(8191));
    // The narrowed range survives a reopen and a snapshot.
    let reopened = KvMachine::open(f.storage.clone()).unwrap();
    assert_eq!(reopened.fence().range().end, kvdb_core::Slot(8191));
    let image = f.machine.export().unwrap();
    let mut other = KvMachine::open(Arc::new(MemoryStorage::new())).unwrap();
    let (applied, membership) = f.machine.applied_state();
    other.import(applied, membership, &image).unwrap();
    assert_eq!(other.fence().range().end, kvdb_core::Slot(8191));
}

#[test]
fn metadata_and_snapshots_written_before_splits_still_read() {
    #[derive(Serialize)]
    struct Old {
        last_applied: Option<LogId<RaftId>>,
        membership: StoredMembership<RaftId, ShardNode>,
    }
    let old = Old {
        last_applied: Some(LogId::new(CommittedLeaderId::new(3, 1), 42)),
        membership: StoredMembership::default(),
    };
    let storage = Arc::new(MemoryStorage::new());
    storage
        .install(Vec::new(), Some(codec::encode(&old).unwrap()), Vec::new())
        .unwrap();
    let machine = KvMachine::open(storage).unwrap();
    assert_eq!(machine.applied_state().0.map(|l| l.index), Some(42));
    assert_eq!(machine.fence().range(), SlotRange::ALL);
}

#[test]
fn a_split_without_a_creator_changes_nothing() {
    let mut f = Fixture::new();
    let high = key_in(8192..=16383, 0);
    f.run(NOW, Op::Put(put(&high, "h")));
    f.run(NOW, split_at(8192, 9));
    assert_eq!(f.value(high.as_bytes(), NOW).unwrap().value, b"h");
    assert_eq!(f.machine.fence().range(), SlotRange::ALL);
}

mod updates {
    use super::*;
    use crate::command::{
        ExpireWhen, ExpiryChange, HashUpdate, OnlyIf, UpdateAction, UpdateError, UpdateValue,
        Updated,
    };
    use kvdb_core::hash_value::HashValue;
    use kvdb_core::storage::ValueKind;

    fn update(key: &str, action: UpdateAction) -> Op {
        Op::Update(Update {
            key: key.into(),
            action,
            write_id: None,
            max_len: 16,
        })
    }

    fn done(f: &mut Fixture, now: u64, key: &str, action: UpdateAction) -> Updated {
        match f.run(now, update(key, action)) {
            CommandResult::Update(Ok(updated)) => updated,
            other => panic!("{other:?}"),
        }
    }

    fn failed(f: &mut Fixture, key: &str, action: UpdateAction) -> UpdateError {
        match f.run(NOW, update(key, action)) {
            CommandResult::Update(Err(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    fn put_ttl(f: &mut Fixture, key: &str, value: &str, at: Option<u64>) {
        let p = Put {
            expire_at_ms: at,
            ..put(key, value)
        };
        f.run(NOW, Op::Put(p));
    }

    fn set(value: &str, only_if: OnlyIf, return_old: bool, expiry: ExpiryChange) -> UpdateAction {
        UpdateAction::Set {
            value: value.into(),
            expiry,
            only_if,
            return_old,
        }
    }

    fn expire(at_ms: Option<u64>, when: ExpireWhen) -> UpdateAction {
        UpdateAction::Expire { at_ms, when }
    }

    fn hset(pairs: &[(&str, &str)], only_new: bool) -> UpdateAction {
        let pairs = pairs
            .iter()
            .map(|(f, v)| ((*f).into(), (*v).into()))
            .collect();
        UpdateAction::Hash(HashUpdate::Set { pairs, only_new })
    }

    #[test]
    fn hashes_change_in_place_keep_their_ttl_and_vanish_when_empty() {
        let mut f = Fixture::new();
        let added = done(&mut f, NOW, "h", hset(&[("f", "1")], false));
        assert_eq!(
            (added.value, added.version),
            (UpdateValue::Integer(1), ver(1))
        );
        assert_eq!(f.value(b"h", NOW).unwrap().kind, ValueKind::Hash);
        // HSETNX of a present field writes nothing, so the version stays.
        let same = done(&mut f, NOW, "h", hset(&[("f", "2")], true));
        assert_eq!((same.applied, same.version), (false, ver(1)));
        assert_eq!(same.value, UpdateValue::Integer(0));
        let expired = done(
            &mut f,
            NOW,
            "h",
            expire(Some(NOW + 100), ExpireWhen::Always),
        );
        assert!(expired.applied && expired.old.is_none());
        let incr = UpdateAction::Hash(HashUpdate::IncrBy {
            field: b"f".to_vec(),
            by: 4,
        });
        assert_eq!(done(&mut f, NOW, "h", incr).value, UpdateValue::Integer(5));
        let v = f.value(b"h", NOW).unwrap();
        assert_eq!((v.kind, v.expire_at_ms), (ValueKind::Hash, Some(NOW + 100)));
        let pairs = HashValue::decode(&v.value).unwrap().into_pairs();
        assert_eq!(pairs, [(b"f".to_vec(), b"5".to_vec())]);
        // The limit (16 bytes here) bounds the whole encoded hash.
        let grown = failed(&mut f, "h", hset(&[("g", "12345")], false));
        assert!(matches!(grown, UpdateError::TooLarge { .. }), "{grown:?}");
        let del = UpdateAction::Hash(HashUpdate::Del(vec![b"f".to_vec(), b"x".to_vec()]));
        assert_eq!(
            done(&mut f, NOW, "h", del.clone()).value,
            UpdateValue::Integer(1)
        );
        assert!(f.value(b"h", NOW).is_none());
        let nothing = done(&mut f, NOW, "h", del);
        assert_eq!(
            (nothing.applied, nothing.value),
            (false, UpdateValue::Integer(0))
        );
    }

    #[test]
    fn string_commands_refuse_hashes_and_hash_commands_refuse_strings() {
        let mut f = Fixture::new();
        done(&mut f, NOW, "h", hset(&[("f", "1")], false));
        let always = ExpiryChange::At(None);
        for action in [
            UpdateAction::IncrBy(1),
            UpdateAction::IncrByLongDouble("1".into()),
            UpdateAction::Append(b"x".to_vec()),
            UpdateAction::SetRange {
                offset: 0,
                bytes: b"x".to_vec(),
            },
            UpdateAction::GetDel,
            UpdateAction::GetEx {
                at_ms: Some(NOW + 5),
                when: ExpireWhen::Always,
            },
            set("x", OnlyIf::Always, true, always),
        ] {
            assert_eq!(failed(&mut f, "h", action), UpdateError::WrongType);
        }
        f.run(NOW, Op::Put(put("s", "v")));
        assert_eq!(f.value(b"h", NOW).unwrap().expire_at_ms, None);
        let refused = failed(&mut f, "s", hset(&[("f", "1")], false));
        assert_eq!(refused, UpdateError::WrongType);
        // SET without GET replaces a hash with a string.
        done(&mut f, NOW, "h", set("x", OnlyIf::Exists, false, always));
        let v = f.value(b"h", NOW).unwrap();
        assert_eq!((v.kind, v.value), (ValueKind::String, b"x".to_vec()));
    }

    #[test]
    fn a_hash_survives_a_snapshot_with_its_kind_and_ttl() {
        let mut f = Fixture::new();
        done(&mut f, NOW, "h", hset(&[("f", "1")], false));
        done(
            &mut f,
            NOW,
            "h",
            expire(Some(NOW + 100), ExpireWhen::Always),
        );
        let image = f.machine.export().unwrap();
        let mut g = Fixture::new();
        let (applied, membership) = f.machine.applied_state();
        g.machine.import(applied, membership, &image).unwrap();
        assert_eq!(g.value(b"h", NOW), f.value(b"h", NOW));
        assert_eq!(g.value(b"h", NOW).unwrap().kind, ValueKind::Hash);
    }

    mod members;

    #[test]
    fn incr_by_counts_from_zero_and_keeps_the_ttl() {
        let mut f = Fixture::new();
        let incr = done(&mut f, NOW, "n", UpdateAction::IncrBy(5));
        assert_eq!(
            (incr.value, incr.version),
            (UpdateValue::Integer(5), ver(1))
        );
        put_ttl(&mut f, "n", "10", Some(NOW + 100));
        let incr = done(&mut f, NOW, "n", UpdateAction::IncrBy(-3));
        assert_eq!(incr.value, UpdateValue::Integer(7));
        let v = f.value(b"n", NOW).unwrap();
        assert_eq!((v.value, v.expire_at_ms), (b"7".to_vec(), Some(NOW + 100)));
    }

    #[test]
    fn incr_by_refuses_non_integers_and_overflow_and_writes_nothing() {
        let mut f = Fixture::new();
        f.run(NOW, Op::Put(put("s", "abc")));
        assert_eq!(
            failed(&mut f, "s", UpdateAction::IncrBy(1)),
            UpdateError::NotInteger
        );
        f.run(NOW, Op::Put(put("m", &i64::MAX.to_string())));
        assert_eq!(
            failed(&mut f, "m", UpdateAction::IncrBy(1)),
            UpdateError::Overflow
        );
        assert_eq!(f.value(b"m", NOW).unwrap().version, ver(3));
    }

    #[test]
    fn incr_by_float_adds_and_formats_like_redis() {
        let mut f = Fixture::new();
        f.run(NOW, Op::Put(put("x", "10.5")));
        let up = done(&mut f, NOW, "x", UpdateAction::IncrByFloat("0.1".into()));
        assert_eq!(up.value, UpdateValue::Float("10.6".into()));
        let up = done(&mut f, NOW, "y", UpdateAction::IncrByFloat("5.0e3".into()));
        assert_eq!(up.value, UpdateValue::Float("5000".into()));
        let bad = UpdateAction::IncrByFloat("abc".into());
        assert_eq!(failed(&mut f, "y", bad), UpdateError::NotFloat);
        let huge = UpdateAction::IncrByFloat("1e308".into());
        f.run(NOW, Op::Put(put("z", "1e308")));
        assert_eq!(failed(&mut f, "z", huge), UpdateError::NanOrInfinity);
    }

    #[test]
    fn incr_by_float_computes_in_redis_long_double_and_old_entries_replay_in_f64() {
        let mut f = Fixture::new();
        f.run(NOW, Op::Put(put("x", "0.1")));
        let up = done(
            &mut f,
            NOW,
            "x",
            UpdateAction::IncrByLongDouble("0.2".into()),
        );
        assert_eq!(up.value, UpdateValue::Float("0.3".into()));
        assert_eq!(f.value(b"x", NOW).unwrap().value, b"0.3");
        let huge = UpdateAction::IncrByLongDouble("1e4932".into());
        f.run(NOW, Op::Put(put("z", "1e4932")));
        assert_eq!(failed(&mut f, "z", huge), UpdateError::NanOrInfinity);
        let bad = UpdateAction::IncrByLongDouble("1 ".into());
        assert_eq!(failed(&mut f, "x", bad), UpdateError::NotFloat);
        // An entry logged before: the same sum, as f64 gave it when first applied.
        f.run(NOW, Op::Put(put("y", "0.1")));
        let up = done(&mut f, NOW, "y", UpdateAction::IncrByFloat("0.2".into()));
        assert_eq!(up.value, UpdateValue::Float("0.30000000000000004".into()));
    }

    #[test]
    fn append_and_setrange_grow_the_value_keep_the_ttl_and_respect_the_limit() {
        let mut f = Fixture::new();
        put_ttl(&mut f, "a", "ab", Some(NOW + 50));
        let up = done(&mut f, NOW, "a", UpdateAction::Append(b"cd".to_vec()));
        assert_eq!(up.value, UpdateValue::Length(4));
        let range = UpdateAction::SetRange {
            offset: 6,
            bytes: b"z".to_vec(),
        };
        assert_eq!(done(&mut f, NOW, "a", range).value, UpdateValue::Length(7));
        let v = f.value(b"a", NOW).unwrap();
        assert_eq!(
            (v.value, v.expire_at_ms),
            (b"abcd\0\0z".to_vec(), Some(NOW + 50))
        );
        let too_long = UpdateAction::Append(vec![b'x'; 10]);
        assert_eq!(
            failed(&mut f, "a", too_long),
            UpdateError::TooLarge { len: 17, max: 16 }
        );
        let empty = UpdateAction::SetRange {
            offset: 100,
            bytes: vec![],
        };
        let up = done(&mut f, NOW, "new", empty);
        assert_eq!((up.applied, up.value), (false, UpdateValue::Length(0)));
        assert!(f.value(b"new", NOW).is_none());
    }

    #[test]
    fn set_honours_xx_nx_get_and_keepttl() {
        let mut f = Fixture::new();
        let xx = set("v", OnlyIf::Exists, true, ExpiryChange::At(None));
        let up = done(&mut f, NOW, "k", xx.clone());
        assert_eq!((up.applied, up.old), (false, None));
        put_ttl(&mut f, "k", "old", Some(NOW + 70));
        let up = done(&mut f, NOW, "k", xx);
        assert_eq!((up.applied, up.old), (true, Some(b"old".to_vec())));
        // Without KEEPTTL the expiry goes.
        assert_eq!(f.value(b"k", NOW).unwrap().expire_at_ms, None);
        put_ttl(&mut f, "k", "old", Some(NOW + 70));
        done(
            &mut f,
            NOW,
            "k",
            set("w", OnlyIf::Always, false, ExpiryChange::Keep),
        );
        assert_eq!(f.value(b"k", NOW).unwrap().expire_at_ms, Some(NOW + 70));
        let nx = set("x", OnlyIf::Absent, true, ExpiryChange::At(None));
        let up = done(&mut f, NOW, "k", nx);
        assert_eq!((up.applied, up.old), (false, Some(b"w".to_vec())));
    }

    #[test]
    fn getdel_answers_the_value_and_removes_it() {
        let mut f = Fixture::new();
        f.run(NOW, Op::Put(put("k", "v")));
        let up = done(&mut f, NOW, "k", UpdateAction::GetDel);
        assert_eq!((up.applied, up.old), (true, Some(b"v".to_vec())));
        assert!(f.value(b"k", NOW).is_none());
        let up = done(&mut f, NOW, "k", UpdateAction::GetDel);
        assert_eq!((up.applied, up.old), (false, None));
    }

    #[test]
    fn expire_follows_redis_7_conditions_and_deletes_on_a_past_time() {
        let mut f = Fixture::new();
        let later = Some(NOW + 1_000);
        assert!(!done(&mut f, NOW, "k", expire(later, ExpireWhen::Always)).applied);
        f.run(NOW, Op::Put(put("k", "v")));
        // No expiry: GT fails, LT holds, XX fails, PERSIST changes nothing.
        assert!(!done(&mut f, NOW, "k", expire(later, ExpireWhen::Gt)).applied);
        assert!(!done(&mut f, NOW, "k", expire(later, ExpireWhen::Xx)).applied);
        assert!(!done(&mut f, NOW, "k", expire(None, ExpireWhen::Always)).applied);
        assert!(done(&mut f, NOW, "k", expire(later, ExpireWhen::Lt)).applied);
        assert_eq!(f.value(b"k", NOW).unwrap().expire_at_ms, later);
        assert!(!done(&mut f, NOW, "k", expire(later, ExpireWhen::Nx)).applied);
        assert!(done(&mut f, NOW, "k", expire(Some(NOW + 2_000), ExpireWhen::Gt)).applied);
        let persist = done(&mut f, NOW, "k", expire(None, ExpireWhen::Always));
        assert_eq!((persist.applied, persist.old), (true, Some(b"v".to_vec())));
        assert_eq!(f.value(b"k", NOW).unwrap().expire_at_ms, None);
        assert!(done(&mut f, NOW, "k", expire(Some(NOW), ExpireWhen::Always)).applied);
        assert!(f.storage.get(b"k").unwrap().is_none());
    }

    #[test]
    fn a_retried_update_applies_once_and_returns_its_first_result() {
        let mut f = Fixture::new();
        let incr = Op::Update(Update {
            key: b"n".to_vec(),
            action: UpdateAction::IncrBy(1),
            write_id: id(1),
            max_len: 16,
        });
        let first = f.run(NOW, incr.clone());
        assert_eq!(f.run(NOW, incr), first);
        assert_eq!(f.value(b"n", NOW).unwrap().value, b"1");
    }

    #[test]
    fn an_update_to_a_moved_slot_is_not_owned() {
        let mut f = Fixture::new();
        f.machine = KvMachine::open(f.storage.clone())
            .unwrap()
            .with_creator(Arc::new(MemoryCreator::default()));
        f.run(NOW, split_at(8192, 9));
        let key = key_in(8192..=16383, 0);
        let result = f.run(NOW, update(&key, UpdateAction::IncrBy(1)));
        assert_eq!(result, CommandResult::NotOwned);
    }
}

mod transactions {
    use super::*;
    use crate::command::{RenameOutcome, Txn, TxnOp, TxnOpResult, UpdateAction};

    fn txn(guards: &[(&str, Version)], ops: Vec<TxnOp>) -> Op {
        Op::Txn(Txn {
            guards: guards
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), *v))
                .collect(),
            ops,
            write_id: None,
        })
    }

    fn results(result: CommandResult) -> Option<Vec<TxnOpResult>> {
        match result {
            CommandResult::Txn(results) => results,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operations_see_each_other_and_share_the_entry_version() {
        let mut f = Fixture::new();
        let ops = vec![
            TxnOp::Put(put("{t}a", "1")),
            TxnOp::Update(Update {
                key: b"{t}a".to_vec(),
                action: UpdateAction::IncrBy(4),
                write_id: None,
                max_len: 16,
            }),
            TxnOp::Get(b"{t}a".to_vec()),
            TxnOp::Delete(delete("{t}b")),
        ];
        let done = results(f.run(NOW, txn(&[], ops))).expect("no guard, so applied");
        assert_eq!(done[0], TxnOpResult::Wrote(written(1)));
        assert_eq!(
            done[2],
            TxnOpResult::Got(Some((b"5".to_vec(), ver(1), None)))
        );
        assert!(matches!(
            done[3],
            TxnOpResult::Wrote(CommandResult::Delete { existed: false, .. })
        ));
        assert_eq!(f.value(b"{t}a", NOW).unwrap().value, b"5");
    }

    #[test]
    fn a_changed_guard_writes_nothing() {
        let mut f = Fixture::new();
        f.run(NOW, Op::Put(put("{t}a", "1")));
        // Watched at version 1, then written again at 2.
        f.run(NOW, Op::Put(put("{t}a", "2")));
        let stale = txn(&[("{t}a", ver(1))], vec![TxnOp::Put(put("{t}b", "x"))]);
        assert_eq!(results(f.run(NOW, stale)), None);
        assert!(f.value(b"{t}b", NOW).is_none());
        // Absent means version 0, and an expired key is absent.
        let fresh = txn(
            &[("{t}a", ver(2)), ("{t}c", Version(0))],
            vec![TxnOp::Put(put("{t}b", "y"))],
        );
        assert!(results(f.run(NOW, fresh)).is_some());
        assert_eq!(f.value(b"{t}b", NOW).unwrap().value, b"y");
    }

    #[test]
    fn a_rename_moves_the_value_and_its_expiry() {
        let mut f = Fixture::new();
        let expiring = Put {
            expire_at_ms: Some(NOW + 60_000),
            ..put("{t}from", "v")
        };
        f.run(NOW, Op::Put(expiring));
        f.run(NOW, Op::Put(put("{t}to", "old")));
        let rename = |nx| TxnOp::Rename {
            from: b"{t}from".to_vec(),
            to: b"{t}to".to_vec(),
            only_if_absent: nx,
        };
        let refused = results(f.run(NOW, txn(&[], vec![rename(true)]))).unwrap();
        assert_eq!(refused, [TxnOpResult::Renamed(RenameOutcome::TargetExists)]);
        let done = results(f.run(NOW, txn(&[], vec![rename(false)]))).unwrap();
        assert_eq!(done, [TxnOpResult::Renamed(RenameOutcome::Renamed)]);
        let moved = f.value(b"{t}to", NOW).unwrap();
        assert_eq!(moved.value, b"v");
        assert_eq!(moved.expire_at_ms, Some(NOW + 60_000));
        assert_eq!(moved.version, ver(4));
        assert!(f.value(b"{t}from", NOW).is_none());
        let gone = results(f.run(NOW, txn(&[], vec![rename(false)]))).unwrap();
        assert_eq!(gone, [TxnOpResult::Renamed(RenameOutcome::NoSuchKey)]);
    }

    #[test]
    fn a_transaction_is_applied_once_per_write_id() {
        let mut f = Fixture::new();
        let incr = |sequence| {
            Op::Txn(Txn {
                guards: Vec::new(),
                ops: vec![TxnOp::Update(Update {
                    key: b"n".to_vec(),
                    action: UpdateAction::IncrBy(1),
                    write_id: None,
                    max_len: 16,
                })],
                write_id: id(sequence),
            })
        };
        let first = f.run(NOW, incr(1));
        assert_eq!(f.run(NOW, incr(1)), first);
        assert_eq!(f.value(b"n", NOW).unwrap().value, b"1");
        f.run(NOW, incr(2));
        assert_eq!(f.value(b"n", NOW).unwrap().value, b"2");
    }

    #[test]
    fn a_transaction_touching_a_slot_split_away_writes_nothing() {
        let creator = Arc::new(MemoryCreator::default());
        let mut f = Fixture::new();
        f.machine = KvMachine::open(f.storage.clone())
            .unwrap()
            .with_creator(creator);
        let (low, high) = (key_in(0..=8191, 0), key_in(8192..=16383, 0));
        f.run(NOW, split_at(8192, 9));
        let ops = vec![TxnOp::Put(put(&low, "x")), TxnOp::Put(put(&high, "y"))];
        assert_eq!(f.run(NOW, txn(&[], ops)), CommandResult::NotOwned);
        assert!(f.value(low.as_bytes(), NOW).is_none());
    }
}
