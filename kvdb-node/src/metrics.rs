//! A node's metrics: the requests [`KvService`](crate::kv_service::KvService) served, and,
//! read at scrape time, each replica's Raft position, the Raft log writer, the disk guard and
//! the shard map this node follows.
//!
//! Per-shard series carry a `shard` label, so their number grows with the shards a node
//! hosts (about ten series each); a node with thousands of replicas makes a large scrape.

use std::path::PathBuf;
use std::sync::Arc;

use kvdb_core::metrics::{
    Collector, ConstCounter, ConstGauge, DescriptorEncoder, Registry, RequestMetrics, encode_family,
};
use kvdb_core::raft::log_store::LogDb;

use crate::config::{KV_DB_FILE, LOG_DB_FILE};
use crate::disk::DiskGuard;
use crate::replica::RaftFigures;
use crate::replica_manager::ReplicaManager;
use crate::write_queue::BatchCounts;

/// Builds a node's registry: its request metrics (returned, for the service to record) and
/// the collectors of everything else.
pub fn register(
    manager: Arc<ReplicaManager>,
    batches: Arc<BatchCounts>,
    log_db: &LogDb,
    disk: Arc<DiskGuard>,
    data_dir: PathBuf,
) -> (Registry, RequestMetrics) {
    let mut registry = kvdb_core::metrics::registry();
    let requests = RequestMetrics::register(&mut registry, "node");
    log_db.register_metrics(&mut registry);
    manager.cache().register_metrics(&mut registry, "node");
    registry.register_collector(Box::new(NodeCollector {
        manager,
        batches,
        disk,
        data_dir,
    }));
    (registry, requests)
}

struct NodeCollector {
    manager: Arc<ReplicaManager>,
    batches: Arc<BatchCounts>,
    disk: Arc<DiskGuard>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

/// A per-shard series: its name, its help, and how to read it from a replica's figures.
type Series = (&'static str, &'static str, fn(&RaftFigures) -> u64);

/// No labels.
const NONE: [(&str, &str); 0] = [];

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let shards: Vec<(u64, RaftFigures)> = self
            .manager
            .shards()
            .into_iter()
            .filter_map(|shard| Some((shard.0, self.manager.replica(shard)?.raft_figures())))
            .collect();
        let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        encode_family(
            e,
            "node_shards",
            "Shard replicas open on this node",
            [(NONE, gauge(shards.len() as u64))],
        )?;
        let led = shards.iter().filter(|(_, f)| f.is_leader).count();
        encode_family(
            e,
            "node_shards_led",
            "Shard replicas on this node that lead their group",
            [(NONE, gauge(led as u64))],
        )?;
        let counted = |n: &std::sync::atomic::AtomicU64| {
            ConstCounter::new(n.load(std::sync::atomic::Ordering::Relaxed))
        };
        encode_family(
            e,
            "node_write_entries",
            "Raft entries the shards' write queues proposed on this node (as leader)",
            [(NONE, counted(&self.batches.entries))],
        )?;
        encode_family(
            e,
            "node_batched_writes",
            "Client writes in those entries: writes per entry is the batching",
            [(NONE, counted(&self.batches.writes))],
        )?;
        encode_family(
            e,
            "node_raft_restarts",
            "Shard replicas reopened after their Raft group stopped on an error",
            [(NONE, ConstCounter::new(self.manager.restarts()))],
        )?;
        let (free, refusing) = self.disk.state();
        encode_family(
            e,
            "node_disk_free_bytes",
            "Free space of the data directory's filesystem, as last sampled",
            [(NONE, gauge(free))],
        )?;
        encode_family(
            e,
            "node_writes_refused",
            "1 while writes are refused because the disk is under its reserve",
            [(NONE, gauge(u64::from(refusing)))],
        )?;
        let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let log_path = self.data_dir.join(LOG_DB_FILE);
        let segments = std::fs::read_dir(LogDb::segments_dir(&log_path))
            .map(|dir| dir.flatten().map(|e| size(&e.path())).sum::<u64>())
            .unwrap_or(0);
        let files = [
            ([("file", "raft_log")], gauge(size(&log_path) + segments)),
            (
                [("file", "kv")],
                gauge(size(&self.data_dir.join(KV_DB_FILE))),
            ),
        ];
        encode_family(
            e,
            "node_data_bytes",
            "Size of the node's Raft log (segment files and snapshot database) and key-value database",
            files,
        )?;
        let per_shard = |value: fn(&RaftFigures) -> u64| {
            shards
                .iter()
                .map(move |(shard, f)| ([("shard", *shard)], gauge(value(f))))
        };
        let gauges: [Series; 7] = [
            (
                "shard_leader",
                "1 if this replica leads the shard's Raft group",
                |f| u64::from(f.is_leader),
            ),
            ("shard_term", "The replica's current Raft term", |f| f.term),
            (
                "shard_last_log_index",
                "Index of the last entry in the replica's Raft log",
                |f| f.last_log_index,
            ),
            (
                "shard_applied_index",
                "Index of the last entry applied to the replica's state",
                |f| f.applied_index,
            ),
            (
                "shard_apply_lag_entries",
                "Entries in the replica's log not applied yet",
                |f| f.last_log_index.saturating_sub(f.applied_index),
            ),
            (
                "shard_snapshot_index",
                "Index the replica's last snapshot covers",
                |f| f.snapshot_index,
            ),
            (
                "shard_purged_index",
                "Index up to which the replica's log was purged",
                |f| f.purged_index,
            ),
        ];
        for (name, help, value) in gauges {
            encode_family(e, name, help, per_shard(value))?;
        }
        // A count per shard from its storage (a read of its table's length, plus the writes
        // still buffered in memory), not from Raft's figures.
        encode_family(
            e,
            "shard_keys",
            "Keys the replica stores, expired ones not yet purged included",
            shards.iter().filter_map(|(shard, _)| {
                let replica = self.manager.replica(kvdb_core::ShardId(*shard))?;
                let keys = replica.storage().len().ok()?;
                Some(([("shard", *shard)], gauge(keys)))
            }),
        )?;
        encode_family(
            e,
            "shard_collections_to_sweep",
            "Removed large collections whose member rows the leader's sweeper has yet to remove",
            shards.iter().filter_map(|(shard, _)| {
                let replica = self.manager.replica(kvdb_core::ShardId(*shard))?;
                Some((
                    [("shard", *shard)],
                    gauge(replica.collections_to_sweep() as u64),
                ))
            }),
        )?;
        encode_family(
            e,
            "shard_follower_lag_entries",
            "On a leader: entries each follower is known to be missing",
            shards.iter().flat_map(|(shard, f)| {
                f.replication.iter().map(move |(follower, matched)| {
                    (
                        [("shard", *shard), ("follower", follower.0)],
                        gauge(f.last_log_index.saturating_sub(*matched)),
                    )
                })
            }),
        )?;
        let counters: [Series; 5] = [
            (
                "shard_reads",
                "Reads this replica answered since it opened",
                |f| f.reads_total,
            ),
            (
                "shard_writes",
                "Writes this replica answered since it opened",
                |f| f.writes_total,
            ),
            (
                "shard_leader_changes",
                "Times another node took over as the group's leader, as this replica saw it",
                |f| f.leader_changes,
            ),
            (
                "shard_snapshots_built",
                "Snapshots this replica built from its state (log compaction)",
                |f| f.snapshots_built,
            ),
            (
                "shard_snapshots_installed",
                "Snapshots this replica received from its leader and installed",
                |f| f.snapshots_installed,
            ),
        ];
        for (name, help, value) in counters {
            let samples = shards
                .iter()
                .map(|(shard, f)| ([("shard", *shard)], ConstCounter::new(value(f))));
            encode_family(e, name, help, samples)?;
        }
        Ok(())
    }
}
