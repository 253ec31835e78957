//! Large collections removed without removing their member rows in the same command.
//!
//! Deleting a hash of 300,000 fields row by row in the entry that deletes its key held the
//! shard's apply for a second, and every write behind it waited. A `DEL`, `UNLINK`, expiry
//! or overwrite of a collection of more than [`INLINE_DROP_MAX`] members now removes only
//! its key row; its member rows stay, of a generation that no key row names, and the shard
//! leader's sweeper removes them [`SWEEP_ROWS`] at a time, one `Op::Sweep` entry each.
//!
//! Why this is safe:
//! - **No read sees the rows.** Every read of a collection goes through its key row and
//!   reads only rows of the generation the key row names. A generation is the version of
//!   the write that created the collection, unique in the shard's log, so a collection
//!   created later under the same key never names an old one.
//! - **A sweep never removes live rows.** Applying a sweep re-reads the key row and removes
//!   nothing while it names the swept generation.
//! - **Every replica agrees.** The set is decided by the log alone: a removal adds to it, a
//!   sweep that finds fewer rows than its limit (or a key the shard no longer serves) takes
//!   from it. A replica that opens, installs a snapshot or is born from a split finds the
//!   same set in its storage (`CollectionKeys::load`), as do rows left behind by builds
//!   that dropped rows with no sweep to follow.
//! - **A lost sweep is harmless.** Any leader may propose any sweep, twice or late: the rows
//!   it removes are unreadable, and a sweep of rows already gone removes nothing.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

/// The most members a removed collection may have for its rows to go in the removing
/// command itself; beyond it they are swept.
pub const INLINE_DROP_MAX: u64 = 1024;

/// The most member rows one sweep command removes: about 4 ms of apply on the 2-core box.
pub const SWEEP_ROWS: u32 = 1024;

/// A collection's key and the generation of its member rows.
pub type Collection = (Vec<u8>, u64);

/// The collections whose member rows wait for the sweeper; shared by the
/// machine, which decides it, and the replica's sweeper, which reads it.
#[derive(Debug, Default)]
pub struct Leftovers {
    set: Mutex<BTreeSet<Collection>>,
    /// Wakes the sweeper, which sleeps while the set is empty: a node leading a thousand
    /// shards would otherwise wake a thousand sweepers every round to find nothing.
    added: Notify,
}

impl Leftovers {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<Collection>> {
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The collection of `generation` under `key` lost its key row.
    pub(super) fn add(&self, key: &[u8], generation: u64) {
        self.set().insert((key.to_vec(), generation));
        self.added.notify_one();
    }

    /// No row of the collection is left.
    pub(super) fn remove(&self, key: &[u8], generation: u64) {
        self.set().remove(&(key.to_vec(), generation));
    }

    /// Replaces the whole set with what a storage holds.
    pub(super) fn reset(&self, left: impl IntoIterator<Item = Collection>) {
        let mut set = self.set();
        *set = left.into_iter().collect();
        if !set.is_empty() {
            self.added.notify_one();
        }
    }

    /// Returns once some collection waits (at once if one does).
    pub async fn wait_for_some(&self) {
        // A permit left by an addition nobody waited for makes the first wait return.
        while self.is_empty() {
            self.added.notified().await;
        }
    }

    /// The first collection waiting, if any: the one the sweeper works on.
    pub fn first(&self) -> Option<Collection> {
        self.set().first().cloned()
    }

    /// How many collections wait.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Every collection waiting, in order.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<Collection> {
        self.set().iter().cloned().collect()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.set().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_sweeper_sleeps_until_a_collection_waits_and_wakes_for_one() {
        let left = Arc::new(Leftovers::default());
        let waiter = tokio::spawn({
            let left = left.clone();
            async move { left.wait_for_some().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing waits yet");
        left.add(b"hash", 7);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the addition")
            .unwrap();
        // Waiting again returns at once while the collection is there.
        left.wait_for_some().await;
        left.remove(b"hash", 7);
        left.reset([(b"other".to_vec(), 9)]);
        tokio::time::timeout(Duration::from_secs(10), left.wait_for_some())
            .await
            .expect("a reset that finds collections wakes the sweeper");
    }
}
