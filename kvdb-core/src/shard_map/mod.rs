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
    /// Assigned by the coordinator at registration; also the node's Raft id.
    pub id: NodeId,
    /// Operator-chosen unique name, e.g. `node-1`.
    pub name: String,
    /// Data-plane address, `host:port`.
    pub address: String,
    /// Failure-domain label given at registration; the scheduler spreads
    /// each shard's replicas over as many zones as it can.
    pub zone: String,
    /// Liveness and role, as the coordinator last judged it.
    pub status: NodeStatus,
    /// Where the node serves Redis Cluster mode (`host:port`); empty when it does not. Redis
    /// clients are redirected here (`MOVED`) and find it in `CLUSTER SLOTS`.
    pub resp_address: String,
}

/// Whether a shard's replica set is settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardState {
    /// `replicas` is the whole configuration; no move in progress.
    Stable,
    /// Moving to `target`; the epoch was already bumped. Settles when the
    /// shard's leader reports the new configuration committed.
    Moving {
        /// The replica set being moved to (the full new set, not the additions).
        target: Vec<NodeId>,
    },
    /// Being carved out of shard `from`, whose replicas create this shard's
    /// group from their own state when they apply the split (so it is never
    /// initialized empty). Settles when the new group's leader reports.
    Splitting {
        /// The shard whose slots this one takes over.
        from: ShardId,
    },
}

/// One shard: a contiguous inclusive slot range and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Also the id of the shard's Raft group.
    pub id: ShardId,
    /// First slot served, inclusive.
    pub slot_start: Slot,
    /// Last slot served, inclusive.
    pub slot_end: Slot,
    /// Replicas of the committed configuration.
    pub replicas: Vec<NodeId>,
    /// Last reported leader, if any.
    pub leader: Option<NodeId>,
    /// Configuration generation; requests carrying another epoch are rejected.
    pub epoch: Epoch,
    /// Settled, or moving to a new replica set.
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
    /// Bumped by every metadata change; caches keep only newer maps.
    pub version: MapVersion,
    /// Every registered node, by id.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Every shard, by id; empty until the cluster is initialized.
    pub shards: BTreeMap<ShardId, ShardInfo>,
}

/// Everything that changed at one map version, as full records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMapDelta {
    /// The map version this delta produces; applies only to a map at `version - 1`.
    pub version: MapVersion,
    /// Nodes added or changed, as full records that replace the old ones.
    pub nodes: Vec<NodeInfo>,
    /// Shards added or changed, as full records that replace the old ones.
    pub shards: Vec<ShardInfo>,
    /// Nodes to drop; removals are applied before the upserts.
    pub removed_nodes: Vec<NodeId>,
    /// Shards to drop; removals are applied before the upserts.
    pub removed_shards: Vec<ShardId>,
}

/// Why a delta could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta is not newer than the map; ignoring it is correct.
    #[error("delta version {delta} is not newer than map version {map}")]
    Stale {
        /// The map's version.
        map: MapVersion,
        /// The delta's version (not newer).
        delta: MapVersion,
    },
    /// A version was skipped; the caller must fetch a snapshot.
    #[error("delta version {delta} skips versions after map version {map}")]
    Gap {
        /// The map's version.
        map: MapVersion,
        /// The delta's version (more than one ahead).
        delta: MapVersion,
    },
}

/// Why a map is not a valid assignment of slots to nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A slot no shard serves: keys hashing to it could not be routed.
    #[error("slot {0} is not covered by any shard")]
    Uncovered(Slot),
    /// Two shards claim a slot: routing would be ambiguous.
    #[error("slot {slot} is covered by shards {first} and {second}")]
    Overlap {
        /// The first slot claimed twice.
        slot: Slot,
        /// The shard whose range already covers it.
        first: ShardId,
        /// The shard whose range starts inside `first`'s.
        second: ShardId,
    },
    /// A range that is inverted or ends past the last slot.
    #[error("shard {shard} has an empty or inverted slot range {start}..={end}")]
    BadRange {
        /// The shard with the bad range.
        shard: ShardId,
        /// Its `slot_start`.
        start: Slot,
        /// Its `slot_end`.
        end: Slot,
    },
    /// A replica or move target that is not in the map's node list.
    #[error("shard {shard} references unknown node {node}")]
    UnknownNode {
        /// The shard naming the node.
        shard: ShardId,
        /// The node missing from `nodes`.
        node: NodeId,
    },
    /// A shard with an empty committed replica set: nothing could serve it.
    #[error("shard {shard} has no replicas")]
    NoReplicas {
        /// The shard without replicas.
        shard: ShardId,
    },
    /// A node listed twice in the replicas or twice in the move target.
    #[error("shard {shard} lists node {node} twice")]
    DuplicateReplica {
        /// The shard with the duplicate.
        shard: ShardId,
        /// The node listed twice.
        node: NodeId,
    },
    /// A leader that is neither a replica nor a move target.
    #[error("shard {shard} leader {node} is not one of its replicas")]
    LeaderNotReplica {
        /// The shard with the bad leader.
        shard: ShardId,
        /// The leader it names.
        node: NodeId,
    },
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
            ShardState::Stable | ShardState::Splitting { .. } => &[],
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

    /// The nodes whose status is alive (the ones that may receive replicas), by id.
    pub fn alive_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.status == NodeStatus::Alive)
            .map(|n| n.id)
            .collect()
    }

    /// The shards being carved out of `shard` by a split not settled yet.
    pub fn splitting_from(&self, shard: ShardId) -> impl Iterator<Item = &ShardInfo> {
        self.shards
            .values()
            .filter(move |s| s.state == ShardState::Splitting { from: shard })
    }

    /// The data-plane address of a node, if known.
    pub fn address(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node).map(|n| n.address.as_str())
    }
}

#[cfg(test)]
mod tests;
