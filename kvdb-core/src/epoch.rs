//! The node-side check that a request reached the right replica.
//!
//! Every KV request names the shard and the shard epoch its client routed
//! with. Before touching storage, the node runs four checks, in this order,
//! and answers with the first that fails:
//!
//! 1. Does this node host the shard? Else `SHARD_MOVED`, hinting a node that
//!    does per this node's map (never this node itself).
//! 2. Does the request's epoch equal the local replica's? Else `STALE_EPOCH`.
//!    Both an older and a newer request epoch fail: either side may be
//!    behind, and a refresh settles which.
//! 3. Is the key's slot in the replica's range? Else `SHARD_MOVED`, hinting
//!    a node of the shard that owns the slot in this node's map.
//! 4. For a write or a strong read: is this node the Raft leader? Else
//!    `NOT_LEADER` with the leader's address, if Raft knows it.
//!
//! The order matters to clients: an epoch mismatch says the client's map is
//! old, which explains any later failure, so it is reported before them.
//!
//! [`EpochValidator::validate`] is a pure function of plain data, so the
//! node's gRPC service only gathers the inputs. Out of scope: lease or
//! read-index confirmation of leadership (Raft's job, after this check), and
//! request size limits.

use crate::error::KvError;
use crate::error::RoutingError;
use crate::ids::{Epoch, NodeId, ShardId, Slot};
use crate::proto::v1::Consistency;
use crate::shard_map::{ShardInfo, ShardMap};
use crate::slot::slot;

/// What a request does with the key, which decides whether it needs the
/// leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any mutation; always served by the leader.
    Write,
    /// A linearizable read; served by the leader.
    StrongRead,
    /// A possibly stale read; any replica may serve it.
    EventualRead,
}

impl Access {
    /// The access a read asks for with its wire `consistency` (`CONSISTENCY_UNSPECIFIED` is
    /// strong); a value the protocol does not define is refused rather than guessed.
    pub fn for_read(consistency: i32) -> Result<Access, KvError> {
        match Consistency::try_from(consistency) {
            Ok(Consistency::Unspecified | Consistency::Strong) => Ok(Access::StrongRead),
            Ok(Consistency::Eventual) => Ok(Access::EventualRead),
            Err(_) => Err(KvError::InvalidArgument(format!(
                "consistency {consistency} is not one of UNSPECIFIED (0), STRONG (1), EVENTUAL (2)"
            ))),
        }
    }

    /// Whether only the shard's leader may serve this access.
    pub fn needs_leader(self) -> bool {
        matches!(self, Access::Write | Access::StrongRead)
    }
}

/// What a node knows about its own replica of a shard: the epoch and slot
/// range come from the node's cached shard map (the shard's record there),
/// and only the leader fields from the replica's Raft group (see
/// `ReplicaManager::local` in `kvdb-node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReplica {
    /// The shard this replica belongs to; a mismatch with the request is
    /// treated as "not hosted here".
    pub shard: ShardId,
    /// The shard's epoch in this node's cached shard map.
    pub epoch: Epoch,
    /// First slot of the replica's range (inclusive).
    pub slot_start: Slot,
    /// Last slot of the replica's range (inclusive).
    pub slot_end: Slot,
    /// Whether this node is currently the group's Raft leader.
    pub is_leader: bool,
    /// The current leader's data-plane address, if Raft knows it.
    pub leader_address: Option<String>,
}

impl LocalReplica {
    /// Whether `slot` is in this replica's range.
    pub fn contains(&self, slot: Slot) -> bool {
        self.slot_start <= slot && slot <= self.slot_end
    }
}

/// Runs the request checks for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochValidator {
    /// The node doing the checking; never hinted as somewhere else to go.
    pub node: NodeId,
}

impl EpochValidator {
    /// Checks a request for `key` in `shard`, routed with `epoch`, against
    /// `local`, this node's replica of the shard (`None` when it hosts none).
    /// `map` is this node's current shard map, used only for hints.
    ///
    /// Returns the first failing check in the order given in the module
    /// docs. Deterministic, and changes nothing.
    pub fn validate(
        &self,
        map: &ShardMap,
        local: Option<&LocalReplica>,
        shard: ShardId,
        epoch: Epoch,
        key: &[u8],
        access: Access,
    ) -> Result<(), RoutingError> {
        self.validate_slot(map, local, shard, epoch, slot(key), access)
    }

    /// [`validate`](Self::validate) for a request addressed by slot rather than key (a scan).
    pub fn validate_slot(
        &self,
        map: &ShardMap,
        local: Option<&LocalReplica>,
        shard: ShardId,
        epoch: Epoch,
        key_slot: Slot,
        access: Access,
    ) -> Result<(), RoutingError> {
        let Some(local) = local.filter(|l| l.shard == shard) else {
            return Err(RoutingError::ShardMoved {
                shard,
                to: map.shards.get(&shard).and_then(|s| self.hint(map, s)),
            });
        };
        if epoch != local.epoch {
            return Err(RoutingError::StaleEpoch {
                shard,
                request: epoch,
                current: local.epoch,
            });
        }
        if !local.contains(key_slot) {
            return Err(self.moved_slot(map, shard, key_slot));
        }
        if access.needs_leader() && !local.is_leader {
            return Err(RoutingError::NotLeader {
                shard,
                leader: local.leader_address.clone(),
            });
        }
        Ok(())
    }

    /// The answer for a request to `shard` whose key belongs to another shard now (per `map`,
    /// or per a split the replica applied): `SHARD_MOVED`, hinting a node of the key's owner.
    pub fn moved(&self, map: &ShardMap, shard: ShardId, key: &[u8]) -> RoutingError {
        self.moved_slot(map, shard, slot(key))
    }

    /// [`moved`](Self::moved) for a slot.
    pub fn moved_slot(&self, map: &ShardMap, shard: ShardId, key_slot: Slot) -> RoutingError {
        let owner = map.shards.values().find(|s| s.contains(key_slot));
        RoutingError::ShardMoved {
            shard,
            to: owner.and_then(|s| self.hint(map, s)),
        }
    }

    /// A node other than this one that serves `shard`: its leader if known,
    /// else its first replica, with an address in `map`.
    fn hint(&self, map: &ShardMap, shard: &ShardInfo) -> Option<String> {
        shard
            .leader
            .iter()
            .chain(&shard.replicas)
            .filter(|&&node| node != self.node)
            .find_map(|&node| map.address(node))
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SLOT_COUNT;
    use crate::shard_map::{NodeInfo, NodeStatus, ShardState};

    const ME: NodeId = NodeId(1);
    const SHARD: ShardId = ShardId(10);
    const OTHER: ShardId = ShardId(20);
    const EPOCH: Epoch = Epoch(5);
    /// Slot 5061 (first half: `SHARD`).
    const KEY: &[u8] = b"bar";
    /// Slot 12182 (second half: `OTHER`).
    const FOREIGN_KEY: &[u8] = b"foo";

    fn address(node: u64) -> String {
        format!("10.0.0.{node}:7000")
    }

    #[test]
    fn a_read_consistency_outside_the_protocol_is_refused() {
        assert_eq!(Access::for_read(0).unwrap(), Access::StrongRead);
        assert_eq!(Access::for_read(1).unwrap(), Access::StrongRead);
        assert_eq!(Access::for_read(2).unwrap(), Access::EventualRead);
        for bad in [3, 99, -1] {
            assert!(matches!(
                Access::for_read(bad),
                Err(KvError::InvalidArgument(_))
            ));
        }
    }

    /// Nodes 1..=3; `SHARD` holds the first half of the slots and is led by
    /// node 1, `OTHER` holds the rest and is led by node 3.
    fn map() -> ShardMap {
        let mut map = ShardMap::default();
        for id in 1..=3 {
            let node = NodeInfo {
                id: NodeId(id),
                name: format!("node-{id}"),
                address: address(id),
                zone: "z1".into(),
                status: NodeStatus::Alive,
                resp_address: String::new(),
            };
            map.nodes.insert(NodeId(id), node);
        }
        let half = SLOT_COUNT / 2;
        for (id, start, end, leader) in [(SHARD, 0, half - 1, 1), (OTHER, half, SLOT_COUNT - 1, 3)]
        {
            let shard = ShardInfo {
                id,
                slot_start: Slot(start),
                slot_end: Slot(end),
                replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
                leader: Some(NodeId(leader)),
                epoch: EPOCH,
                state: ShardState::Stable,
                leader_term: 1,
            };
            map.shards.insert(id, shard);
        }
        map.validate().expect("test map is valid");
        map
    }

    fn replica(is_leader: bool) -> LocalReplica {
        LocalReplica {
            shard: SHARD,
            epoch: EPOCH,
            slot_start: Slot(0),
            slot_end: Slot(SLOT_COUNT / 2 - 1),
            is_leader,
            leader_address: (!is_leader).then(|| address(2)),
        }
    }

    fn check(
        local: Option<&LocalReplica>,
        epoch: Epoch,
        key: &[u8],
        access: Access,
    ) -> Result<(), RoutingError> {
        EpochValidator { node: ME }.validate(&map(), local, SHARD, epoch, key, access)
    }

    fn moved(to: Option<u64>) -> Result<(), RoutingError> {
        Err(RoutingError::ShardMoved {
            shard: SHARD,
            to: to.map(address),
        })
    }

    #[test]
    fn the_leader_serves_every_access() {
        let local = replica(true);
        for access in [Access::Write, Access::StrongRead, Access::EventualRead] {
            assert_eq!(check(Some(&local), EPOCH, KEY, access), Ok(()));
        }
    }

    #[test]
    fn a_follower_serves_only_eventual_reads() {
        let local = replica(false);
        assert_eq!(
            check(Some(&local), EPOCH, KEY, Access::EventualRead),
            Ok(())
        );
        for access in [Access::Write, Access::StrongRead] {
            let expected = RoutingError::NotLeader {
                shard: SHARD,
                leader: Some(address(2)),
            };
            assert_eq!(check(Some(&local), EPOCH, KEY, access), Err(expected));
        }
        let no_leader = LocalReplica {
            leader_address: None,
            ..local
        };
        let expected = RoutingError::NotLeader {
            shard: SHARD,
            leader: None,
        };
        assert_eq!(
            check(Some(&no_leader), EPOCH, KEY, Access::Write),
            Err(expected)
        );
    }

    #[test]
    fn a_shard_not_hosted_here_moved_and_the_hint_is_never_this_node() {
        // The map names node 1 (this node) as leader: hint the next replica.
        assert_eq!(check(None, EPOCH, KEY, Access::Write), moved(Some(2)));
        let wrong_shard = LocalReplica {
            shard: OTHER,
            ..replica(true)
        };
        assert_eq!(
            check(Some(&wrong_shard), EPOCH, KEY, Access::Write),
            moved(Some(2))
        );

        let mut m = map();
        m.shards.get_mut(&SHARD).unwrap().leader = Some(NodeId(3));
        let got = EpochValidator { node: ME }.validate(&m, None, SHARD, EPOCH, KEY, Access::Write);
        assert_eq!(got, moved(Some(3)), "the leader comes first");
    }

    #[test]
    fn a_shard_unknown_to_the_map_moved_without_a_hint() {
        let got = EpochValidator { node: ME }.validate(
            &map(),
            None,
            ShardId(99),
            EPOCH,
            KEY,
            Access::Write,
        );
        assert_eq!(
            got,
            Err(RoutingError::ShardMoved {
                shard: ShardId(99),
                to: None
            })
        );
    }

    #[test]
    fn a_different_epoch_is_stale_either_way() {
        let local = replica(true);
        for request in [Epoch(4), Epoch(6)] {
            let expected = RoutingError::StaleEpoch {
                shard: SHARD,
                request,
                current: EPOCH,
            };
            assert_eq!(
                check(Some(&local), request, KEY, Access::EventualRead),
                Err(expected)
            );
        }
    }

    #[test]
    fn a_key_outside_the_range_moved_to_its_owner() {
        let local = replica(true);
        assert_eq!(
            check(Some(&local), EPOCH, FOREIGN_KEY, Access::EventualRead),
            moved(Some(3))
        );
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let follower = replica(false);
        // Wrong epoch and not leader: the epoch wins.
        assert!(matches!(
            check(Some(&follower), Epoch(4), KEY, Access::Write),
            Err(RoutingError::StaleEpoch { .. })
        ));
        // Wrong epoch and wrong slot: the epoch wins.
        assert!(matches!(
            check(Some(&follower), Epoch(4), FOREIGN_KEY, Access::Write),
            Err(RoutingError::StaleEpoch { .. })
        ));
        // Wrong slot and not leader: moved wins.
        assert_eq!(
            check(Some(&follower), EPOCH, FOREIGN_KEY, Access::Write),
            moved(Some(3))
        );
        // Not hosted at all: moved, whatever else is wrong.
        assert_eq!(
            check(None, Epoch(4), FOREIGN_KEY, Access::Write),
            moved(Some(2))
        );
    }
}
