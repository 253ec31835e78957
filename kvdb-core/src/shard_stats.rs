//! What a storage node tells the coordinator about each replica it runs, with its
//! heartbeats: sizes and request counters, from which the coordinator derives rates
//! (for `kvdb admin shards`, and for scheduling by load and size).

use crate::ShardId;
use crate::proto::v1 as pb;

/// One replica's figures when its node sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    /// The shard.
    pub shard: ShardId,
    /// Whether this replica led the shard.
    pub leader: bool,
    /// Keys stored (expired keys not yet removed included).
    pub keys: u64,
    /// The replica's last applied Raft log index.
    pub applied_index: u64,
    /// Reads this replica answered since it opened.
    pub reads_total: u64,
    /// Writes this replica answered since it opened.
    pub writes_total: u64,
}

impl From<&ShardStats> for pb::ShardStats {
    fn from(s: &ShardStats) -> Self {
        pb::ShardStats {
            shard_id: s.shard.0,
            leader: s.leader,
            keys: s.keys,
            applied_index: s.applied_index,
            reads_total: s.reads_total,
            writes_total: s.writes_total,
        }
    }
}

impl From<&pb::ShardStats> for ShardStats {
    fn from(s: &pb::ShardStats) -> Self {
        ShardStats {
            shard: ShardId(s.shard_id),
            leader: s.leader,
            keys: s.keys,
            applied_index: s.applied_index,
            reads_total: s.reads_total,
            writes_total: s.writes_total,
        }
    }
}
