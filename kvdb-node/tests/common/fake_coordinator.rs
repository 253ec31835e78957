//! An in-memory coordinator for node tests: registration, shard placement,
//! leader and configuration reports, and the map feed, with the same rules
//! the real coordinator applies (epochs bump on replica-set changes only;
//! a leader report needs the current epoch and a term at least as new;
//! `SetShardLeader` renames the leader and keeps its term).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kvdb_core::cache::{ShardMapSource, SourceError, WatchEvent, WatchStream};
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{
    Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, SLOT_COUNT, ShardId, ShardInfo, ShardMap,
    ShardState, Slot,
};
use kvdb_node::control::{ControlError, ControlPlane};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream as TokioWatchStream;

/// The fake coordinator; cheap to share behind an `Arc`.
pub struct FakeCoordinator {
    state: Mutex<State>,
    published: watch::Sender<Arc<ShardMap>>,
}

#[derive(Default)]
struct State {
    map: ShardMap,
    names: HashMap<String, NodeId>,
}

impl FakeCoordinator {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            published: watch::Sender::new(Arc::new(ShardMap::default())),
        })
    }

    /// The current map.
    pub fn map(&self) -> Arc<ShardMap> {
        self.published.borrow().clone()
    }

    /// A receiver of every published map.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ShardMap>> {
        self.published.subscribe()
    }

    fn mutate<T>(&self, f: impl FnOnce(&mut ShardMap) -> T) -> T {
        self.mutate_state(|state| f(&mut state.map))
    }

    fn mutate_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap();
        let out = f(&mut state);
        state.map.version = state.map.version.next();
        state
            .map
            .validate()
            .expect("fake coordinator made an invalid map");
        self.published.send_replace(Arc::new(state.map.clone()));
        out
    }

    /// Splits the slots into `shards` ranges over the registered nodes,
    /// `rf` replicas each, round robin.
    pub fn init_shards(&self, shards: u64, rf: usize) {
        self.mutate(|map| {
            let nodes: Vec<NodeId> = map.nodes.keys().copied().collect();
            assert!(nodes.len() >= rf, "not enough nodes");
            let per = u64::from(SLOT_COUNT) / shards;
            for i in 0..shards {
                let start = i * per;
                let end = if i + 1 == shards {
                    u64::from(SLOT_COUNT) - 1
                } else {
                    start + per - 1
                };
                let replicas = (0..rf)
                    .map(|r| nodes[(i as usize + r) % nodes.len()])
                    .collect();
                let shard = ShardInfo {
                    id: ShardId(i + 1),
                    slot_start: Slot(start as u16),
                    slot_end: Slot(end as u16),
                    replicas,
                    leader: None,
                    epoch: Epoch(1),
                    state: ShardState::Stable,
                    leader_term: 0,
                };
                map.shards.insert(shard.id, shard);
            }
        });
    }

    /// Starts moving `shard` to `target`, bumping its epoch.
    pub fn set_replicas(&self, shard: ShardId, target: Vec<NodeId>) {
        self.mutate(|map| {
            let s = map.shards.get_mut(&shard).expect("unknown shard");
            s.epoch = s.epoch.next();
            s.state = ShardState::Moving { target };
        });
    }

    /// Names `node` the leader of `shard`, keeping the term and epoch, as
    /// the coordinator's `SetShardLeader` does.
    pub fn set_leader(&self, shard: ShardId, node: NodeId) {
        self.mutate(|map| {
            let s = map.shards.get_mut(&shard).expect("unknown shard");
            assert!(s.replicas.contains(&node), "not a replica");
            s.leader = Some(node);
        });
    }

    fn register(&self, name: &str, address: &str, zone: &str) -> NodeId {
        self.mutate_state(|state| {
            let next = NodeId(state.map.nodes.keys().next_back().map_or(1, |n| n.0 + 1));
            let id = *state.names.entry(name.to_owned()).or_insert(next);
            let info = NodeInfo {
                id,
                name: name.into(),
                address: address.into(),
                zone: zone.into(),
                status: NodeStatus::Alive,
                resp_address: String::new(),
            };
            state.map.nodes.insert(id, info);
            id
        })
    }

    fn report_leader(&self, shard: ShardId, epoch: Epoch, leader: NodeId, term: u64) -> bool {
        let current = self.map();
        let Some(s) = current.shards.get(&shard) else {
            return false;
        };
        if s.epoch != epoch || term < s.leader_term || !s.members().contains(&leader) {
            return false;
        }
        self.mutate(|map| {
            let s = map.shards.get_mut(&shard).expect("checked above");
            s.leader = Some(leader);
            s.leader_term = term;
        });
        true
    }

    fn report_config(&self, shard: ShardId, epoch: Epoch, replicas: Vec<NodeId>) -> bool {
        let current = self.map();
        let Some(s) = current.shards.get(&shard) else {
            return false;
        };
        let ShardState::Moving { target } = &s.state else {
            return false;
        };
        let mut sorted = replicas.clone();
        sorted.sort();
        let mut expected = target.clone();
        expected.sort();
        if s.epoch != epoch || sorted != expected {
            return false;
        }
        self.mutate(|map| {
            let s = map.shards.get_mut(&shard).expect("checked above");
            s.replicas = replicas;
            s.state = ShardState::Stable;
            if s.leader.is_some_and(|l| !s.replicas.contains(&l)) {
                s.leader = None;
            }
        });
        true
    }
}

impl ControlPlane for FakeCoordinator {
    fn register_node<'a>(
        &'a self,
        name: &'a str,
        address: &'a str,
        zone: &'a str,
        _resp_address: &'a str,
    ) -> BoxFuture<'a, Result<NodeId, ControlError>> {
        async move { Ok(self.register(name, address, zone)) }.boxed()
    }

    fn heartbeat<'a>(
        &'a self,
        _node: NodeId,
        _stats: &'a [ShardStats],
    ) -> BoxFuture<'a, Result<MapVersion, ControlError>> {
        async move { Ok(self.map().version) }.boxed()
    }

    fn report_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> BoxFuture<'_, Result<bool, ControlError>> {
        async move { Ok(self.report_leader(shard, epoch, leader, term)) }.boxed()
    }

    fn request_shard_leader(
        &self,
        shard: ShardId,
        _epoch: Epoch,
        node: NodeId,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        async move {
            self.set_leader(shard, node);
            Ok(())
        }
        .boxed()
    }

    fn report_shard_config(
        &self,
        shard: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    ) -> BoxFuture<'_, Result<bool, ControlError>> {
        async move { Ok(self.report_config(shard, epoch, replicas)) }.boxed()
    }
}

impl ShardMapSource for FakeCoordinator {
    fn fetch(
        &self,
        newer_than: MapVersion,
    ) -> BoxFuture<'_, Result<Option<ShardMap>, SourceError>> {
        let map = self.map();
        async move { Ok((map.version > newer_than).then(|| (*map).clone())) }.boxed()
    }

    fn watch(&self, _from: MapVersion) -> BoxFuture<'_, Result<WatchStream, SourceError>> {
        let stream = TokioWatchStream::new(self.subscribe())
            .map(|map| Ok(WatchEvent::Snapshot((*map).clone())))
            .boxed();
        async move { Ok(stream) }.boxed()
    }
}
