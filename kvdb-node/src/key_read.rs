//! A key's value as clients read it. A hash kept in member rows (`kvdb_core::member_rows`)
//! is read with its key row at one point in time: gathered whole, only the fields a reader
//! names (`HGET`, `HMGET`, `HEXISTS`, `HSTRLEN`, and none for `HLEN`), or one page of its
//! fields in byte order (`HSCAN`), each costing what it returns rather than the hash.

use std::ops::Bound;

use kvdb_core::hash_value::HashValue;
use kvdb_core::member_rows::{CollectionMeta, gather_hash, member_row, members_of};
use kvdb_core::storage::{Storage, StorageError, StoredValue, ValueKind};

/// Which fields of a hash a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields<'a> {
    /// All of them.
    All,
    /// Those of these it has, each once, in the order named.
    Only(&'a [&'a [u8]]),
    /// Of a large hash, at most `limit` after `after` (from the first when `None`) in byte
    /// order; of a small one, all.
    Page {
        /// The last field of the previous page.
        after: Option<&'a [u8]>,
        /// The most fields to return.
        limit: usize,
    },
}

/// What a read found: the stored value (expired or not), a hash as [`ValueKind::Hash`]
/// holding the fields asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The value.
    pub value: StoredValue,
    /// A hash's number of fields, whichever of them `value` holds.
    pub hash_len: Option<u64>,
    /// A page of a hash that stopped before its last field.
    pub more: bool,
}

/// The stored value of `key`, expired or not, with the fields of a hash `fields` selects.
pub fn read(
    storage: &dyn Storage,
    key: &[u8],
    fields: Fields<'_>,
) -> Result<Option<Found>, StorageError> {
    let mut stored = storage.get(key)?;
    loop {
        let Some(value) = stored else {
            return Ok(None);
        };
        let Some(meta) = CollectionMeta::of(&value) else {
            let only = match fields {
                Fields::Only(only) => Some(only),
                Fields::All | Fields::Page { .. } => None,
            };
            return Ok(Some(record(value, only)));
        };
        // The key row names the generation whose rows to read; reread it with each of them,
        // and start over if it changed in between (every write to the hash changes its
        // version).
        let read = match fields {
            Fields::All => page(storage, key, meta.generation, None, usize::MAX)?,
            Fields::Page { after, limit } => page(storage, key, meta.generation, after, limit)?,
            Fields::Only(fields) => some(storage, key, &value, meta.generation, fields)?,
        };
        match read {
            Ok(found) => return Ok(Some(found)),
            Err(changed) => stored = changed,
        }
    }
}

/// The stored value of `key`, expired or not, with a hash gathered whole.
pub fn read_whole(storage: &dyn Storage, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
    Ok(read(storage, key, Fields::All)?.map(|found| found.value))
}

/// A string, or a hash kept in its record, with only the fields asked for.
fn record(value: StoredValue, only: Option<&[&[u8]]>) -> Found {
    if value.kind != ValueKind::Hash {
        return Found {
            value,
            hash_len: None,
            more: false,
        };
    }
    let Ok(hash) = HashValue::decode(&value.value) else {
        // Left for the answer to report as corrupt.
        return Found {
            value,
            hash_len: None,
            more: false,
        };
    };
    let hash_len = Some(hash.len() as u64);
    let Some(fields) = only else {
        return Found {
            value,
            hash_len,
            more: false,
        };
    };
    let mut picked = HashValue::new();
    for field in fields {
        if let Some(v) = hash.get(field) {
            picked.set(field, v.to_vec());
        }
    }
    Found {
        value: StoredValue {
            value: picked.encode(),
            ..value
        },
        hash_len,
        more: false,
    }
}

/// Up to `limit` fields after `after` of the hash of generation `generation` under `key`,
/// or the key's value if the hash was replaced in between.
fn page(
    storage: &dyn Storage,
    key: &[u8],
    generation: u64,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Result<Found, Option<StoredValue>>, StorageError> {
    let range = members_of(key, generation);
    let (start, end) = range.bounds();
    let after_row = after.map(|field| member_row(key, generation, field));
    let start = after_row.as_deref().map_or(start, Bound::Excluded);
    // One row more than the page tells whether another page follows.
    let (again, mut rows) =
        storage.get_with_aux(Some(key), (start, end), limit.saturating_add(1))?;
    match again.as_ref().and_then(CollectionMeta::of) {
        Some(meta) if meta.generation == generation => {
            let more = rows.len() > limit;
            rows.truncate(limit);
            let row = again.expect("matched above");
            let value = gather_hash(key, &row, rows).expect("a key row of a hash");
            Ok(Ok(Found {
                value,
                hash_len: Some(meta.len),
                more,
            }))
        }
        _ => Ok(Err(again)),
    }
}

/// The fields `fields` of the hash whose key row is `key_row`, or the key's value if it
/// changed in between.
fn some(
    storage: &dyn Storage,
    key: &[u8],
    key_row: &StoredValue,
    generation: u64,
    fields: &[&[u8]],
) -> Result<Result<Found, Option<StoredValue>>, StorageError> {
    let mut picked = HashValue::new();
    for field in fields {
        if picked.get(field).is_some() {
            continue;
        }
        let row = member_row(key, generation, field);
        let bounds = (
            Bound::Included(row.as_slice()),
            Bound::Included(row.as_slice()),
        );
        let (again, mut rows) = storage.get_with_aux(Some(key), bounds, 1)?;
        if again.as_ref() != Some(key_row) {
            return Ok(Err(again));
        }
        if let Some((_, value)) = rows.pop() {
            picked.set(field, value);
        }
    }
    let hash_len = CollectionMeta::of(key_row).map(|m| m.len);
    let value = StoredValue {
        value: picked.encode(),
        kind: ValueKind::Hash,
        ..key_row.clone()
    };
    Ok(Ok(Found {
        value,
        hash_len,
        more: false,
    }))
}
