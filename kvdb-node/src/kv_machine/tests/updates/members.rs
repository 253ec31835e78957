//! Hashes past Redis's small-hash limits, kept in member rows (`kvdb_core::member_rows`).

use super::*;
use crate::key_read::{Fields, Found, read, read_whole};
use kvdb_core::member_rows::{CollectionMeta, RECORD_MAX_FIELDS, all_member_rows};

/// An update with a value limit far above the hashes here, unlike [`update`]'s.
fn roomy(key: &str, action: UpdateAction) -> Op {
    Op::Update(Update {
        key: key.into(),
        action,
        write_id: None,
        max_len: 1 << 20,
    })
}

fn run_ok(f: &mut Fixture, key: &str, action: UpdateAction) -> Updated {
    match f.run(NOW, roomy(key, action)) {
        CommandResult::Update(Ok(updated)) => updated,
        other => panic!("{other:?}"),
    }
}

/// `HSET` of fields `f000`.. with values `v0`..: one more than a hash kept whole may have.
fn big(n: usize) -> UpdateAction {
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("f{i:03}"), format!("v{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(f, v)| (f.as_str(), v.as_str()))
        .collect();
    hset(&pairs, false)
}

const BIG: usize = RECORD_MAX_FIELDS + 1;

fn member_rows(storage: &dyn Storage) -> usize {
    storage
        .aux_range(all_member_rows().bounds(), usize::MAX)
        .unwrap()
        .len()
}

/// The pairs a client reads, in the order it reads them.
fn pairs(storage: &dyn Storage, key: &str) -> Vec<(String, String)> {
    let Some(whole) = read_whole(storage, key.as_bytes()).unwrap() else {
        return Vec::new();
    };
    assert_eq!(whole.kind, ValueKind::Hash);
    HashValue::decode(&whole.value)
        .unwrap()
        .into_pairs()
        .into_iter()
        .map(|(f, v)| (String::from_utf8(f).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

/// A fixture whose machine applies to a storage that counts the auxiliary rows read.
fn counting_fixture() -> (Arc<CountingStorage>, Fixture) {
    let storage = Arc::new(CountingStorage::default());
    let mut f = Fixture::new();
    f.machine = KvMachine::open(storage.clone()).unwrap();
    (storage, f)
}

fn meta(f: &Fixture, key: &str) -> CollectionMeta {
    let row = f.storage.get(key.as_bytes()).unwrap().expect("a key row");
    CollectionMeta::of(&row).expect("a hash in member rows")
}

#[test]
fn a_hash_past_the_small_hash_limits_moves_to_member_rows() {
    let mut f = Fixture::new();
    run_ok(&mut f, "small", big(RECORD_MAX_FIELDS));
    assert_eq!(f.value(b"small", NOW).unwrap().kind, ValueKind::Hash);
    assert_eq!(member_rows(f.storage.as_ref()), 0);

    let added = run_ok(&mut f, "h", big(BIG));
    assert_eq!(added.value, UpdateValue::Integer(BIG as i64));
    let created = added.version;
    assert_eq!(
        f.storage.get(b"h").unwrap().unwrap().kind,
        ValueKind::HashMembers
    );
    assert_eq!(
        meta(&f, "h"),
        CollectionMeta {
            generation: created.0,
            len: BIG as u64
        }
    );
    assert_eq!(member_rows(f.storage.as_ref()), BIG);
    let read = pairs(f.storage.as_ref(), "h");
    assert_eq!(read.len(), BIG);
    assert_eq!(read[0], ("f000".into(), "v0".into()));
    assert_eq!(
        read[BIG - 1],
        (format!("f{:03}", BIG - 1), format!("v{}", BIG - 1))
    );

    // A small hash grows past the limit by one field; a long value moves one too.
    run_ok(&mut f, "small", hset(&[("one more", "x")], false));
    assert_eq!(
        f.storage.get(b"small").unwrap().unwrap().kind,
        ValueKind::HashMembers
    );
    let long = "v".repeat(65);
    run_ok(&mut f, "long", hset(&[("f", &long)], false));
    assert_eq!(pairs(f.storage.as_ref(), "long"), [("f".into(), long)]);
    assert_eq!(
        member_rows(f.storage.as_ref()),
        BIG + RECORD_MAX_FIELDS + 1 + 1
    );
}

#[test]
fn member_writes_change_the_members_they_name_and_the_count() {
    let mut f = Fixture::new();
    let created = run_ok(&mut f, "h", big(BIG)).version;
    let set = run_ok(
        &mut f,
        "h",
        hset(&[("f000", "new"), ("added", "a"), ("added", "b")], false),
    );
    assert_eq!((set.applied, set.value), (true, UpdateValue::Integer(1)));
    let len = BIG as u64 + 1;
    assert_eq!(
        meta(&f, "h"),
        CollectionMeta {
            generation: created.0,
            len
        }
    );
    let read = pairs(f.storage.as_ref(), "h");
    assert_eq!(read[0], ("added".into(), "b".into()));
    assert_eq!(read[1], ("f000".into(), "new".into()));
    assert_eq!(f.storage.get(b"h").unwrap().unwrap().version, set.version);

    // HSETNX of a present field changes nothing, not even the version.
    let same = run_ok(&mut f, "h", hset(&[("f001", "x")], true));
    assert_eq!((same.applied, same.version), (false, set.version));
    let incr = UpdateAction::Hash(HashUpdate::IncrBy {
        field: b"n".to_vec(),
        by: 5,
    });
    assert_eq!(
        run_ok(&mut f, "h", incr.clone()).value,
        UpdateValue::Integer(5)
    );
    assert_eq!(run_ok(&mut f, "h", incr).value, UpdateValue::Integer(10));
    let not_int = UpdateAction::Hash(HashUpdate::IncrBy {
        field: b"f001".to_vec(),
        by: 1,
    });
    assert_eq!(
        f.run(NOW, roomy("h", not_int)),
        CommandResult::Update(Err(UpdateError::NotInteger))
    );
    let deleted = run_ok(
        &mut f,
        "h",
        UpdateAction::Hash(HashUpdate::Del(vec![
            b"f001".to_vec(),
            b"f001".to_vec(),
            b"no".to_vec(),
        ])),
    );
    assert_eq!(deleted.value, UpdateValue::Integer(1));
    assert_eq!(meta(&f, "h").len, len);
    assert_eq!(member_rows(f.storage.as_ref()) as u64, len);
    // A member's value is bounded like a string's, not the hash as a whole.
    let too_long = f.run(NOW, update("h", hset(&[("f002", &"x".repeat(17))], false)));
    assert!(matches!(
        too_long,
        CommandResult::Update(Err(UpdateError::TooLarge { .. }))
    ));
    // String commands refuse it.
    assert_eq!(
        failed(&mut f, "h", UpdateAction::IncrBy(1)),
        UpdateError::WrongType
    );
    // Removing every member removes the key and its rows.
    let fields: Vec<Vec<u8>> = pairs(f.storage.as_ref(), "h")
        .into_iter()
        .map(|(k, _)| k.into_bytes())
        .collect();
    let all = run_ok(&mut f, "h", UpdateAction::Hash(HashUpdate::Del(fields)));
    assert_eq!(all.value, UpdateValue::Integer(len as i64));
    assert!(f.storage.get(b"h").unwrap().is_none());
    assert_eq!(member_rows(f.storage.as_ref()), 0);
}

#[test]
fn a_large_hash_replaced_or_removed_takes_its_rows_and_an_expiry_keeps_them() {
    let mut f = Fixture::new();
    // DEL.
    run_ok(&mut f, "h", big(BIG));
    f.run(NOW, Op::Delete(delete("h")));
    assert_eq!(member_rows(f.storage.as_ref()), 0);
    // An expiry keeps the rows; the purge of the expired key removes them.
    run_ok(&mut f, "h", big(BIG));
    run_ok(&mut f, "h", expire(Some(NOW + 100), ExpireWhen::Always));
    assert_eq!(
        f.storage.get(b"h").unwrap().unwrap().expire_at_ms,
        Some(NOW + 100)
    );
    assert_eq!(pairs(f.storage.as_ref(), "h").len(), BIG);
    let version = f.storage.get(b"h").unwrap().unwrap().version;
    f.run(
        NOW + 100,
        Op::Purge {
            keys: vec![(b"h".to_vec(), version)],
        },
    );
    assert!(f.storage.get(b"h").unwrap().is_none());
    assert_eq!(member_rows(f.storage.as_ref()), 0);
    // SET through an update replaces it with a string.
    run_ok(&mut f, "h", big(BIG));
    run_ok(
        &mut f,
        "h",
        set("s", OnlyIf::Always, false, ExpiryChange::At(None)),
    );
    assert_eq!(f.value(b"h", NOW).unwrap().kind, ValueKind::String);
    assert_eq!(member_rows(f.storage.as_ref()), 0);
    // A hash command on an expired large hash starts a new, small one.
    run_ok(&mut f, "e", big(BIG));
    run_ok(&mut f, "e", expire(Some(NOW + 1), ExpireWhen::Always));
    f.run(NOW + 5, roomy("e", hset(&[("only", "1")], false)));
    assert_eq!(f.storage.get(b"e").unwrap().unwrap().kind, ValueKind::Hash);
    assert_eq!(member_rows(f.storage.as_ref()), 0);
}

#[test]
fn a_put_over_a_large_hash_takes_its_rows_however_the_machine_came_to_hold_it() {
    // Written by this machine.
    let mut f = Fixture::new();
    run_ok(&mut f, "h", big(BIG));
    f.run(NOW, Op::Put(put("h", "string")));
    let read = read_whole(f.storage.as_ref(), b"h").unwrap().unwrap();
    assert_eq!(
        (read.kind, read.value.as_slice()),
        (ValueKind::String, &b"string"[..])
    );
    assert_eq!(member_rows(f.storage.as_ref()), 0);

    // Found in storage by a reopened machine, and by one that installed a snapshot.
    f.run(NOW, Op::Delete(delete("h")));
    run_ok(&mut f, "h", big(BIG + 1));
    run_ok(&mut f, "other", big(BIG));
    f.machine = KvMachine::open(f.storage.clone()).unwrap();
    f.run(NOW, Op::Put(put("h", "again")));
    assert_eq!(
        member_rows(f.storage.as_ref()),
        BIG,
        "only `other`'s rows are left"
    );
    let image = f.machine.export().unwrap();
    let (applied, membership) = f.machine.applied_state();
    let mut g = Fixture::new();
    g.next_index = f.next_index;
    g.machine.import(applied, membership, &image).unwrap();
    // A conditional put too, over a hash whose expiry has passed.
    run_ok(&mut g, "other", expire(Some(NOW + 1), ExpireWhen::Always));
    let only_if_absent = Put {
        if_not_exists: true,
        ..put("other", "new")
    };
    g.run(NOW + 5, Op::Put(only_if_absent));
    assert_eq!(member_rows(g.storage.as_ref()), 0);
    assert_eq!(g.value(b"other", NOW + 5).unwrap().value, b"new");

    // A new large hash under the key is whole, with none of the old fields.
    g.run(NOW, Op::Delete(delete("h")));
    run_ok(&mut g, "h", big(BIG + 2));
    assert_eq!(pairs(g.storage.as_ref(), "h").len(), BIG + 2);
    assert_eq!(meta(&g, "h").len, BIG as u64 + 2);
}

#[test]
fn a_large_hash_survives_snapshots_reopening_and_splits_with_its_rows() {
    let (creator, mut f) = splitting_fixture();
    let (low, high) = (key_in(0..=8191, 0), key_in(8192..=16383, 0));
    run_ok(&mut f, &low, big(BIG));
    run_ok(&mut f, &high, big(BIG + 2));
    let written = pairs(f.storage.as_ref(), &high);

    // A snapshot carries the rows.
    let image = f.machine.export().unwrap();
    let g = Fixture::new();
    let mut imported = KvMachine::open(g.storage.clone()).unwrap();
    let (applied, membership) = f.machine.applied_state();
    imported.import(applied, membership, &image).unwrap();
    assert_eq!(pairs(g.storage.as_ref(), &high), written);
    assert_eq!(member_rows(g.storage.as_ref()), 2 * BIG + 2);
    // Client sessions load beside member rows.
    KvMachine::open(g.storage.clone()).unwrap();

    // A split hands the moved key's rows to the new shard, and the parent keeps its own.
    f.run(NOW, split_at(8192, 9));
    let child = creator.shards.lock().unwrap()[&kvdb_core::ShardId(9)].clone();
    assert_eq!(pairs(child.as_ref(), &high), written);
    assert_eq!(member_rows(child.as_ref()), BIG + 2);
    assert_eq!(member_rows(f.storage.as_ref()), BIG);
    assert_eq!(pairs(f.storage.as_ref(), &low).len(), BIG);
    let mut child_machine = KvMachine::open(child.clone()).unwrap();
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 2), 10),
        payload: EntryPayload::Normal(Command {
            now_ms: NOW,
            op: roomy(&high, hset(&[("f000", "child")], false)),
        }),
    };
    apply(&mut child_machine, vec![entry]);
    assert_eq!(
        pairs(child.as_ref(), &high)[0],
        ("f000".into(), "child".into())
    );
    assert_eq!(member_rows(child.as_ref()), BIG + 2);
}

#[test]
fn a_rename_moves_the_rows_and_a_transaction_reads_the_hash_whole() {
    use crate::command::{RenameOutcome, Txn, TxnOp, TxnOpResult};
    let mut f = Fixture::new();
    run_ok(&mut f, "{t}from", big(BIG));
    run_ok(&mut f, "{t}to", big(BIG + 1));
    let written = pairs(f.storage.as_ref(), "{t}from");
    let txn = |ops| {
        Op::Txn(Txn {
            guards: Vec::new(),
            ops,
            write_id: None,
        })
    };
    let rename = TxnOp::Rename {
        from: b"{t}from".to_vec(),
        to: b"{t}to".to_vec(),
        only_if_absent: false,
    };
    let get = TxnOp::Get(b"{t}to".to_vec());
    let CommandResult::Txn(Some(results)) = f.run(NOW, txn(vec![rename, get])) else {
        panic!("the transaction failed");
    };
    assert_eq!(results[0], TxnOpResult::Renamed(RenameOutcome::Renamed));
    let TxnOpResult::Got(Some((bytes, version, _))) = &results[1] else {
        panic!("{:?}", results[1]);
    };
    let (_, kind, value) = StoredValue::untag(version.0, bytes).unwrap();
    assert_eq!(kind, ValueKind::Hash);
    assert_eq!(HashValue::decode(value).unwrap().len(), BIG);
    assert_eq!(pairs(f.storage.as_ref(), "{t}to"), written);
    assert!(f.storage.get(b"{t}from").unwrap().is_none());
    // The target's old rows and the source's rows are gone: only the moved ones remain.
    assert_eq!(member_rows(f.storage.as_ref()), BIG);
    // And a put over the new name takes them.
    f.run(NOW, Op::Put(put("{t}to", "string")));
    assert_eq!(member_rows(f.storage.as_ref()), 0);
}

#[test]
fn a_read_of_named_fields_reads_those_rows_and_counts_the_hash() {
    let (storage, mut f) = counting_fixture();
    run_ok(&mut f, "h", big(BIG));
    run_ok(&mut f, "small", hset(&[("a", "1"), ("b", "2")], false));
    let pairs_of = |found: Option<Found>| {
        let found = found.expect("found");
        let pairs = HashValue::decode(&found.value.value).unwrap().into_pairs();
        (found.value.kind, pairs, found.hash_len)
    };
    let named: [&[u8]; 4] = [b"f007", b"nope", b"f007", b"f100"];
    let before = storage.aux_rows.load(Ordering::Relaxed);
    let got = pairs_of(read(storage.as_ref(), b"h", Fields::Only(&named)).unwrap());
    assert_eq!(
        storage.aux_rows.load(Ordering::Relaxed) - before,
        2,
        "only the named rows"
    );
    let expected = vec![
        (b"f007".to_vec(), b"v7".to_vec()),
        (b"f100".to_vec(), b"v100".to_vec()),
    ];
    assert_eq!(got, (ValueKind::Hash, expected, Some(BIG as u64)));
    // No field at all: the count alone (HLEN).
    let got = pairs_of(read(storage.as_ref(), b"h", Fields::Only(&[])).unwrap());
    assert_eq!(got, (ValueKind::Hash, Vec::new(), Some(BIG as u64)));
    // Everything.
    let got = pairs_of(read(storage.as_ref(), b"h", Fields::All).unwrap());
    assert_eq!((got.1.len(), got.2), (BIG, Some(BIG as u64)));
    // A small hash answers the same way from its record.
    let got = pairs_of(read(storage.as_ref(), b"small", Fields::Only(&[b"b", b"zz"])).unwrap());
    assert_eq!(
        got,
        (
            ValueKind::Hash,
            vec![(b"b".to_vec(), b"2".to_vec())],
            Some(2)
        )
    );
    // A string is a string, whatever fields are named.
    f.run(NOW, Op::Put(put("s", "v")));
    let found = read(storage.as_ref(), b"s", Fields::Only(&[b"f"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.value.kind, found.value.value, found.hash_len),
        (ValueKind::String, b"v".to_vec(), None)
    );
    assert!(
        read(storage.as_ref(), b"absent", Fields::Only(&[b"f"]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn pages_of_a_large_hash_list_every_field_once_and_a_small_hash_at_once() {
    let (storage, mut f) = counting_fixture();
    run_ok(&mut f, "h", big(BIG));
    run_ok(&mut f, "small", hset(&[("b", "2"), ("a", "1")], false));
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0;
    loop {
        let before = storage.aux_rows.load(Ordering::Relaxed);
        let fields = Fields::Page {
            after: after.as_deref(),
            limit: 200,
        };
        let found = read(storage.as_ref(), b"h", fields).unwrap().unwrap();
        assert!(
            storage.aux_rows.load(Ordering::Relaxed) - before <= 201,
            "a page reads a page"
        );
        let pairs = HashValue::decode(&found.value.value).unwrap().into_pairs();
        assert!(pairs.len() <= 200);
        let len = if pages == 0 { BIG } else { BIG + 2 };
        assert_eq!(found.hash_len, Some(len as u64));
        pages += 1;
        after = pairs.last().map(|(f, _)| f.clone());
        seen.extend(
            pairs
                .into_iter()
                .map(|(f, _)| String::from_utf8(f).unwrap()),
        );
        if !found.more {
            break;
        }
        // A field added behind the scan is not listed; one ahead is.
        if pages == 1 {
            run_ok(
                &mut f,
                "h",
                hset(&[("a-behind", "x"), ("zz-ahead", "y")], false),
            );
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..BIG).map(|i| format!("f{i:03}")).collect();
    expected.push("zz-ahead".into());
    assert_eq!(seen, expected);
    // A small hash answers at once, in its own order.
    let fields = Fields::Page {
        after: None,
        limit: 1,
    };
    let found = read(storage.as_ref(), b"small", fields).unwrap().unwrap();
    assert!(!found.more);
    assert_eq!(HashValue::decode(&found.value.value).unwrap().len(), 2);
}

/// Removed collections past the inline limit, left for the sweeper (`kv_machine::leftovers`).
mod swept {
    use super::*;
    use crate::kv_machine::leftovers::{INLINE_DROP_MAX, SWEEP_ROWS};

    /// Two full sweeps and a short one.
    const HUGE: usize = 2 * SWEEP_ROWS as usize + 5;

    fn sweep(key: &str, generation: u64) -> Op {
        Op::Sweep {
            key: key.into(),
            generation,
            limit: SWEEP_ROWS,
        }
    }

    fn swept(rows: usize, done: bool) -> CommandResult {
        CommandResult::Swept {
            rows: rows as u32,
            done,
        }
    }

    fn left(machine: &KvMachine) -> Vec<(Vec<u8>, u64)> {
        machine.leftovers().to_vec()
    }

    #[test]
    fn a_removed_large_hash_leaves_its_rows_to_sweeps_that_never_touch_a_live_one() {
        assert!(HUGE as u64 > INLINE_DROP_MAX);
        let mut f = Fixture::new();
        run_ok(&mut f, "h", big(HUGE));
        let old = meta(&f, "h").generation;
        f.run(NOW, Op::Delete(delete("h")));
        assert!(f.storage.get(b"h").unwrap().is_none());
        assert_eq!(member_rows(f.storage.as_ref()), HUGE, "left in place");
        assert_eq!(left(&f.machine), [(b"h".to_vec(), old)]);

        // A new hash under the key sees none of the old rows, and a sweep of its own
        // generation removes nothing.
        run_ok(&mut f, "h", big(BIG));
        let live = meta(&f, "h").generation;
        assert_ne!(live, old);
        assert_eq!(pairs(f.storage.as_ref(), "h").len(), BIG);
        assert_eq!(f.run(NOW, sweep("h", live)), swept(0, true));
        assert_eq!(member_rows(f.storage.as_ref()), HUGE + BIG);

        // The old rows go a batch per command; the set empties with the last one.
        assert_eq!(f.run(NOW, sweep("h", old)), swept(1024, false));
        assert_eq!(f.run(NOW, sweep("h", old)), swept(1024, false));
        assert_eq!(left(&f.machine).len(), 1);
        assert_eq!(f.run(NOW, sweep("h", old)), swept(5, true));
        assert!(f.machine.leftovers().is_empty());
        assert_eq!(member_rows(f.storage.as_ref()), BIG);
        assert_eq!(pairs(f.storage.as_ref(), "h").len(), BIG);
        // A late copy of a sweep finds nothing.
        assert_eq!(f.run(NOW, sweep("h", old)), swept(0, true));

        // A plain put, an expiry's purge and a rename onto the key leave rows the same way;
        // a hash at the limit still goes at once.
        run_ok(&mut f, "p", big(HUGE));
        f.run(NOW, Op::Put(put("p", "string")));
        run_ok(&mut f, "x", big(HUGE));
        run_ok(&mut f, "x", expire(Some(NOW + 1), ExpireWhen::Always));
        let version = f.storage.get(b"x").unwrap().unwrap().version;
        f.run(
            NOW + 5,
            Op::Purge {
                keys: vec![(b"x".to_vec(), version)],
            },
        );
        run_ok(&mut f, "at-limit", big(INLINE_DROP_MAX as usize));
        f.run(NOW, Op::Delete(delete("at-limit")));
        assert_eq!(member_rows(f.storage.as_ref()), BIG + 2 * HUGE);
        assert_eq!(left(&f.machine).len(), 2);
    }

    #[test]
    fn sweeps_in_one_run_remove_what_they_would_one_run_each() {
        let mut f = Fixture::new();
        run_ok(&mut f, "h", big(HUGE));
        let old = meta(&f, "h").generation;
        f.run(NOW, Op::Delete(delete("h")));
        let entries = (0..2)
            .map(|_| {
                f.entry(EntryPayload::Normal(Command {
                    now_ms: NOW,
                    op: sweep("h", old),
                }))
            })
            .collect();
        assert_eq!(
            apply(&mut f.machine, entries),
            [swept(1024, false), swept(1024, false)]
        );
        assert_eq!(member_rows(f.storage.as_ref()), 5);
    }

    #[test]
    fn rows_no_key_row_names_are_found_on_opening_from_a_snapshot_and_after_a_split() {
        let (creator, mut f) = splitting_fixture();
        let (low, high) = (key_in(0..=8191, 0), key_in(8192..=16383, 0));
        run_ok(&mut f, &low, big(HUGE));
        run_ok(&mut f, &high, big(HUGE));
        let (low_gen, high_gen) = (meta(&f, &low).generation, meta(&f, &high).generation);
        f.run(NOW, Op::Delete(delete(&low)));
        f.run(NOW, Op::Delete(delete(&high)));
        let both = {
            let mut both = vec![
                (low.clone().into_bytes(), low_gen),
                (high.clone().into_bytes(), high_gen),
            ];
            both.sort();
            both
        };
        assert_eq!(left(&f.machine), both);

        // Reopened, and installed from a snapshot.
        f.machine = KvMachine::open(f.storage.clone())
            .unwrap()
            .with_creator(creator.clone());
        assert_eq!(left(&f.machine), both);
        let image = f.machine.export().unwrap();
        let mut g = Fixture::new();
        let (applied, membership) = f.machine.applied_state();
        g.machine.import(applied, membership, &image).unwrap();
        assert_eq!(left(&g.machine), both);

        // A split sends the moved key's rows to the new shard, which finds them to sweep; the
        // parent's sweep of that key removes nothing and ends.
        f.run(NOW, split_at(8192, 9));
        let child = creator.shards.lock().unwrap()[&kvdb_core::ShardId(9)].clone();
        assert_eq!(member_rows(child.as_ref()), HUGE);
        let child_machine = KvMachine::open(child.clone()).unwrap();
        assert_eq!(
            left(&child_machine),
            [(high.clone().into_bytes(), high_gen)]
        );
        assert_eq!(f.run(NOW, sweep(&high, high_gen)), swept(0, true));
        assert_eq!(left(&f.machine), [(low.clone().into_bytes(), low_gen)]);
        assert_eq!(member_rows(f.storage.as_ref()), HUGE);
    }
}
