//! The shard map: which shard owns which slots, which nodes hold it, and how
//! it changes. Pure data: snapshot, delta application and a validity check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Epoch, MapVersion, NodeId, SLOT_COUNT, ShardId, Slot};

/// Liveness and role of a storage node, as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Heartbeating; may receive new replicas.
    Alive,
    /// Missed a heartbeat deadline; keeps its replicas.
    Suspect,
    /// Missed the dead deadline; an operator should move its replicas.
    Dead,
    /// Being emptied by the operator; receives no new replicas.
    Draining,
}

/// A storage node's record in the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Operator-chosen unique name, e.g. `node-1`.
    pub name: String,
    /// Data-plane address, `host:port`.
    pub address: String,
    pub zone: String,
    pub status: NodeStatus,
}

/// Whether a shard's replica set is settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardState {
    Stable,
    /// Moving to `target`; the epoch was already bumped. Settles when the
    /// shard's leader reports the new configuration committed.
    Moving {
        target: Vec<NodeId>,
    },
}

/// One shard: a contiguous inclusive slot range and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub id: ShardId,
    pub slot_start: Slot,
    pub slot_end: Slot,
    /// Replicas of the committed configuration.
    pub replicas: Vec<NodeId>,
    /// Last reported leader, if any.
    pub leader: Option<NodeId>,
    pub epoch: Epoch,
    pub state: ShardState,
    /// Raft term of the last reported leader.
    pub leader_term: u64,
}

impl ShardInfo {
    /// Whether `slot` falls in this shard's range.
    pub fn contains(&self, slot: Slot) -> bool {
        self.slot_start <= slot && slot <= self.slot_end
    }

    /// Every node that holds or is about to hold a replica: the committed
    /// replicas plus, while moving, the target set.
    pub fn members(&self) -> Vec<NodeId> {
        let mut all = self.replicas.clone();
        if let ShardState::Moving { target } = &self.state {
            for n in target {
                if !all.contains(n) {
                    all.push(*n);
                }
            }
        }
        all
    }
}

/// The full map at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub version: MapVersion,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub shards: BTreeMap<ShardId, ShardInfo>,
}

/// Everything that changed at one map version, as full records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMapDelta {
    pub version: MapVersion,
    pub nodes: Vec<NodeInfo>,
    pub shards: Vec<ShardInfo>,
    pub removed_nodes: Vec<NodeId>,
    pub removed_shards: Vec<ShardId>,
}

/// Why a delta could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta is not newer than the map; ignoring it is correct.
    #[error("delta version {delta} is not newer than map version {map}")]
    Stale { map: MapVersion, delta: MapVersion },
    /// A version was skipped; the caller must fetch a snapshot.
    #[error("delta version {delta} skips versions after map version {map}")]
    Gap { map: MapVersion, delta: MapVersion },
}

/// Why a map is not a valid assignment of slots to nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("slot {0} is not covered by any shard")]
    Uncovered(Slot),
    #[error("slot {slot} is covered by shards {first} and {second}")]
    Overlap {
        slot: Slot,
        first: ShardId,
        second: ShardId,
    },
    #[error("shard {shard} has an empty or inverted slot range {start}..={end}")]
    BadRange {
        shard: ShardId,
        start: Slot,
        end: Slot,
    },
    #[error("shard {shard} references unknown node {node}")]
    UnknownNode { shard: ShardId, node: NodeId },
    #[error("shard {shard} has no replicas")]
    NoReplicas { shard: ShardId },
    #[error("shard {shard} lists node {node} twice")]
    DuplicateReplica { shard: ShardId, node: NodeId },
    #[error("shard {shard} leader {node} is not one of its replicas")]
    LeaderNotReplica { shard: ShardId, node: NodeId },
}

impl ShardMap {
    /// Whether shards have been initialized.
    pub fn is_initialized(&self) -> bool {
        !self.shards.is_empty()
    }

    /// Applies the delta for the next version. Deltas must arrive in order:
    /// an old one is [`DeltaError::Stale`], a skipped version [`DeltaError::Gap`].
    pub fn apply(&mut self, delta: &ShardMapDelta) -> Result<(), DeltaError> {
        if delta.version <= self.version {
            return Err(DeltaError::Stale {
                map: self.version,
                delta: delta.version,
            });
        }
        if delta.version != self.version.next() {
            return Err(DeltaError::Gap {
                map: self.version,
                delta: delta.version,
            });
        }
        for id in &delta.removed_nodes {
            self.nodes.remove(id);
        }
        for id in &delta.removed_shards {
            self.shards.remove(id);
        }
        for node in &delta.nodes {
            self.nodes.insert(node.id, node.clone());
        }
        for shard in &delta.shards {
            self.shards.insert(shard.id, shard.clone());
        }
        self.version = delta.version;
        Ok(())
    }

    /// Checks the map's invariants: an uninitialized map (no shards) is valid;
    /// otherwise every slot is covered exactly once and every replica, target
    /// and leader references a known node.
    pub fn validate(&self) -> Result<(), MapError> {
        if self.shards.is_empty() {
            return Ok(());
        }
        let mut ranges: Vec<&ShardInfo> = self.shards.values().collect();
        for s in &ranges {
            if s.slot_start > s.slot_end || s.slot_end.0 >= SLOT_COUNT {
                return Err(MapError::BadRange {
                    shard: s.id,
                    start: s.slot_start,
                    end: s.slot_end,
                });
            }
            self.validate_members(s)?;
        }
        ranges.sort_by_key(|s| s.slot_start);
        let mut next = 0u32;
        let mut prev: Option<&ShardInfo> = None;
        for s in ranges {
            let start = u32::from(s.slot_start.0);
            if start > next {
                return Err(MapError::Uncovered(Slot(next as u16)));
            }
            if start < next {
                return Err(MapError::Overlap {
                    slot: s.slot_start,
                    first: prev.map(|p| p.id).unwrap_or_default(),
                    second: s.id,
                });
            }
            next = u32::from(s.slot_end.0) + 1;
            prev = Some(s);
        }
        if next < u32::from(SLOT_COUNT) {
            return Err(MapError::Uncovered(Slot(next as u16)));
        }
        Ok(())
    }

    fn validate_members(&self, s: &ShardInfo) -> Result<(), MapError> {
        if s.replicas.is_empty() {
            return Err(MapError::NoReplicas { shard: s.id });
        }
        let target: &[NodeId] = match &s.state {
            ShardState::Stable => &[],
            ShardState::Moving { target } => target,
        };
        for list in [&s.replicas[..], target] {
            for (i, node) in list.iter().enumerate() {
                if !self.nodes.contains_key(node) {
                    return Err(MapError::UnknownNode {
                        shard: s.id,
                        node: *node,
                    });
                }
                if list[..i].contains(node) {
                    return Err(MapError::DuplicateReplica {
                        shard: s.id,
                        node: *node,
                    });
                }
            }
        }
        if let Some(leader) = s.leader
            && !s.members().contains(&leader)
        {
            return Err(MapError::LeaderNotReplica {
                shard: s.id,
                node: leader,
            });
        }
        Ok(())
    }

    /// The data-plane address of a node, if known.
    pub fn address(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node).map(|n| n.address.as_str())
    }
}

#[cfg(test)]
#[path = "shard_map_tests.rs"]
mod tests;
