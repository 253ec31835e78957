//! Redis Cluster mode on a storage node: where a key's slot is served, and the `CLUSTER`
//! replies, as pure functions of the shard map.
//!
//! KvDB's slots are Redis Cluster's, so a cluster-aware client can route by them. Each shard
//! is a slot range with its own Raft leader, and the node leading it is the Redis "master"
//! of that range: a node answers the keys of the shards it leads and redirects the others
//! with `-MOVED slot host:port` to the leader's RESP address. A node leads some ranges and
//! follows others, which Redis's one-master-per-node picture cannot say, so `CLUSTER NODES`
//! lists every node as a master of the ranges it leads, and `CLUSTER SLOTS` and
//! `CLUSTER SHARDS` list each range with its leader first and its other replicas after.
//!
//! Where the map names no leader, or a leader with no RESP address, the node serves the
//! command itself (its executor finds the leader, or answers `TRYAGAIN`) rather than send
//! the client nowhere. Two nodes whose maps disagree for a moment may redirect a client to
//! each other until the maps converge; Redis clients bound their redirects.

use kvdb_core::ids::{NodeId, Slot};
use kvdb_core::router::Router;
use kvdb_core::shard_map::{NodeStatus, ShardInfo, ShardMap};

use crate::reply::Reply;

/// Where one slot's commands go, as the map says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node answers.
    Here,
    /// Another node leads the slot: `-MOVED slot address`.
    Moved(String),
}

/// The route of `slot` for node `me`; `replica_reads` (`READONLY`) lets a replica answer
/// reads of its shards. Looked up through the map's [`Router`], as every request's route is.
pub fn route(router: &Router, me: NodeId, slot: Slot, replica_reads: bool) -> Route {
    let map = router.map();
    let Some(shard) = router
        .route_slot(slot)
        .ok()
        .and_then(|r| map.shards.get(&r.shard))
    else {
        return Route::Here;
    };
    if replica_reads && shard.members().contains(&me) {
        return Route::Here;
    }
    match shard.leader {
        Some(leader) if leader != me => match resp_address(map, leader) {
            Some(address) => Route::Moved(address.to_owned()),
            None => Route::Here,
        },
        _ => Route::Here,
    }
}

/// The `MOVED` error for `slot`.
pub fn moved(slot: Slot, address: &str) -> Reply {
    Reply::Error(format!("MOVED {} {address}", slot.0))
}

/// A node's 40-character id, as Redis Cluster names nodes: its KvDB id in hex, so that the
/// same node keeps the same id across restarts.
pub fn node_id(node: NodeId) -> String {
    format!("{:040x}", node.0)
}

fn resp_address(map: &ShardMap, node: NodeId) -> Option<&str> {
    map.nodes
        .get(&node)
        .map(|n| n.resp_address.as_str())
        .filter(|a| !a.is_empty())
}

/// `host` and `port` of a `host:port` address.
fn host_port(address: &str) -> (&str, i64) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (address, 0),
    }
}

/// A shard's nodes with a RESP address, the Redis master (its leader, else its first
/// replica) first.
fn shard_nodes<'m>(map: &'m ShardMap, shard: &ShardInfo) -> Vec<(NodeId, &'m str)> {
    let mut ids = shard.replicas.clone();
    if let Some(leader) = shard.leader {
        ids.retain(|n| *n != leader);
        ids.insert(0, leader);
    }
    ids.into_iter()
        .filter_map(|id| resp_address(map, id).map(|a| (id, a)))
        .collect()
}

/// Every shard with a node Redis clients can reach, with those nodes (see [`shard_nodes`]).
fn served(map: &ShardMap) -> impl Iterator<Item = (&ShardInfo, Vec<(NodeId, &str)>)> {
    map.shards
        .values()
        .map(|shard| (shard, shard_nodes(map, shard)))
        .filter(|(_, nodes)| !nodes.is_empty())
}

/// A shard's first and last slot.
fn range(shard: &ShardInfo) -> [Reply; 2] {
    [
        Reply::Integer(i64::from(shard.slot_start.0)),
        Reply::Integer(i64::from(shard.slot_end.0)),
    ]
}

/// `CLUSTER SLOTS`: each shard's range, its master, then its replicas, each as
/// `[host, port, id, {}]`.
pub fn slots(map: &ShardMap) -> Reply {
    let ranges = served(map)
        .map(|(shard, nodes)| {
            let mut entry = range(shard).to_vec();
            entry.extend(nodes.into_iter().map(|(id, address)| {
                let (host, port) = host_port(address);
                Reply::Array(vec![
                    Reply::text(host),
                    Reply::Integer(port),
                    Reply::text(node_id(id)),
                    Reply::Map(Vec::new()),
                ])
            }));
            Reply::Array(entry)
        })
        .collect();
    Reply::Array(ranges)
}

/// `CLUSTER SHARDS`: each shard as Redis 7 describes one, its slots and its nodes.
pub fn shards(map: &ShardMap) -> Reply {
    let shards = served(map)
        .map(|(shard, nodes)| {
            let nodes = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (id, address))| {
                    let (host, port) = host_port(address);
                    let online = map
                        .nodes
                        .get(&id)
                        .is_some_and(|n| n.status != NodeStatus::Dead);
                    Reply::Map(vec![
                        (Reply::text("id"), Reply::text(node_id(id))),
                        (Reply::text("port"), Reply::Integer(port)),
                        (Reply::text("ip"), Reply::text(host)),
                        (Reply::text("endpoint"), Reply::text(host)),
                        (
                            Reply::text("role"),
                            Reply::text(if i == 0 { "master" } else { "replica" }),
                        ),
                        (Reply::text("replication-offset"), Reply::Integer(0)),
                        (
                            Reply::text("health"),
                            Reply::text(if online { "online" } else { "fail" }),
                        ),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (Reply::text("slots"), Reply::Array(range(shard).to_vec())),
                (Reply::text("nodes"), Reply::Array(nodes)),
            ])
        })
        .collect();
    Reply::Array(shards)
}

/// `CLUSTER NODES`: one line per node with a RESP address, each a master of the ranges it
/// leads.
pub fn nodes(map: &ShardMap, me: NodeId) -> String {
    let mut out = String::new();
    for node in map.nodes.values() {
        let Some(address) = resp_address(map, node.id) else {
            continue;
        };
        let (_, port) = host_port(address);
        let mut flags = String::new();
        if node.id == me {
            flags.push_str("myself,");
        }
        flags.push_str("master");
        match node.status {
            NodeStatus::Dead => flags.push_str(",fail"),
            NodeStatus::Suspect => flags.push_str(",fail?"),
            _ => {}
        }
        // The cluster bus port Redis would use; KvDB has none, clients only parse it.
        let bus = port + 10000;
        out.push_str(&format!(
            "{} {address}@{bus} {flags} - 0 0 {} connected",
            node_id(node.id),
            map.version.0
        ));
        for shard in map.shards.values().filter(|s| s.leader == Some(node.id)) {
            if shard.slot_start == shard.slot_end {
                out.push_str(&format!(" {}", shard.slot_start.0));
            } else {
                out.push_str(&format!(" {}-{}", shard.slot_start.0, shard.slot_end.0));
            }
        }
        out.push('\n');
    }
    out
}

/// `CLUSTER INFO`: the state Redis clients and tools read.
pub fn info(map: &ShardMap) -> String {
    let led: u64 = map
        .shards
        .values()
        .filter(|s| s.leader.is_some())
        .map(|s| u64::from(s.slot_end.0 - s.slot_start.0) + 1)
        .sum();
    let covered: u64 = map
        .shards
        .values()
        .map(|s| u64::from(s.slot_end.0 - s.slot_start.0) + 1)
        .sum();
    let known = map
        .nodes
        .values()
        .filter(|n| !n.resp_address.is_empty())
        .count();
    let masters = map
        .nodes
        .values()
        .filter(|n| map.shards.values().any(|s| s.leader == Some(n.id)))
        .count();
    let state = if covered == u64::from(kvdb_core::SLOT_COUNT) {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{covered}\r\ncluster_slots_ok:{led}\r\n\
         cluster_slots_pfail:{}\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{known}\r\n\
         cluster_size:{masters}\r\ncluster_current_epoch:{version}\r\ncluster_my_epoch:{version}\r\n",
        covered - led,
        version = map.version.0,
    )
}

#[cfg(test)]
mod tests {
    use kvdb_core::ids::{Epoch, MapVersion, ShardId};
    use kvdb_core::shard_map::{NodeInfo, ShardState};

    use super::*;

    fn map() -> ShardMap {
        let mut map = ShardMap {
            version: MapVersion(9),
            ..ShardMap::default()
        };
        for id in 1..=3u64 {
            map.nodes.insert(
                NodeId(id),
                NodeInfo {
                    id: NodeId(id),
                    name: format!("node-{id}"),
                    address: format!("127.0.0.1:{}", 7000 + id),
                    zone: String::new(),
                    status: NodeStatus::Alive,
                    // Node 3 serves no RESP.
                    resp_address: if id == 3 {
                        String::new()
                    } else {
                        format!("127.0.0.1:{}", 6300 + id)
                    },
                },
            );
        }
        let shard = |id: u64, start: u16, end: u16, leader: Option<u64>| ShardInfo {
            id: ShardId(id),
            slot_start: Slot(start),
            slot_end: Slot(end),
            replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
            leader: leader.map(NodeId),
            epoch: Epoch(1),
            state: ShardState::Stable,
            leader_term: 1,
        };
        map.shards.insert(ShardId(1), shard(1, 0, 8191, Some(2)));
        map.shards
            .insert(ShardId(2), shard(2, 8192, 16382, Some(3)));
        map.shards.insert(ShardId(3), shard(3, 16383, 16383, None));
        map
    }

    #[test]
    fn a_slot_is_served_by_its_leader_and_moved_elsewhere() {
        let map = Router::new(std::sync::Arc::new(map()));
        assert_eq!(route(&map, NodeId(2), Slot(5), false), Route::Here);
        assert_eq!(
            route(&map, NodeId(1), Slot(5), false),
            Route::Moved("127.0.0.1:6302".into())
        );
        // READONLY: a replica answers reads of its shards.
        assert_eq!(route(&map, NodeId(1), Slot(5), true), Route::Here);
        // A leader with no RESP address, or none known: served here.
        assert_eq!(route(&map, NodeId(1), Slot(9000), false), Route::Here);
        assert_eq!(route(&map, NodeId(1), Slot(16383), false), Route::Here);
        assert_eq!(
            moved(Slot(5), "127.0.0.1:6302"),
            Reply::Error("MOVED 5 127.0.0.1:6302".into())
        );
    }

    #[test]
    fn cluster_replies_list_ranges_masters_first() {
        let map = map();
        let Reply::Array(ranges) = slots(&map) else {
            panic!("an array")
        };
        assert_eq!(ranges.len(), 3);
        let Reply::Array(first) = &ranges[0] else {
            panic!("a range")
        };
        assert_eq!(first[0], Reply::Integer(0));
        assert_eq!(first[1], Reply::Integer(8191));
        // Leader (node 2) first, then node 1; node 3 has no RESP address.
        assert_eq!(first.len(), 4);
        let Reply::Array(master) = &first[2] else {
            panic!("a node")
        };
        assert_eq!(master[1], Reply::Integer(6302));
        assert_eq!(master[2], Reply::text(node_id(NodeId(2))));

        let text = nodes(&map, NodeId(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(&format!(
                "{} 127.0.0.1:6301@16301 myself,master - 0 0 9 connected",
                node_id(NodeId(1))
            )),
            "{text}"
        );
        assert!(lines[1].ends_with("connected 0-8191"), "{text}");
        assert_eq!(node_id(NodeId(10)).len(), 40);

        let info = info(&map);
        assert!(info.contains("cluster_state:ok\r\n"), "{info}");
        assert!(info.contains("cluster_slots_ok:16383\r\n"), "{info}");
        assert!(info.contains("cluster_size:2\r\n"), "{info}");
    }
}
