//! Member rows: how a large collection keeps its members beside its key row, so that a
//! write costs what it changes rather than the whole collection (docs/architecture.md,
//! "Collections"). Hashes use it past Redis's own small-hash limits.
//!
//! - The **key row** stays where every value lives: one row per user key, so `SCAN`,
//!   `DBSIZE`, `TYPE`, expiry, `DEL` and the expiry index see one row per key whatever its
//!   type. Its value is a [`CollectionMeta`]: the member count, and the *generation*, the
//!   version of the write that created the collection.
//! - **Member rows** are auxiliary rows of the shard's storage: [`MEMBER_ROW`], the key's
//!   length (`u32` big-endian), the key, the generation (`u64` big-endian), the member. The
//!   length keeps one key's rows apart from a longer key's that starts with it, and the
//!   rows of one collection are one contiguous range ([`members_of`]).
//! - A collection that is replaced or removed loses its rows in the same command, or, when
//!   large, later: its rows' generation is then one no key row names, which no read sees
//!   and which the shard's sweeper removes (`kvdb-node`'s `kv_machine::leftovers`).
//!
//! Everything here is a pure function of bytes: the state machine decides what to write.

use crate::hash_value::HashValue;
use crate::storage::{PrefixRange, StoredValue, ValueKind};

/// First byte of every member row, apart from the other auxiliary rows' prefixes.
pub const MEMBER_ROW: u8 = b'm';

/// The most fields a hash kept whole in its key record may have: past it, a write moves the
/// hash to member rows (Redis's `hash-max-listpack-entries`, 512 by default).
pub const RECORD_MAX_FIELDS: usize = 512;

/// The longest field or value a hash kept whole may hold (Redis's
/// `hash-max-listpack-value`). Below both limits a hash answers in insertion order, as
/// Redis's listpack does; past them Redis's order is its hash table's, and KvDB's the
/// members' byte order.
pub const RECORD_MAX_MEMBER_BYTES: usize = 64;

/// Whether `hash` stays whole in its key record.
pub fn fits_record(hash: &HashValue) -> bool {
    hash.len() <= RECORD_MAX_FIELDS
        && hash.pairs().all(|(field, value)| {
            field.len() <= RECORD_MAX_MEMBER_BYTES && value.len() <= RECORD_MAX_MEMBER_BYTES
        })
}

/// What the key row of a collection in member rows holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionMeta {
    /// The version of the write that created the collection: its rows' generation.
    pub generation: u64,
    /// How many members it has.
    pub len: u64,
}

impl CollectionMeta {
    /// The key row's value bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }

    /// The meta in a key row's value bytes; `None` when they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (generation, len) = bytes.split_first_chunk::<8>()?;
        let len: [u8; 8] = len.try_into().ok()?;
        Some(Self {
            generation: u64::from_le_bytes(*generation),
            len: u64::from_le_bytes(len),
        })
    }

    /// The meta of `value` when it is the key row of a hash in member rows.
    pub fn of(value: &StoredValue) -> Option<Self> {
        (value.kind == ValueKind::HashMembers)
            .then(|| Self::decode(&value.value))
            .flatten()
    }
}

/// The start every row of `key` shares, with room for `extra` more bytes.
fn key_prefix(key: &[u8], extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 4 + key.len() + extra);
    out.push(MEMBER_ROW);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn key_part(key: &[u8], generation: u64, extra: usize) -> Vec<u8> {
    let mut out = key_prefix(key, 8 + extra);
    out.extend_from_slice(&generation.to_be_bytes());
    out
}

/// The row of `member` in the collection under `key` of generation `generation`.
pub fn member_row(key: &[u8], generation: u64, member: &[u8]) -> Vec<u8> {
    let mut row = key_part(key, generation, member.len());
    row.extend_from_slice(member);
    row
}

/// Every row of the collection under `key` of generation `generation`, in member order.
pub fn members_of(key: &[u8], generation: u64) -> PrefixRange {
    PrefixRange::new(key_part(key, generation, 0))
}

/// Every member row of the shard.
pub fn all_member_rows() -> PrefixRange {
    PrefixRange::new([MEMBER_ROW])
}

/// The key, generation and member a member row names; `None` for another kind of row.
pub fn parse_member_row(row: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let (&kind, rest) = row.split_first()?;
    if kind != MEMBER_ROW {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let key = rest.get(..len)?;
    let (generation, member) = rest.get(len..)?.split_first_chunk::<8>()?;
    Some((key, u64::from_be_bytes(*generation), member))
}

/// The hash a key row and its member rows hold, whole, as a client reads it: the key row's
/// version and expiry, the members in byte order. Rows of another key or generation are
/// ignored. `None` when `key_row` is not the key row of a hash in member rows.
pub fn gather_hash(
    key: &[u8],
    key_row: &StoredValue,
    rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Option<StoredValue> {
    let meta = CollectionMeta::of(key_row)?;
    let mut hash = HashValue::new();
    for (row, value) in rows {
        if let Some((row_key, generation, member)) = parse_member_row(&row)
            && row_key == key
            && generation == meta.generation
        {
            hash.set(member, value);
        }
    }
    Some(StoredValue {
        value: hash.encode(),
        version: key_row.version,
        expire_at_ms: key_row.expire_at_ms,
        kind: ValueKind::Hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;
    use std::ops::RangeBounds;

    fn contains(range: &PrefixRange, row: &[u8]) -> bool {
        RangeBounds::<[u8]>::contains(&range.bounds(), row)
    }

    #[test]
    fn a_member_row_parses_back_and_falls_in_its_collection_only() {
        let row = member_row(b"ab", 7, b"field");
        assert_eq!(parse_member_row(&row), Some((&b"ab"[..], 7, &b"field"[..])));
        assert!(contains(&members_of(b"ab", 7), &row));
        assert!(contains(&all_member_rows(), &row));
        // Another generation, a key that extends this one, a key this one extends.
        assert!(!contains(&members_of(b"ab", 8), &row));
        assert!(!contains(&members_of(b"a", 7), &row));
        assert!(!contains(
            &members_of(b"abc", 7),
            &member_row(b"ab", 7, b"c")
        ));
        assert!(!contains(
            &members_of(b"ab", 7),
            &member_row(b"abc", 7, b"")
        ));
        // Session rows and truncated rows are not member rows.
        assert_eq!(parse_member_row(b"c-client"), None);
        assert_eq!(parse_member_row(&row[..8]), None);
    }

    #[test]
    fn rows_of_one_collection_sort_by_member() {
        let mut rows = [b"b".as_slice(), b"", b"a\xff", b"a"]
            .map(|m| member_row(b"k", u64::MAX - 1, m))
            .to_vec();
        rows.sort();
        let members: Vec<&[u8]> = rows
            .iter()
            .map(|r| parse_member_row(r).unwrap().2)
            .collect();
        assert_eq!(members, [&b""[..], b"a", b"a\xff", b"b"]);
    }

    #[test]
    fn meta_round_trips_and_refuses_other_bytes() {
        let meta = CollectionMeta {
            generation: 1 << 40,
            len: 129,
        };
        assert_eq!(CollectionMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(CollectionMeta::decode(&[0; 15]), None);
        assert_eq!(CollectionMeta::decode(&[0; 17]), None);
        let row = StoredValue::new(meta.encode(), Version(3));
        assert_eq!(CollectionMeta::of(&row), None, "a string is not a key row");
        let row = row.with_kind(ValueKind::HashMembers);
        assert_eq!(CollectionMeta::of(&row), Some(meta));
    }

    #[test]
    fn a_gathered_hash_holds_its_generations_members_in_order() {
        let meta = CollectionMeta {
            generation: 5,
            len: 2,
        };
        let key_row = StoredValue::new(meta.encode(), Version(9))
            .with_kind(ValueKind::HashMembers)
            .with_expiry(1_000);
        let rows = vec![
            (member_row(b"h", 4, b"stale"), b"0".to_vec()),
            (member_row(b"h", 5, b"a"), b"1".to_vec()),
            (member_row(b"h", 5, b"b"), b"2".to_vec()),
            (member_row(b"hh", 5, b"other"), b"3".to_vec()),
        ];
        let hash = gather_hash(b"h", &key_row, rows).unwrap();
        assert_eq!(
            (hash.kind, hash.version, hash.expire_at_ms),
            (ValueKind::Hash, Version(9), Some(1_000))
        );
        let pairs = HashValue::decode(&hash.value).unwrap().into_pairs();
        assert_eq!(
            pairs,
            [
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(
            gather_hash(b"h", &StoredValue::new("x", Version(1)), Vec::new()),
            None
        );
    }

    #[test]
    fn a_hash_stays_whole_within_redis_small_hash_limits() {
        let mut hash = HashValue::new();
        for i in 0..RECORD_MAX_FIELDS {
            hash.set(
                format!("f{i}").as_bytes(),
                vec![b'v'; RECORD_MAX_MEMBER_BYTES],
            );
        }
        assert!(fits_record(&hash));
        let mut more = hash.clone();
        more.set(b"one more", Vec::new());
        assert!(!fits_record(&more));
        hash.set(b"f0", vec![b'v'; RECORD_MAX_MEMBER_BYTES + 1]);
        assert!(!fits_record(&hash));
        let mut long_field = HashValue::new();
        long_field.set(&[b'f'; RECORD_MAX_MEMBER_BYTES + 1], Vec::new());
        assert!(!fits_record(&long_field));
    }
}
