//! Key -> shard, epoch, leader and replica addresses, for one shard map.
//!
//! A [`Router`] is built once per map version and then answers lookups
//! without locks or allocation: the shards' ranges are kept as a vector of
//! range ends sorted by slot, so routing a key is one CRC and one binary
//! search (O(log shards)), and the answer is an `Arc` clone of a [`Route`]
//! precomputed per shard. When the map changes, callers build a new router
//! (the shard-map cache swaps the pair atomically).
//!
//! Routes list every replica of the committed configuration, leader first.
//! The router does not filter by node status: whether a suspect or draining
//! node is worth trying is the request executor's decision, and it learns
//! that from errors faster than from the map.
//!
//! Out of scope: validating the map (see [`ShardMap::validate`]; a router
//! over an invalid map answers [`KvError::Internal`] for uncovered slots),
//! choosing a replica for eventual reads, and caching leader hints learned
//! from `NOT_LEADER` errors.

use std::sync::Arc;

use crate::error::KvError;
use crate::ids::{Epoch, NodeId, ShardId, Slot};
use crate::shard_map::{ShardInfo, ShardMap};
use crate::slot::slot;

/// One replica of a shard and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The node holding the replica.
    pub node: NodeId,
    /// Data-plane address, `host:port`.
    pub address: String,
}

/// Where to send a request for one shard, as of one map version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The shard to name in the request.
    pub shard: ShardId,
    /// The epoch to send with the request.
    pub epoch: Epoch,
    /// The last reported leader, if known and present in the map.
    pub leader: Option<Replica>,
    /// The leader first (even while it is only in a moving shard's target
    /// set), then the other committed replicas in map order. Nodes missing
    /// from the map's node table (never the case in a valid map) are skipped.
    pub replicas: Vec<Replica>,
}

impl Route {
    fn new(map: &ShardMap, shard: &ShardInfo) -> Route {
        let replica = |node: NodeId| {
            map.address(node).map(|address| Replica {
                node,
                address: address.to_owned(),
            })
        };
        let leader = shard.leader.and_then(replica);
        let followers = shard
            .replicas
            .iter()
            .filter(|&&node| Some(node) != shard.leader)
            .filter_map(|&node| replica(node));
        let replicas = leader.clone().into_iter().chain(followers).collect();
        Route {
            shard: shard.id,
            epoch: shard.epoch,
            leader,
            replicas,
        }
    }
}

/// Routes keys, slots and shards of one immutable [`ShardMap`].
#[derive(Debug, Clone)]
pub struct Router {
    map: Arc<ShardMap>,
    /// `(slot_end, index into starts/routes)`, sorted by `slot_end`.
    ends: Vec<(Slot, usize)>,
    /// Slot range start of each route, by index.
    starts: Vec<Slot>,
    /// Precomputed route of each shard, by index.
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// Precomputes the routes of every shard in `map`.
    pub fn new(map: Arc<ShardMap>) -> Router {
        let mut ends = Vec::with_capacity(map.shards.len());
        let mut starts = Vec::with_capacity(map.shards.len());
        let mut routes = Vec::with_capacity(map.shards.len());
        for (index, shard) in map.shards.values().enumerate() {
            ends.push((shard.slot_end, index));
            starts.push(shard.slot_start);
            routes.push(Arc::new(Route::new(&map, shard)));
        }
        ends.sort_unstable();
        Router {
            map,
            ends,
            starts,
            routes,
        }
    }

    /// The map this router was built from.
    pub fn map(&self) -> &Arc<ShardMap> {
        &self.map
    }

    /// The route for `key`'s slot.
    ///
    /// Errors: [`KvError::NoShardMap`] when the map has no shards yet;
    /// [`KvError::Internal`] when the map leaves the slot uncovered.
    pub fn route(&self, key: &[u8]) -> Result<Arc<Route>, KvError> {
        self.route_slot(slot(key))
    }

    /// The route for the shard whose range holds `slot`; errors as
    /// [`Router::route`].
    pub fn route_slot(&self, slot: Slot) -> Result<Arc<Route>, KvError> {
        if self.routes.is_empty() {
            return Err(KvError::NoShardMap);
        }
        // The first range ending at or after `slot`; in a valid map it is
        // the one range that holds it.
        let at = self.ends.partition_point(|&(end, _)| end < slot);
        match self.ends.get(at) {
            Some(&(_, index)) if self.starts[index] <= slot => Ok(self.routes[index].clone()),
            _ => Err(KvError::Internal(format!(
                "slot {slot} is not covered by shard map version {}",
                self.map.version
            ))),
        }
    }

    /// The route for `shard`, if the map has it.
    pub fn route_shard(&self, shard: ShardId) -> Option<Arc<Route>> {
        // Routes are in `map.shards` order, which is sorted by id.
        let index = self
            .routes
            .binary_search_by_key(&shard, |route| route.shard)
            .ok()?;
        Some(self.routes[index].clone())
    }

    /// The data-plane address of `node`, if the map knows it.
    pub fn node_address(&self, node: NodeId) -> Option<&str> {
        self.map.address(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SLOT_COUNT;
    use crate::shard_map::{NodeInfo, NodeStatus, ShardState};

    /// `shards` equal ranges over nodes 1..=3; shard `i` is led by node
    /// `i % 3 + 1`, and its replicas are listed in node order.
    fn map(shards: u16) -> ShardMap {
        let mut map = ShardMap::default();
        for id in 1..=3 {
            map.nodes.insert(
                NodeId(id),
                NodeInfo {
                    id: NodeId(id),
                    name: format!("node-{id}"),
                    address: format!("127.0.0.1:700{id}"),
                    zone: "z1".into(),
                    status: NodeStatus::Alive,
                    resp_address: String::new(),
                },
            );
        }
        let width = SLOT_COUNT / shards;
        for i in 0..shards {
            let end = if i + 1 == shards {
                SLOT_COUNT - 1
            } else {
                (i + 1) * width - 1
            };
            map.shards.insert(
                ShardId(u64::from(i)),
                ShardInfo {
                    id: ShardId(u64::from(i)),
                    slot_start: Slot(i * width),
                    slot_end: Slot(end),
                    replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
                    leader: Some(NodeId(u64::from(i % 3 + 1))),
                    epoch: Epoch(u64::from(i) + 10),
                    state: ShardState::Stable,
                    leader_term: 1,
                },
            );
        }
        map.validate().expect("test map is valid");
        map
    }

    #[test]
    fn every_slot_routes_to_the_shard_holding_it() {
        let router = Router::new(Arc::new(map(8)));
        for s in 0..SLOT_COUNT {
            let route = router.route_slot(Slot(s)).unwrap();
            let shard = &router.map().shards[&route.shard];
            assert!(
                shard.contains(Slot(s)),
                "slot {s} routed to {}",
                route.shard
            );
            assert_eq!(route.epoch, shard.epoch);
        }
    }

    #[test]
    fn keys_route_by_their_slot() {
        let router = Router::new(Arc::new(map(8)));
        // "foo" is slot 12182, in the sixth of eight 2048-slot shards.
        assert_eq!(router.route(b"foo").unwrap().shard, ShardId(5));
        assert_eq!(router.route(b"{foo}.bar").unwrap().shard, ShardId(5));
    }

    #[test]
    fn replicas_are_listed_leader_first() {
        let router = Router::new(Arc::new(map(8)));
        let route = router.route_shard(ShardId(1)).unwrap();
        let leader = route.leader.clone().unwrap();
        assert_eq!(leader.node, NodeId(2));
        assert_eq!(leader.address, "127.0.0.1:7002");
        let order: Vec<NodeId> = route.replicas.iter().map(|r| r.node).collect();
        assert_eq!(order, [NodeId(2), NodeId(1), NodeId(3)]);
    }

    #[test]
    fn a_shard_without_a_leader_keeps_map_order() {
        let mut m = map(2);
        m.shards.get_mut(&ShardId(0)).unwrap().leader = None;
        m.nodes.get_mut(&NodeId(2)).unwrap().status = NodeStatus::Dead;
        let route = Router::new(Arc::new(m)).route_shard(ShardId(0)).unwrap();
        assert_eq!(route.leader, None);
        let order: Vec<NodeId> = route.replicas.iter().map(|r| r.node).collect();
        assert_eq!(
            order,
            [NodeId(1), NodeId(2), NodeId(3)],
            "no filtering by status"
        );
    }

    #[test]
    fn an_uninitialized_map_has_no_routes() {
        let router = Router::new(Arc::new(ShardMap::default()));
        assert_eq!(router.route(b"foo"), Err(KvError::NoShardMap));
        assert_eq!(router.route_slot(Slot(0)), Err(KvError::NoShardMap));
        assert_eq!(router.route_shard(ShardId(0)), None);
    }

    #[test]
    fn an_uncovered_slot_is_an_internal_error() {
        let mut m = map(2);
        m.shards.get_mut(&ShardId(1)).unwrap().slot_start = Slot(9000);
        let router = Router::new(Arc::new(m));
        assert!(matches!(
            router.route_slot(Slot(8500)),
            Err(KvError::Internal(_))
        ));
        assert!(matches!(
            router.route_slot(Slot(SLOT_COUNT)),
            Err(KvError::Internal(_))
        ));
        assert_eq!(router.route_slot(Slot(9000)).unwrap().shard, ShardId(1));
    }

    #[test]
    fn unknown_shards_and_nodes_are_none() {
        let router = Router::new(Arc::new(map(8)));
        assert_eq!(router.route_shard(ShardId(99)), None);
        assert_eq!(router.node_address(NodeId(3)), Some("127.0.0.1:7003"));
        assert_eq!(router.node_address(NodeId(99)), None);
    }
}
