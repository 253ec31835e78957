//! Snapshots written before nodes had a RESP address: the same state with node records one
//! field shorter. postcard encodes fields in order without names, so such a snapshot fails
//! to decode as the current form and is read as this one, every node with no RESP address.

use std::collections::BTreeMap;

use kvdb_core::ShardMapDelta;
use kvdb_core::{MapVersion, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo, ShardMap};
use serde::Deserialize;

use super::{Exported, InitParams, MemberAddress};

#[derive(Deserialize)]
struct Node {
    id: NodeId,
    name: String,
    address: String,
    zone: String,
    status: NodeStatus,
}

impl From<Node> for NodeInfo {
    fn from(n: Node) -> NodeInfo {
        NodeInfo {
            id: n.id,
            name: n.name,
            address: n.address,
            zone: n.zone,
            status: n.status,
            resp_address: String::new(),
        }
    }
}

#[derive(Deserialize)]
struct Map {
    version: MapVersion,
    nodes: BTreeMap<NodeId, Node>,
    shards: BTreeMap<ShardId, ShardInfo>,
}

#[derive(Deserialize)]
struct Delta {
    version: MapVersion,
    nodes: Vec<Node>,
    shards: Vec<ShardInfo>,
    removed_nodes: Vec<NodeId>,
    removed_shards: Vec<ShardId>,
}

/// The whole state as snapshots before RESP addresses held it.
#[derive(Deserialize)]
pub(super) struct ExportedBeforeResp {
    map: Map,
    init: Option<InitParams>,
    history: Vec<Delta>,
    members: BTreeMap<u64, MemberAddress>,
    scheduler_paused: bool,
}

impl From<ExportedBeforeResp> for Exported {
    fn from(old: ExportedBeforeResp) -> Exported {
        let nodes = |nodes: Vec<Node>| nodes.into_iter().map(NodeInfo::from).collect();
        Exported {
            map: ShardMap {
                version: old.map.version,
                nodes: old
                    .map
                    .nodes
                    .into_iter()
                    .map(|(id, n)| (id, n.into()))
                    .collect(),
                shards: old.map.shards,
            },
            init: old.init,
            history: old
                .history
                .into_iter()
                .map(|d| ShardMapDelta {
                    version: d.version,
                    nodes: nodes(d.nodes),
                    shards: d.shards,
                    removed_nodes: d.removed_nodes,
                    removed_shards: d.removed_shards,
                })
                .collect(),
            members: old.members,
            scheduler_paused: old.scheduler_paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::super::MetaState;

    /// The old layouts, written as a build before RESP addresses wrote them.
    #[derive(Serialize)]
    struct OldNode<'a>(u64, &'a str, &'a str, &'a str, kvdb_core::NodeStatus);

    #[test]
    fn a_snapshot_from_before_resp_addresses_imports_with_none() {
        let node = OldNode(
            7,
            "node-7",
            "10.0.0.7:7000",
            "z1",
            kvdb_core::NodeStatus::Alive,
        );
        let shards: Vec<(u64, ())> = Vec::new();
        // ShardMap { version, nodes: {7: node}, shards: {} }, init: None, history: [one
        // delta adding the node], members: {}, scheduler_paused: true.
        let old = (
            (5u64, vec![(7u64, &node)], shards.clone()),
            None::<()>,
            vec![(
                5u64,
                vec![&node],
                Vec::<()>::new(),
                Vec::<u64>::new(),
                Vec::<u64>::new(),
            )],
            Vec::<(u64, ())>::new(),
            true,
        );
        let bytes = kvdb_core::raft::codec::encode(&old).unwrap();
        let mut state = MetaState::default();
        state.import(&bytes).expect("an old snapshot imports");
        let imported = &state.map().nodes[&kvdb_core::NodeId(7)];
        assert_eq!(imported.address, "10.0.0.7:7000");
        assert_eq!(imported.resp_address, "");
        assert!(state.scheduler_paused());
        // And the current form reads back as written.
        let again = state.export().unwrap();
        let mut copy = MetaState::default();
        copy.import(&again).unwrap();
        assert_eq!(copy.map(), state.map());
    }
}
