//! The registry of the Raft groups a process hosts, keyed by group id.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use openraft::{LogId, Raft};

use super::TransportTypeConfig;

/// Group id -> running [`Raft`], consulted by the transport service for every
/// incoming message. Cloning is cheap and clones share the registry.
///
/// The coordinator registers its single group as 0; a storage node registers
/// each shard replica under its shard id when the replica is created and
/// unregisters it when the replica is dropped.
pub struct RaftRouter<C: TransportTypeConfig> {
    groups: Arc<RwLock<HashMap<u64, Hosted<C>>>>,
}

/// A registered group: its Raft, and the vote floor it was registered with.
struct Hosted<C: TransportTypeConfig> {
    raft: Raft<C>,
    vote_floor: Option<LogId<u64>>,
}

impl<C: TransportTypeConfig> RaftRouter<C> {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            groups: Arc::default(),
        }
    }

    /// Routes messages for `group` to `raft` from now on. Returns the Raft
    /// previously registered for the group, if any.
    pub fn register(&self, group: u64, raft: Raft<C>) -> Option<Raft<C>> {
        self.register_with_floor(group, raft, None)
    }

    /// [`register`](Self::register), refusing the group's vote to any candidate whose last
    /// log id is below `vote_floor` (see `LogDb::remove_group`).
    pub fn register_with_floor(
        &self,
        group: u64,
        raft: Raft<C>,
        vote_floor: Option<LogId<u64>>,
    ) -> Option<Raft<C>> {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, Hosted { raft, vote_floor })
            .map(|h| h.raft)
    }

    /// The vote floor `group` was registered with.
    pub fn vote_floor(&self, group: u64) -> Option<LogId<u64>> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&group)
            .and_then(|h| h.vote_floor)
    }

    /// Stops routing messages for `group`: later ones are refused as for an
    /// unknown group. Returns the Raft that was registered, if any.
    pub fn unregister(&self, group: u64) -> Option<Raft<C>> {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group)
            .map(|h| h.raft)
    }

    /// The Raft registered for `group`.
    pub fn get(&self, group: u64) -> Option<Raft<C>> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&group)
            .map(|h| h.raft.clone())
    }

    /// Every registered group with its Raft, in no particular order.
    pub fn entries(&self) -> Vec<(u64, Raft<C>)> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(group, h)| (*group, h.raft.clone()))
            .collect()
    }

    /// The ids of the registered groups, in no particular order.
    pub fn groups(&self) -> Vec<u64> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

// Manual impls: a derive would require `C: Clone + Default` for no reason.
impl<C: TransportTypeConfig> Clone for RaftRouter<C> {
    fn clone(&self) -> Self {
        Self {
            groups: Arc::clone(&self.groups),
        }
    }
}

impl<C: TransportTypeConfig> Default for RaftRouter<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: TransportTypeConfig> std::fmt::Debug for RaftRouter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRouter")
            .field("groups", &self.groups())
            .finish()
    }
}
