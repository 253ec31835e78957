//! The coordinator's metrics: the shard map it applied (nodes by status, shards by state, the
//! map version) and whether it leads, read at scrape time; the node status changes it
//! proposed and the operations its scheduler started; its watchers and what they were sent.
//! Served at `GET /metrics` on the Admin API, and on `--metrics-listen` like every other
//! server.

use kvdb_core::metrics::client as prometheus_client;
use kvdb_core::metrics::{
    Collector, ConstCounter, ConstGauge, DescriptorEncoder, EncodeMetric, Registry, encode_family,
};
use kvdb_core::{NodeStatus, ShardMap, ShardState};

use crate::Coordinator;
use crate::admin::status_name;
use crate::coordinator::Counts;

/// A registry of `coordinator`'s metrics.
pub fn registry(coordinator: Coordinator) -> Registry {
    let mut registry = kvdb_core::metrics::registry();
    registry.register_collector(Box::new(MapCollector(coordinator)));
    registry
}

struct MapCollector(Coordinator);

impl std::fmt::Debug for MapCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MapCollector")
    }
}

impl Collector for MapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_map(&mut encoder, &self.0.map(), self.0.is_leader())?;
        encode_counts(&mut encoder, &self.0.counts())
    }
}

/// The counters this member keeps.
fn encode_counts(
    e: &mut DescriptorEncoder<'_>,
    counts: &Counts<'_>,
) -> Result<(), std::fmt::Error> {
    let no_labels: [(&str, &str); 0] = [];
    let sent = |n: &std::sync::atomic::AtomicU64| {
        ConstCounter::new(n.load(std::sync::atomic::Ordering::Relaxed))
    };
    encode_family(
        e,
        "coordinator_watchers",
        "Shard-map watchers (nodes, gateways, smart clients) following this member",
        [(no_labels, gauge(counts.feed.watchers()))],
    )?;
    encode_family(
        e,
        "coordinator_watch_events",
        "Map events (deltas and snapshots) sent to watchers",
        [(no_labels, sent(&counts.feed.sent.events))],
    )?;
    encode_family(
        e,
        "coordinator_watch_resyncs",
        "Snapshots sent to watchers that fell behind the change buffer",
        [(no_labels, sent(&counts.feed.sent.resyncs))],
    )?;
    let metric = e.encode_descriptor(
        "coordinator_node_status_changes",
        "Node status changes this member proposed from heartbeats and their absence, by new status",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    counts.liveness_changes.encode(metric)?;
    let metric = e.encode_descriptor(
        "coordinator_scheduler_operations",
        "Operations the scheduler started (or failed to start), by kind and outcome",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    counts.operations.encode(metric)
}

/// Whether a shard's state is the one a label names.
type StateTest = fn(&ShardState) -> bool;

fn gauge(value: usize) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The gauges of `map`, as seen by a member that is (or is not) the coordinator leader.
fn encode_map(
    e: &mut DescriptorEncoder<'_>,
    map: &ShardMap,
    is_leader: bool,
) -> Result<(), std::fmt::Error> {
    let no_labels: [(&str, &str); 0] = [];
    encode_family(
        e,
        "coordinator_map_version",
        "Version of the applied shard map",
        [(no_labels, gauge(map.version.0 as usize))],
    )?;
    let statuses = [
        NodeStatus::Alive,
        NodeStatus::Suspect,
        NodeStatus::Dead,
        NodeStatus::Draining,
    ];
    encode_family(
        e,
        "coordinator_nodes",
        "Registered storage nodes by status",
        statuses.map(|status| {
            let count = map.nodes.values().filter(|n| n.status == status).count();
            ([("status", status_name::name(status))], gauge(count))
        }),
    )?;
    let states: [(&str, StateTest); 3] = [
        ("stable", |s| *s == ShardState::Stable),
        ("moving", |s| matches!(s, ShardState::Moving { .. })),
        ("splitting", |s| matches!(s, ShardState::Splitting { .. })),
    ];
    encode_family(
        e,
        "coordinator_shards",
        "Shards by configuration state",
        states.map(|(state, is)| {
            let count = map.shards.values().filter(|s| is(&s.state)).count();
            ([("state", state)], gauge(count))
        }),
    )?;
    encode_family(
        e,
        "coordinator_is_leader",
        "1 if this member is the coordinator leader",
        [(no_labels, gauge(usize::from(is_leader)))],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::{MapVersion, NodeId, NodeInfo};

    #[derive(Debug)]
    struct Fixed(ShardMap);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_map(&mut encoder, &self.0, true)
        }
    }

    #[test]
    fn renders_every_family_with_labels() {
        let mut map = ShardMap {
            version: MapVersion(7),
            ..ShardMap::default()
        };
        for (id, status) in [(1, NodeStatus::Alive), (2, NodeStatus::Dead)] {
            map.nodes.insert(
                NodeId(id),
                NodeInfo {
                    id: NodeId(id),
                    name: format!("node-{id}"),
                    address: format!("127.0.0.1:{}", 7000 + id),
                    zone: "default".into(),
                    status,
                    resp_address: String::new(),
                },
            );
        }
        let mut registry = kvdb_core::metrics::registry();
        registry.register_collector(Box::new(Fixed(map)));
        let text = kvdb_core::metrics::encode(&registry);
        assert!(text.contains("kvdb_coordinator_map_version 7\n"), "{text}");
        assert!(text.contains("kvdb_coordinator_nodes{status=\"alive\"} 1\n"));
        assert!(text.contains("kvdb_coordinator_nodes{status=\"dead\"} 1\n"));
        assert!(text.contains("kvdb_coordinator_nodes{status=\"suspect\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_shards{state=\"stable\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_shards{state=\"splitting\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_is_leader 1\n"));
        assert!(text.contains("# TYPE kvdb_coordinator_nodes gauge\n"));
    }
}
