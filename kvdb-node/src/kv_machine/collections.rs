//! The keys of a shard that may hold a hash in member rows.
//!
//! An unconditional put is applied without reading the key it replaces (see
//! `command_keys`), so on its own it cannot know that the key held a hash in member rows,
//! whose rows must go with it. The machine keeps this set instead: every key whose key row
//! of a hash in member rows was written, or found in storage when the machine opened or
//! installed a snapshot. A put reads the replaced key row only for a key in the set, which
//! costs nothing for the strings that are the usual case.
//!
//! The set may hold keys that no longer hold such a hash (a split moved them away; a read
//! then finds a string or nothing, and drops no rows), never the other way round: every
//! replica applies the same log, so each drops the same rows. A machine that opens finds
//! the collections whose rows outlived their key row the same way (see `leftovers`).

use std::collections::HashSet;
use std::ops::Bound;

use kvdb_core::member_rows::{CollectionMeta, all_member_rows, members_of, parse_member_row};
use kvdb_core::storage::{Storage, StorageError};

use super::leftovers::Collection;

#[derive(Debug, Default)]
pub(super) struct CollectionKeys(HashSet<Vec<u8>>);

impl CollectionKeys {
    /// The keys whose key rows name a collection in member rows in `storage`, and the
    /// collections whose rows no key row names (left for the sweeper): one short read per
    /// collection, however many rows each has.
    pub(super) fn load(storage: &dyn Storage) -> Result<(Self, Vec<Collection>), StorageError> {
        let all = all_member_rows();
        let (mut from, end) = all.bounds();
        let mut next: Vec<u8>;
        let mut keys = HashSet::new();
        let mut left = Vec::new();
        loop {
            let Some((row, _)) = storage.aux_range((from, end), 1)?.pop() else {
                return Ok((Self(keys), left));
            };
            next = match parse_member_row(&row) {
                Some((key, generation, _)) => {
                    let named = storage
                        .get(key)?
                        .and_then(|value| CollectionMeta::of(&value))
                        .is_some_and(|meta| meta.generation == generation);
                    if named {
                        keys.insert(key.to_vec());
                    } else {
                        left.push((key.to_vec(), generation));
                    }
                    match members_of(key, generation).bounds().1 {
                        Bound::Excluded(after) => after.to_vec(),
                        _ => return Ok((Self(keys), left)),
                    }
                }
                // Not a member row's shape: step past it.
                None => [row.as_slice(), &[0]].concat(),
            };
            from = Bound::Included(next.as_slice());
        }
    }

    /// Whether `key` may hold a hash in member rows.
    pub(super) fn may_hold(&self, key: &[u8]) -> bool {
        !self.0.is_empty() && self.0.contains(key)
    }

    /// `key` now holds a hash in member rows.
    pub(super) fn note(&mut self, key: &[u8]) {
        if !self.0.contains(key) {
            self.0.insert(key.to_vec());
        }
    }

    /// `key`'s member rows are gone.
    pub(super) fn forget(&mut self, key: &[u8]) {
        self.0.remove(key);
    }
}
