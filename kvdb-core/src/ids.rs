//! Newtypes for the numbers KvDB passes around, so a shard id is never taken
//! for a node id or an epoch for a map version.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(
    /// A storage node, assigned by the coordinator; also the node's Raft id.
    NodeId(u64)
);
id_type!(
    /// A shard: one contiguous slot range and one Raft group.
    ShardId(u64)
);
id_type!(
    /// One of the 16384 hash slots.
    Slot(u16)
);
id_type!(
    /// Per-shard configuration generation; bumped on replica-set or range
    /// changes, never on a leader change.
    Epoch(u64)
);
id_type!(
    /// Version of the whole shard map; bumped by every metadata change.
    MapVersion(u64)
);
id_type!(
    /// Version of a stored value: `log_index << 16 | position`, the Raft log
    /// index of the entry that wrote it shifted left 16 bits, OR the write's
    /// position in that entry's batch. Versions stay unique and increasing
    /// when one log entry carries a batch of writes; an absent key has 0.
    Version(u64)
);

impl Epoch {
    /// The next epoch.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl MapVersion {
    /// The next map version.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// Number of hash slots, as in Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;
