//! Conversions between the shard-map types and their protobuf messages.

use crate::ids::{Epoch, MapVersion, NodeId, ShardId, Slot};
use crate::proto::v1 as pb;
use crate::shard_map::{NodeInfo, NodeStatus, ShardInfo, ShardMap, ShardMapDelta, ShardState};

/// A protobuf message that does not describe a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {why}")]
pub struct ConvertError {
    /// The kind of field or record, e.g. `"slot"` or `"node status"`.
    pub what: &'static str,
    /// What is wrong with it, for logs.
    pub why: String,
}

impl From<NodeStatus> for pb::NodeStatus {
    fn from(s: NodeStatus) -> Self {
        match s {
            NodeStatus::Alive => pb::NodeStatus::Alive,
            NodeStatus::Suspect => pb::NodeStatus::Suspect,
            NodeStatus::Dead => pb::NodeStatus::Dead,
            NodeStatus::Draining => pb::NodeStatus::Draining,
        }
    }
}

impl TryFrom<pb::NodeStatus> for NodeStatus {
    type Error = ConvertError;
    fn try_from(s: pb::NodeStatus) -> Result<Self, ConvertError> {
        Ok(match s {
            pb::NodeStatus::Alive => NodeStatus::Alive,
            pb::NodeStatus::Suspect => NodeStatus::Suspect,
            pb::NodeStatus::Dead => NodeStatus::Dead,
            pb::NodeStatus::Draining => NodeStatus::Draining,
            pb::NodeStatus::Unspecified => {
                return Err(ConvertError {
                    what: "node status",
                    why: "unspecified".into(),
                });
            }
        })
    }
}

/// Decodes a raw `NodeStatus` enum value.
pub fn node_status_from_i32(v: i32) -> Result<NodeStatus, ConvertError> {
    let s = pb::NodeStatus::try_from(v).map_err(|_| ConvertError {
        what: "node status",
        why: format!("unknown value {v}"),
    })?;
    s.try_into()
}

impl From<&NodeInfo> for pb::Node {
    fn from(n: &NodeInfo) -> Self {
        pb::Node {
            id: n.id.0,
            name: n.name.clone(),
            address: n.address.clone(),
            zone: n.zone.clone(),
            status: pb::NodeStatus::from(n.status) as i32,
            resp_address: n.resp_address.clone(),
        }
    }
}

impl TryFrom<&pb::Node> for NodeInfo {
    type Error = ConvertError;
    fn try_from(n: &pb::Node) -> Result<Self, ConvertError> {
        Ok(NodeInfo {
            id: NodeId(n.id),
            name: n.name.clone(),
            address: n.address.clone(),
            zone: n.zone.clone(),
            status: node_status_from_i32(n.status)?,
            resp_address: n.resp_address.clone(),
        })
    }
}

fn ids<T: From<u64>>(v: &[u64]) -> Vec<T> {
    v.iter().copied().map(T::from).collect()
}

fn slot(v: u32) -> Result<Slot, ConvertError> {
    u16::try_from(v).map(Slot).map_err(|_| ConvertError {
        what: "slot",
        why: format!("{v} out of range"),
    })
}

impl From<&ShardInfo> for pb::Shard {
    fn from(s: &ShardInfo) -> Self {
        let (state, target, split_from) = match &s.state {
            ShardState::Stable => (pb::ShardState::Stable, Vec::new(), 0),
            ShardState::Moving { target } => (
                pb::ShardState::Moving,
                target.iter().map(|n| n.0).collect(),
                0,
            ),
            ShardState::Splitting { from } => (pb::ShardState::Splitting, Vec::new(), from.0),
        };
        pb::Shard {
            id: s.id.0,
            slot_start: u32::from(s.slot_start.0),
            slot_end: u32::from(s.slot_end.0),
            replicas: s.replicas.iter().map(|n| n.0).collect(),
            leader: s.leader.map_or(0, |n| n.0),
            epoch: s.epoch.0,
            state: state as i32,
            target_replicas: target,
            leader_term: s.leader_term,
            split_from,
        }
    }
}

impl TryFrom<&pb::Shard> for ShardInfo {
    type Error = ConvertError;
    fn try_from(s: &pb::Shard) -> Result<Self, ConvertError> {
        let state = match pb::ShardState::try_from(s.state) {
            Ok(pb::ShardState::Stable) => ShardState::Stable,
            Ok(pb::ShardState::Moving) => ShardState::Moving {
                target: ids(&s.target_replicas),
            },
            Ok(pb::ShardState::Splitting) => ShardState::Splitting {
                from: ShardId(s.split_from),
            },
            _ => {
                return Err(ConvertError {
                    what: "shard state",
                    why: format!("unknown value {}", s.state),
                });
            }
        };
        Ok(ShardInfo {
            id: ShardId(s.id),
            slot_start: slot(s.slot_start)?,
            slot_end: slot(s.slot_end)?,
            replicas: ids(&s.replicas),
            leader: (s.leader != 0).then_some(NodeId(s.leader)),
            epoch: Epoch(s.epoch),
            state,
            leader_term: s.leader_term,
        })
    }
}

impl From<&ShardMap> for pb::ShardMap {
    fn from(m: &ShardMap) -> Self {
        pb::ShardMap {
            version: m.version.0,
            nodes: m.nodes.values().map(pb::Node::from).collect(),
            shards: m.shards.values().map(pb::Shard::from).collect(),
        }
    }
}

impl TryFrom<&pb::ShardMap> for ShardMap {
    type Error = ConvertError;
    fn try_from(m: &pb::ShardMap) -> Result<Self, ConvertError> {
        let mut map = ShardMap {
            version: MapVersion(m.version),
            ..Default::default()
        };
        for n in &m.nodes {
            let n = NodeInfo::try_from(n)?;
            map.nodes.insert(n.id, n);
        }
        for s in &m.shards {
            let s = ShardInfo::try_from(s)?;
            map.shards.insert(s.id, s);
        }
        Ok(map)
    }
}

impl From<&ShardMapDelta> for pb::ShardMapDelta {
    fn from(d: &ShardMapDelta) -> Self {
        pb::ShardMapDelta {
            version: d.version.0,
            nodes: d.nodes.iter().map(pb::Node::from).collect(),
            shards: d.shards.iter().map(pb::Shard::from).collect(),
            removed_nodes: d.removed_nodes.iter().map(|n| n.0).collect(),
            removed_shards: d.removed_shards.iter().map(|s| s.0).collect(),
        }
    }
}

impl TryFrom<&pb::ShardMapDelta> for ShardMapDelta {
    type Error = ConvertError;
    fn try_from(d: &pb::ShardMapDelta) -> Result<Self, ConvertError> {
        Ok(ShardMapDelta {
            version: MapVersion(d.version),
            nodes: d
                .nodes
                .iter()
                .map(NodeInfo::try_from)
                .collect::<Result<_, _>>()?,
            shards: d
                .shards
                .iter()
                .map(ShardInfo::try_from)
                .collect::<Result<_, _>>()?,
            removed_nodes: ids(&d.removed_nodes),
            removed_shards: ids(&d.removed_shards),
        })
    }
}
