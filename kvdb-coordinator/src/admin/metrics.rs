//! `GET /metrics`: a few coordinator gauges in the Prometheus text format.
//!
//! Rendered on demand from the applied shard map; there is no registry and no
//! counters, so a scrape costs one pass over the map. Out of scope: request
//! latency histograms and per-shard series (the cardinality would grow with
//! the shard count).

use std::fmt::Write;

use kvdb_core::{NodeStatus, ShardMap, ShardState};

use super::api::status_name;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the gauges for `map`, as seen by a member that is (or is not) the
/// coordinator leader.
pub fn render(map: &ShardMap, is_leader: bool) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "kvdb_coordinator_map_version",
        "Version of the applied shard map.",
        &[(None, map.version.0)],
    );
    let by_status = [
        NodeStatus::Alive,
        NodeStatus::Suspect,
        NodeStatus::Dead,
        NodeStatus::Draining,
    ]
    .map(|status| {
        let count = map.nodes.values().filter(|n| n.status == status).count();
        (Some(("status", status_name::name(status))), count as u64)
    });
    gauge(
        &mut out,
        "kvdb_coordinator_nodes",
        "Registered storage nodes by status.",
        &by_status,
    );
    let in_state = |wanted: fn(&ShardState) -> bool| {
        map.shards.values().filter(|s| wanted(&s.state)).count() as u64
    };
    gauge(
        &mut out,
        "kvdb_coordinator_shards",
        "Shards by configuration state.",
        &[
            (
                Some(("state", "stable")),
                in_state(|s| *s == ShardState::Stable),
            ),
            (
                Some(("state", "moving")),
                in_state(|s| matches!(s, ShardState::Moving { .. })),
            ),
            (
                Some(("state", "splitting")),
                in_state(|s| matches!(s, ShardState::Splitting { .. })),
            ),
        ],
    );
    gauge(
        &mut out,
        "kvdb_coordinator_is_leader",
        "1 if this member is the coordinator leader.",
        &[(None, u64::from(is_leader))],
    );
    out
}

/// One sample: an optional `(label, value)` pair and the gauge's value.
type Sample<'a> = (Option<(&'a str, &'a str)>, u64);

/// Appends one gauge family. Label values are fixed identifiers here, so
/// they need no escaping.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[Sample<'_>]) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (label, value) in samples {
        match label {
            None => _ = writeln!(out, "{name} {value}"),
            Some((key, v)) => _ = writeln!(out, "{name}{{{key}=\"{v}\"}} {value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::{MapVersion, NodeId, NodeInfo};

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
                },
            );
        }
        let text = render(&map, true);
        assert!(text.contains("kvdb_coordinator_map_version 7\n"));
        assert!(text.contains("kvdb_coordinator_nodes{status=\"alive\"} 1\n"));
        assert!(text.contains("kvdb_coordinator_nodes{status=\"dead\"} 1\n"));
        assert!(text.contains("kvdb_coordinator_nodes{status=\"suspect\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_shards{state=\"stable\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_shards{state=\"splitting\"} 0\n"));
        assert!(text.contains("kvdb_coordinator_is_leader 1\n"));
        assert!(text.contains("# TYPE kvdb_coordinator_nodes gauge\n"));
    }
}
