//! A key's value as clients read it: a hash kept in member rows gathered whole from its key
//! row and its rows, read at one point in time (`kvdb_core::member_rows`).
//!
//! Out of scope: reading part of a large hash (one field, a page of `HSCAN`): every read of
//! it carries all its members for now.

use kvdb_core::member_rows::{CollectionMeta, gather_hash, members_of};
use kvdb_core::storage::{Storage, StorageError, StoredValue};

/// The stored value of `key`, expired or not, with a hash in member rows gathered whole.
pub fn read_whole(storage: &dyn Storage, key: &[u8]) -> Result<Option<StoredValue>, StorageError> {
    let mut stored = storage.get(key)?;
    // The key row names the generation whose rows to read; reread it with them, and again in
    // the rare case that the collection was replaced in between.
    while let Some(meta) = stored.as_ref().and_then(CollectionMeta::of) {
        let range = members_of(key, meta.generation);
        let (again, rows) = storage.get_with_aux(Some(key), range.bounds(), usize::MAX)?;
        match again {
            Some(row)
                if CollectionMeta::of(&row).map(|m| m.generation) == Some(meta.generation) =>
            {
                return Ok(gather_hash(key, &row, rows));
            }
            again => stored = again,
        }
    }
    Ok(stored)
}
