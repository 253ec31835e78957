//! The figures storage nodes send about their replicas, as the coordinator leader keeps
//! them: per shard, its leader's latest report, with read and write rates derived from the
//! counters of two reports by the same replica.
//!
//! Kept in the leader's memory only, like node liveness: a new leader starts empty and has
//! figures again within a few heartbeats. Pure bookkeeping; time is passed in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{NodeId, ShardId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A shard's figures as the Admin API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShardLoad {
    /// The replica that reported them (the shard's leader then).
    pub reported_by: NodeId,
    /// How long ago, in milliseconds.
    pub age_ms: u64,
    /// Keys stored.
    pub keys: u64,
    /// The leader's last applied log index.
    pub applied_index: u64,
    /// Reads per second between the last two reports; `None` after the first.
    pub reads_per_sec: Option<f64>,
    /// Writes per second between the last two reports; `None` after the first.
    pub writes_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    node: NodeId,
    at: Instant,
    stats: ShardStats,
    reads_per_sec: Option<f64>,
    writes_per_sec: Option<f64>,
}

impl Entry {
    fn load(&self, now: Instant) -> ShardLoad {
        ShardLoad {
            reported_by: self.node,
            age_ms: now.saturating_duration_since(self.at).as_millis() as u64,
            keys: self.stats.keys,
            applied_index: self.stats.applied_index,
            reads_per_sec: self.reads_per_sec,
            writes_per_sec: self.writes_per_sec,
        }
    }
}

/// Every shard's latest figures from its leader.
#[derive(Debug, Default)]
pub struct ShardStatsBook {
    entries: Mutex<HashMap<ShardId, Entry>>,
}

impl ShardStatsBook {
    /// Records what `node` reported at `now`; only its leaders' figures count.
    pub fn record(&self, node: NodeId, reports: &[ShardStats], now: Instant) {
        let mut entries = self.lock();
        for stats in reports.iter().filter(|s| s.leader) {
            let previous = entries.get(&stats.shard).copied();
            let rate = |total: fn(&ShardStats) -> u64| {
                let previous = previous.filter(|p| p.node == node)?;
                let elapsed = now.saturating_duration_since(previous.at);
                let delta = total(stats).checked_sub(total(&previous.stats))?;
                (elapsed > Duration::ZERO).then(|| delta as f64 / elapsed.as_secs_f64())
            };
            let entry = Entry {
                node,
                at: now,
                stats: *stats,
                reads_per_sec: rate(|s| s.reads_total),
                writes_per_sec: rate(|s| s.writes_total),
            };
            entries.insert(stats.shard, entry);
        }
    }

    /// `shard`'s latest figures, as of `now`.
    pub fn load(&self, shard: ShardId, now: Instant) -> Option<ShardLoad> {
        self.lock().get(&shard).map(|entry| entry.load(now))
    }

    /// Every shard's latest figures, as of `now` (for the scheduler's splits).
    pub fn loads(&self, now: Instant) -> BTreeMap<ShardId, ShardLoad> {
        self.lock()
            .iter()
            .map(|(shard, entry)| (*shard, entry.load(now)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(shard: u64, leader: bool, keys: u64, reads: u64, writes: u64) -> ShardStats {
        ShardStats {
            shard: ShardId(shard),
            leader,
            keys,
            applied_index: writes,
            reads_total: reads,
            writes_total: writes,
        }
    }

    #[test]
    fn rates_come_from_two_reports_of_the_same_leader() {
        let book = ShardStatsBook::default();
        let t0 = Instant::now();
        book.record(
            NodeId(1),
            &[report(0, true, 10, 100, 50), report(1, false, 9, 0, 0)],
            t0,
        );
        let first = book.load(ShardId(0), t0).unwrap();
        assert_eq!((first.keys, first.writes_per_sec), (10, None));
        assert!(
            book.load(ShardId(1), t0).is_none(),
            "followers' figures are not kept"
        );

        let t1 = t0 + Duration::from_secs(2);
        book.record(NodeId(1), &[report(0, true, 12, 300, 90)], t1);
        let second = book
            .load(ShardId(0), t1 + Duration::from_millis(5))
            .unwrap();
        assert_eq!(second.keys, 12);
        assert_eq!(second.reads_per_sec, Some(100.0));
        assert_eq!(second.writes_per_sec, Some(20.0));
        assert_eq!(second.age_ms, 5);

        // A new leader's counters start elsewhere: no rate until its second report.
        let t2 = t1 + Duration::from_secs(2);
        book.record(NodeId(2), &[report(0, true, 12, 7, 3)], t2);
        assert_eq!(book.load(ShardId(0), t2).unwrap().writes_per_sec, None);
        assert_eq!(book.load(ShardId(0), t2).unwrap().reported_by, NodeId(2));
    }
}
