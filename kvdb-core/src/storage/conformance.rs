//! The properties every [`Storage`] backend must have, as functions that
//! panic on a violation. Backends prove themselves with [`run_all`]; other
//! crates may call it from their tests for their own wrappers.
//!
//! Out of scope: crash behaviour and reopening, which depend on how a backend
//! is created and are tested next to each backend.

use super::{Storage, StoredValue, ValueKind, WriteBatch};
use crate::Version;

/// Runs every property, each on a fresh store from `make`.
pub fn run_all<S: Storage>(make: impl Fn() -> S) {
    empty_store_has_nothing(&make());
    put_then_get_returns_the_value(&make());
    get_many_reads_each_key_in_order(&make());
    overwrite_replaces_value_and_version(&make());
    delete_removes_the_key(&make());
    batch_applies_ops_in_order_with_meta(&make());
    readers_never_see_half_a_batch(&make());
    meta_is_kept_until_replaced(&make());
    binary_and_empty_bytes_round_trip(&make());
    large_value_round_trips(&make());
    expired_lists_due_keys_in_expiry_order(&make());
    expiry_index_follows_overwrites_and_deletes(&make());
    zero_expiry_is_stored_as_already_expired(&make());
    kinds_read_back_with_any_expiry(&make());
    export_then_install_replaces_prior_content(&make(), &make());
    clear_drops_data_and_meta(&make());
    aux_rows_change_with_their_batch_and_stay_apart_from_data(&make());
    scan_pages_through_keys_in_order(&make());
    aux_ranges_page_through_rows_with_their_key(&make());
}

/// Auxiliary rows read by range: only the rows in the range, in key order, at most `limit`
/// of them, with the latest writes (durable or not) and without removed rows, however the
/// state is split between a backend's layers; with the key's value when one is asked for.
pub fn aux_ranges_page_through_rows_with_their_key(store: &impl Storage) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let row = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    let members = super::PrefixRange::new(b"m/h/".to_vec());
    let (lo, hi) = members.bounds();
    assert_eq!(store.aux_range((lo, hi), 10).expect("aux_range"), []);
    let batch = WriteBatch::new().put(b"h", v(b"meta", 1)).with_aux(
        [&b"m/g/x"[..], b"m/h/a", b"m/h/b", b"m/h/c", b"m/i/a", b"s"]
            .map(|k| (k.to_vec(), Some(b"1".to_vec()))),
    );
    store.apply(batch).expect("apply");
    store.sync().expect("sync");
    let batch = WriteBatch::new().put(b"h", v(b"meta", 2)).with_aux(vec![
        (b"m/h/b".to_vec(), None),
        (b"m/h/bb".to_vec(), Some(b"2".to_vec())),
        (b"m/h/c".to_vec(), Some(b"2".to_vec())),
        (b"m/h/d".to_vec(), Some(b"2".to_vec())),
    ]);
    store.apply(batch).expect("apply");
    let whole = [
        row(b"m/h/a", b"1"),
        row(b"m/h/bb", b"2"),
        row(b"m/h/c", b"2"),
        row(b"m/h/d", b"2"),
    ];
    assert_eq!(store.aux_range((lo, hi), 10).expect("aux_range"), whole);
    let (value, rows) = store
        .get_with_aux(Some(b"h"), (lo, hi), 10)
        .expect("get_with_aux");
    assert_eq!((value, rows.as_slice()), (Some(v(b"meta", 2)), &whole[..]));
    // Pages of two, each starting after the last row of the one before.
    let mut pages = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let start = after.as_deref().map_or(lo, Excluded);
        let page = store.aux_range((start, hi), 2).expect("aux_range");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|(k, _)| k.clone());
        pages.extend(page);
    }
    assert_eq!(pages, whole);
    assert_eq!(
        store
            .aux_range((Included(&b"m/"[..]), Unbounded), 3)
            .expect("aux_range"),
        [
            row(b"m/g/x", b"1"),
            row(b"m/h/a", b"1"),
            row(b"m/h/bb", b"2")
        ]
    );
    let (value, rows) = store
        .get_with_aux(Some(b"absent"), (Included(&b"t"[..]), Unbounded), 10)
        .expect("get_with_aux");
    assert_eq!((value, rows), (None, Vec::new()));
}

/// A scan returns pages of keys after a given one, in order, with the latest writes (durable
/// or not) and without deleted keys, however the state is split between a backend's layers.
pub fn scan_pages_through_keys_in_order(store: &impl Storage) {
    assert_eq!(store.scan(None, 10).expect("scan"), Vec::new());
    for (i, key) in [&b"a"[..], b"b", b"c", b"d"].into_iter().enumerate() {
        put(store, key, v(key, i as u64 + 1));
    }
    store.sync().expect("sync");
    put(store, b"e", v(b"e", 5));
    put(store, b"bb", v(b"bb", 6));
    put(store, b"c", v(b"c2", 7));
    store
        .apply(WriteBatch::new().delete(b"b"))
        .expect("apply delete");
    let keys = |page: Vec<(Vec<u8>, StoredValue)>| -> Vec<Vec<u8>> {
        page.into_iter().map(|(k, _)| k).collect()
    };
    let mut pages = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(after.as_deref(), 2).expect("scan");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|(k, _)| k.clone());
        pages.push(keys(page));
    }
    let expected: Vec<Vec<Vec<u8>>> = vec![
        vec![b"a".to_vec(), b"bb".to_vec()],
        vec![b"c".to_vec(), b"d".to_vec()],
        vec![b"e".to_vec()],
    ];
    assert_eq!(pages, expected);
    let from_middle = store.scan(Some(b"bz"), 10).expect("scan");
    assert_eq!(from_middle[0], (b"c".to_vec(), v(b"c2", 7)));
    assert_eq!(
        keys(from_middle),
        [b"c".to_vec(), b"d".to_vec(), b"e".to_vec()]
    );
    assert_eq!(store.scan(Some(b"e"), 10).expect("scan"), Vec::new());
}

fn get_many_reads_each_key_in_order(store: &impl Storage) {
    put(store, b"a", v(b"1", 1));
    put(store, b"c", v(b"3", 3));
    let got = store.get_many(&[b"c", b"b", b"a", b"c"]).expect("get_many");
    assert_eq!(
        got,
        vec![Some(v(b"3", 3)), None, Some(v(b"1", 1)), Some(v(b"3", 3))]
    );
    assert_eq!(
        store.get_many(&[]).expect("get_many of nothing"),
        Vec::new()
    );
}

fn v(value: &[u8], version: u64) -> StoredValue {
    StoredValue::new(value, Version(version))
}

fn put(store: &impl Storage, key: &[u8], value: StoredValue) {
    store
        .apply(WriteBatch::new().put(key, value))
        .expect("apply put");
}

fn expired_keys(store: &impl Storage, now_ms: u64, limit: usize) -> Vec<(Vec<u8>, u64)> {
    let due = store.expired(now_ms, limit).expect("expired");
    due.into_iter().map(|(k, ver)| (k, ver.0)).collect()
}

/// A new store has no keys, no metadata and nothing due.
pub fn empty_store_has_nothing(store: &impl Storage) {
    assert_eq!(store.get(b"missing").expect("get"), None);
    assert_eq!(store.len().expect("len"), 0);
    assert!(store.is_empty().expect("is_empty"));
    assert_eq!(store.meta().expect("meta"), None);
    assert!(store.export().expect("export").is_empty());
    assert!(store.expired(u64::MAX, 100).expect("expired").is_empty());
    store.sync().expect("sync");
}

/// A put is read back exactly, and other keys stay absent.
pub fn put_then_get_returns_the_value(store: &impl Storage) {
    put(store, b"k", v(b"hello", 7));
    assert_eq!(store.get(b"k").expect("get"), Some(v(b"hello", 7)));
    assert_eq!(store.get(b"k2").expect("get"), None);
    assert_eq!(store.len().expect("len"), 1);
}

/// A second put replaces the value and its version.
pub fn overwrite_replaces_value_and_version(store: &impl Storage) {
    put(store, b"k", v(b"one", 1));
    put(store, b"k", v(b"two", 2));
    assert_eq!(store.get(b"k").expect("get"), Some(v(b"two", 2)));
    assert_eq!(store.len().expect("len"), 1);
}

/// A delete removes the key; deleting a missing key is a no-op.
pub fn delete_removes_the_key(store: &impl Storage) {
    put(store, b"a", v(b"1", 1));
    put(store, b"b", v(b"2", 2));
    store
        .apply(WriteBatch::new().delete(b"a").delete(b"never-there"))
        .expect("apply delete");
    assert_eq!(store.get(b"a").expect("get"), None);
    assert_eq!(store.get(b"b").expect("get"), Some(v(b"2", 2)));
    assert_eq!(store.len().expect("len"), 1);
}

/// Ops apply in order (a later op on a key wins) and the metadata lands
/// with them.
pub fn batch_applies_ops_in_order_with_meta(store: &impl Storage) {
    put(store, b"gone", v(b"x", 1));
    let batch = WriteBatch::new()
        .put(b"a", v(b"first", 2))
        .put(b"a", v(b"second", 2))
        .put(b"b", v(b"b", 2))
        .delete(b"b")
        .delete(b"gone")
        .put(b"c", v(b"c", 2))
        .with_meta(b"applied=2".to_vec());
    store.apply(batch).expect("apply");
    let expected = vec![
        (b"a".to_vec(), v(b"second", 2)),
        (b"c".to_vec(), v(b"c", 2)),
    ];
    assert_eq!(store.export().expect("export"), expected);
    assert_eq!(store.meta().expect("meta"), Some(b"applied=2".to_vec()));
}

/// A concurrent reader's export always shows a batch whole: two keys
/// written together always hold the same value.
pub fn readers_never_see_half_a_batch(store: &impl Storage) {
    const ROUNDS: u64 = 200;
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for round in 1..=ROUNDS {
                let value = round.to_be_bytes();
                let batch = WriteBatch::new()
                    .put(b"left", v(&value, round))
                    .put(b"right", v(&value, round))
                    .with_meta(value.to_vec());
                store.apply(batch).expect("apply");
            }
        });
        loop {
            // Checked before the read, so the last read sees the last batch.
            let writer_done = writer.is_finished();
            match store.export().expect("export").as_slice() {
                [] => {}
                [(_, left), (_, right)] => assert_eq!(left, right, "export saw half a batch"),
                other => panic!("unexpected entries: {other:?}"),
            }
            if writer_done {
                break;
            }
        }
    });
    assert_eq!(
        store.meta().expect("meta"),
        Some(ROUNDS.to_be_bytes().to_vec())
    );
}

/// A batch without metadata leaves the stored metadata alone; a batch of
/// metadata only replaces it.
pub fn meta_is_kept_until_replaced(store: &impl Storage) {
    store
        .apply(WriteBatch::new().with_meta(b"m1".to_vec()))
        .expect("apply meta");
    assert_eq!(store.meta().expect("meta"), Some(b"m1".to_vec()));
    put(store, b"k", v(b"v", 2));
    assert_eq!(store.meta().expect("meta"), Some(b"m1".to_vec()));
    store
        .apply(WriteBatch::new().with_meta(Vec::new()))
        .expect("apply empty meta");
    assert_eq!(store.meta().expect("meta"), Some(Vec::new()));
    assert_eq!(store.len().expect("len"), 1);
}

/// Empty keys and values, and bytes 0x00 and 0xFF, round-trip exactly and
/// export in byte order.
pub fn binary_and_empty_bytes_round_trip(store: &impl Storage) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let entries = vec![
        (Vec::new(), v(b"empty key", 1)),
        (vec![0x00], v(&[], 2)),
        (vec![0x00, 0xFF, 0x00], v(&[0x00, 0x00], 3)),
        (vec![0x01], v(&all_bytes, 4)),
        (vec![0xFF], v(&[0xFF; 3], 5).with_expiry(u64::MAX)),
        (vec![0xFF, 0x00], v(&[0x00], 6)),
    ];
    let batch = entries.iter().rev().fold(WriteBatch::new(), |b, (k, val)| {
        b.put(k.clone(), val.clone())
    });
    store.apply(batch).expect("apply");
    for (key, value) in &entries {
        assert_eq!(
            store.get(key).expect("get").as_ref(),
            Some(value),
            "key {key:?}"
        );
    }
    assert_eq!(store.export().expect("export"), entries);
}

/// A 1 MiB value round-trips.
pub fn large_value_round_trips(store: &impl Storage) {
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    put(store, b"big", v(&big, 1));
    assert_eq!(store.get(b"big").expect("get"), Some(v(&big, 1)));
}

/// `expired` lists exactly the keys due at `now`, earliest first (ties in
/// key order), up to `limit`, with their versions.
pub fn expired_lists_due_keys_in_expiry_order(store: &impl Storage) {
    let batch = WriteBatch::new()
        .put(b"c", v(b"", 3).with_expiry(300))
        .put(b"b2", v(b"", 4).with_expiry(200))
        .put(b"a", v(b"", 1).with_expiry(100))
        .put(b"b1", v(b"", 2).with_expiry(200))
        .put(b"forever", v(b"", 5));
    store.apply(batch).expect("apply");
    assert!(expired_keys(store, 99, 10).is_empty());
    assert_eq!(expired_keys(store, 100, 10), [(b"a".to_vec(), 1)]);
    let due = [(b"a".to_vec(), 1), (b"b1".to_vec(), 2), (b"b2".to_vec(), 4)];
    assert_eq!(expired_keys(store, 299, 10), due);
    assert_eq!(expired_keys(store, 299, 2), due[..2]);
    assert!(expired_keys(store, u64::MAX, 0).is_empty());
    assert_eq!(expired_keys(store, u64::MAX, 10).len(), 4);
    // Expired values are still stored; callers judge liveness.
    let a = store.get(b"a").expect("get").expect("a is stored");
    assert!(a.is_live(99) && !a.is_live(100));
}

/// Overwriting without a TTL, moving the TTL, or deleting keeps the expiry
/// index exact: no stale or duplicate entries.
pub fn expiry_index_follows_overwrites_and_deletes(store: &impl Storage) {
    let batch = WriteBatch::new()
        .put(b"persisted", v(b"", 1).with_expiry(100))
        .put(b"deleted", v(b"", 1).with_expiry(100))
        .put(b"moved", v(b"", 1).with_expiry(100))
        .put(b"kept", v(b"", 1).with_expiry(100));
    store.apply(batch).expect("apply");
    let batch = WriteBatch::new()
        .put(b"persisted", v(b"", 2))
        .delete(b"deleted")
        .put(b"moved", v(b"", 2).with_expiry(500))
        .put(b"kept", v(b"new", 2).with_expiry(100));
    store.apply(batch).expect("apply");
    assert_eq!(expired_keys(store, 499, 10), [(b"kept".to_vec(), 2)]);
    let due = [(b"kept".to_vec(), 2), (b"moved".to_vec(), 2)];
    assert_eq!(expired_keys(store, u64::MAX, 10), due);
    store
        .apply(WriteBatch::new().delete(b"kept").delete(b"moved"))
        .expect("apply");
    assert!(expired_keys(store, u64::MAX, 10).is_empty());
    assert_eq!(store.len().expect("len"), 1);
}

/// An expiry of `Some(0)` reads back as `Some(1)`: still expired, and due.
pub fn zero_expiry_is_stored_as_already_expired(store: &impl Storage) {
    put(store, b"k", v(b"x", 1).with_expiry(0));
    let stored = store.get(b"k").expect("get").expect("stored");
    assert_eq!(stored.expire_at_ms, Some(1));
    assert_eq!(expired_keys(store, 1, 10), [(b"k".to_vec(), 1)]);
}

/// A value's kind reads back with it, beside any expiry (the largest included), in reads,
/// the expiry index and exports.
pub fn kinds_read_back_with_any_expiry(store: &impl Storage) {
    let hash = v(b"h", 1).with_kind(ValueKind::Hash);
    put(store, b"h", hash.clone());
    let far = hash.clone().with_expiry(u64::MAX);
    put(store, b"hx", far.clone());
    let string = v(b"\x01s", 2).with_expiry(u64::MAX - 1);
    put(store, b"s", string.clone());
    assert_eq!(store.get(b"h").expect("get"), Some(hash.clone()));
    assert_eq!(store.get(b"hx").expect("get"), Some(far.clone()));
    assert_eq!(store.get(b"s").expect("get"), Some(string.clone()));
    let due = [(b"s".to_vec(), 2), (b"hx".to_vec(), 1)];
    assert_eq!(expired_keys(store, u64::MAX, 10), due);
    let exported = store.export().expect("export");
    assert_eq!(
        exported,
        [
            (b"h".to_vec(), hash),
            (b"hx".to_vec(), far),
            (b"s".to_vec(), string)
        ]
    );
}

/// `install` of another store's export replaces all content, expiry index
/// and metadata included.
pub fn export_then_install_replaces_prior_content(source: &impl Storage, target: &impl Storage) {
    let batch = WriteBatch::new()
        .put(b"a", v(b"1", 1))
        .put(b"b", v(b"2", 2).with_expiry(50))
        .put(b"c", v(&[0x00, 0xFF], 3))
        .with_meta(b"source".to_vec());
    source.apply(batch).expect("apply source");
    let batch = WriteBatch::new()
        .put(b"a", v(b"old", 9).with_expiry(10))
        .put(b"z", v(b"old", 9).with_expiry(10))
        .with_meta(b"target".to_vec());
    target.apply(batch).expect("apply target");

    let snapshot = source.export().expect("export");
    let meta = source.meta().expect("meta");
    target
        .apply(WriteBatch::new().with_aux(vec![(b"stale".to_vec(), Some(b"row".to_vec()))]))
        .expect("apply aux");
    let aux = vec![(b"session".to_vec(), b"s".to_vec())];
    target
        .install(snapshot.clone(), meta, aux.clone())
        .expect("install");
    assert_eq!(target.export().expect("export"), snapshot);
    assert_eq!(target.aux().expect("aux"), aux);
    assert_eq!(target.meta().expect("meta"), Some(b"source".to_vec()));
    assert_eq!(target.len().expect("len"), 3);
    assert_eq!(target.get(b"z").expect("get"), None);
    assert_eq!(expired_keys(target, u64::MAX, 10), [(b"b".to_vec(), 2)]);

    // Installing nothing, without metadata, empties the store.
    target
        .install(Vec::new(), None, Vec::new())
        .expect("install empty");
    assert!(target.export().expect("export").is_empty());
    assert!(target.aux().expect("aux").is_empty());
    assert_eq!(target.meta().expect("meta"), None);
    assert!(expired_keys(target, u64::MAX, 10).is_empty());
}

/// `clear` drops entries, index and metadata; the store stays usable.
pub fn clear_drops_data_and_meta(store: &impl Storage) {
    let batch = WriteBatch::new()
        .put(b"a", v(b"1", 1))
        .put(b"b", v(b"2", 1).with_expiry(10))
        .with_meta(b"m".to_vec())
        .with_aux(vec![(b"row".to_vec(), Some(b"r".to_vec()))]);
    store.apply(batch).expect("apply");
    store.clear().expect("clear");
    assert_eq!(store.len().expect("len"), 0);
    assert!(store.aux().expect("aux").is_empty());
    assert_eq!(store.get(b"a").expect("get"), None);
    assert_eq!(store.meta().expect("meta"), None);
    assert!(expired_keys(store, u64::MAX, 10).is_empty());
    put(store, b"after", v(b"3", 2));
    assert_eq!(
        store.export().expect("export"),
        [(b"after".to_vec(), v(b"3", 2))]
    );
}

/// Auxiliary rows are stored and removed in order with their batch, and never show up as data.
pub fn aux_rows_change_with_their_batch_and_stay_apart_from_data(store: &impl Storage) {
    let batch = WriteBatch::new().put(b"k", v(b"data", 1)).with_aux(vec![
        (b"b".to_vec(), Some(b"2".to_vec())),
        (b"a".to_vec(), Some(b"1".to_vec())),
        (b"c".to_vec(), Some(b"3".to_vec())),
        (b"c".to_vec(), None),
    ]);
    store.apply(batch).expect("apply");
    assert_eq!(
        store.aux().expect("aux"),
        [
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(store.get(b"a").expect("get"), None);
    assert_eq!(store.len().expect("len"), 1);
    assert_eq!(store.export().expect("export").len(), 1);

    let batch = WriteBatch::new().with_aux(vec![
        (b"a".to_vec(), None),
        (b"b".to_vec(), Some(b"two".to_vec())),
    ]);
    store.apply(batch).expect("apply");
    assert_eq!(
        store.aux().expect("aux"),
        [(b"b".to_vec(), b"two".to_vec())]
    );
    assert_eq!(store.get(b"k").expect("get"), Some(v(b"data", 1)));
}
