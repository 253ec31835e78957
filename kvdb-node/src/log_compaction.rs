//! Compacting shard logs by size: a replica whose log grew by more than
//! [`NodeConfig::snapshot_log_bytes`](crate::config::NodeConfig::snapshot_log_bytes) since its
//! last snapshot builds one, and openraft then purges the log behind it (keeping
//! `logs_kept_after_snapshot` entries for followers that lag a little).
//!
//! openraft 0.9's snapshot policy counts entries only, and an entry packs every write a leader
//! batched into it, so under load a log reached tens of MiB per shard between snapshots, many
//! times the shard's data. Counting bytes bounds it by size. Snapshots and purges are
//! openraft's usual ones, so what a snapshot guarantees is unchanged: this only decides when.
//!
//! One node-wide loop checks every replica once a [`CHECK_EVERY`], which costs a few atomic
//! reads per replica: no per-shard timer wakes an idle node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kvdb_core::ShardId;

use crate::replica_manager::ReplicaManager;
use crate::shutdown::Shutdown;

/// How often every replica's log growth is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the loop remembers of one replica's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogGrowth {
    /// The replica's snapshot count (built and installed) when last seen.
    snapshots: u64,
    /// Its appended-bytes count when its last snapshot was seen or asked for.
    since: u64,
}

impl LogGrowth {
    /// The first look at a replica: its log counts from here.
    pub fn new(appended: u64, snapshots: u64) -> LogGrowth {
        LogGrowth {
            snapshots,
            since: appended,
        }
    }

    /// Whether a snapshot is due now that the replica has appended `appended` bytes and taken
    /// `snapshots` snapshots in all, with `limit` bytes allowed between snapshots (0: never
    /// by size). A snapshot taken meanwhile, for any reason, restarts the count; so does a
    /// snapshot asked for, so that one that takes a while is not asked for again.
    pub fn due(&mut self, appended: u64, snapshots: u64, limit: u64) -> bool {
        if snapshots != self.snapshots {
            *self = LogGrowth::new(appended, snapshots);
            return false;
        }
        let due = limit > 0 && appended.saturating_sub(self.since) >= limit;
        if due {
            self.since = appended;
        }
        due
    }
}

/// Checks every open replica every [`CHECK_EVERY`] until `stop`, triggering the snapshots
/// that are due.
pub(crate) async fn run(manager: Arc<ReplicaManager>, limit: u64, mut stop: Shutdown) {
    if limit == 0 {
        return;
    }
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<ShardId, LogGrowth> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = tick.tick() => {}
        }
        let shards = manager.shards();
        seen.retain(|shard, _| shards.contains(shard));
        for shard in shards {
            let Some(replica) = manager.replica(shard) else {
                continue;
            };
            let (appended, snapshots) = replica.log_growth();
            // The count starts when the replica opens, so all of it is log since then.
            let growth = seen
                .entry(shard)
                .or_insert_with(|| LogGrowth::new(0, snapshots));
            if growth.due(appended, snapshots, limit) {
                tracing::debug!(%shard, appended, "log grew past its size limit: snapshot");
                replica.trigger_snapshot().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_once_the_log_grew_by_the_limit() {
        let mut growth = LogGrowth::new(1_000, 0);
        assert!(!growth.due(1_500, 0, 1_000));
        assert!(growth.due(2_000, 0, 1_000));
        // Asked for: not again until the log grows by the limit once more.
        assert!(!growth.due(2_500, 0, 1_000));
        assert!(growth.due(3_000, 0, 1_000));
    }

    #[test]
    fn any_snapshot_restarts_the_count_and_zero_turns_it_off() {
        let mut growth = LogGrowth::new(0, 0);
        // Built by the entry-count policy, or installed from the leader, at 900 bytes.
        assert!(!growth.due(900, 1, 1_000));
        assert!(!growth.due(1_800, 1, 1_000));
        assert!(growth.due(1_900, 1, 1_000));
        let mut off = LogGrowth::new(0, 0);
        assert!(!off.due(u64::MAX, 0, 0));
    }
}
