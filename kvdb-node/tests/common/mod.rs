//! `TestCluster`: a coordinator (in-memory fake) and storage nodes on
//! loopback, in this process, with hooks to stop, restart and add nodes,
//! and a small routing client that follows NOT_LEADER hints.

#![allow(dead_code)]

pub mod fake_coordinator;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_node_client::KvNodeClient;
use kvdb_core::slot::slot;
use kvdb_core::{NodeId, ShardId, ShardInfo, ShardMap};
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::transport::Channel;

pub use fake_coordinator::FakeCoordinator;
pub use kvdb_testkit::{init_tracing, wait_until_async};

/// How long any condition in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

struct Member {
    name: String,
    dir: TempDir,
    address: SocketAddr,
    node: Option<Node>,
}

/// A cluster of storage nodes around a fake coordinator.
pub struct TestCluster {
    pub coordinator: Arc<FakeCoordinator>,
    members: Vec<Member>,
    tweak: Arc<dyn Fn(&mut NodeConfig) + Send + Sync>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl TestCluster {
    /// `nodes` nodes, then `shards` shards with `rf` replicas; returns once
    /// every shard has a leader the map knows.
    pub async fn start(nodes: usize, shards: u64, rf: usize) -> Self {
        Self::start_with(nodes, shards, rf, |_| {}).await
    }

    /// Like [`start`](Self::start), with `tweak` applied to every node's config.
    pub async fn start_with(
        nodes: usize,
        shards: u64,
        rf: usize,
        tweak: impl Fn(&mut NodeConfig) + Send + Sync + 'static,
    ) -> Self {
        init_tracing();
        let mut cluster = Self {
            coordinator: FakeCoordinator::new(),
            members: Vec::new(),
            tweak: Arc::new(tweak),
            channels: Mutex::default(),
        };
        for _ in 0..nodes {
            cluster.add_node().await;
        }
        cluster.coordinator.init_shards(shards, rf);
        cluster.wait_for_leaders().await;
        cluster
    }

    /// Starts one more node; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let index = self.members.len();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member = Member {
            name: format!("node-{}", index + 1),
            dir: tempfile::tempdir().unwrap(),
            address: listener.local_addr().unwrap(),
            node: None,
        };
        self.members.push(member);
        self.launch(index, listener).await;
        index
    }

    async fn launch(&mut self, index: usize, listener: TcpListener) {
        let member = &mut self.members[index];
        let mut config = NodeConfig::new(
            member.name.clone(),
            member.dir.path(),
            vec!["fake-coordinator".into()],
        );
        config.reconcile_interval = Duration::from_millis(100);
        (self.tweak)(&mut config);
        let control = self.coordinator.clone();
        let node = Node::start_with(config, listener, control.clone(), control)
            .await
            .unwrap();
        member.node = Some(node);
    }

    /// The running node at `index`.
    pub fn node(&self, index: usize) -> &Node {
        self.members[index].node.as_ref().expect("node is stopped")
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: NodeId) -> usize {
        self.members
            .iter()
            .position(|m| m.node.as_ref().is_some_and(|n| n.id() == id))
            .expect("no running node with that id")
    }

    /// The address of the node at `index`, running or not.
    pub fn address(&self, index: usize) -> String {
        self.members[index].address.to_string()
    }

    /// The data directory of the node at `index`.
    pub fn data_dir(&self, index: usize) -> &std::path::Path {
        self.members[index].dir.path()
    }

    /// Stops the node at `index`, keeping its data.
    pub async fn stop_node(&mut self, index: usize) {
        if let Some(node) = self.members[index].node.take() {
            node.shutdown().await;
        }
    }

    /// Starts the stopped node at `index` again, on its old address.
    pub async fn restart_node(&mut self, index: usize) {
        let listener = TcpListener::bind(self.members[index].address)
            .await
            .unwrap();
        self.launch(index, listener).await;
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            self.stop_node(i).await;
        }
    }

    /// The coordinator's current map.
    pub fn map(&self) -> Arc<ShardMap> {
        self.coordinator.map()
    }

    /// The shard owning `key`.
    pub fn shard_of(&self, key: &[u8]) -> ShardInfo {
        let s = slot(key);
        self.map()
            .shards
            .values()
            .find(|sh| sh.contains(s))
            .unwrap()
            .clone()
    }

    /// The index of the running node whose Raft leads `shard`, if any.
    pub fn raft_leader(&self, shard: ShardId) -> Option<usize> {
        self.members.iter().position(|m| {
            m.node.as_ref().is_some_and(|n| {
                n.manager()
                    .replica(shard)
                    .is_some_and(|r| r.leadership().is_leader)
            })
        })
    }

    /// Waits until every shard's Raft leader is the map's leader.
    pub async fn wait_for_leaders(&self) {
        wait_until_async("every shard to have a reported leader", || async {
            let map = self.map();
            map.shards.values().all(|s| {
                s.leader.is_some_and(|l| {
                    self.raft_leader(s.id)
                        .is_some_and(|i| self.members[i].node.as_ref().unwrap().id() == l)
                })
            })
        })
        .await;
    }

    /// A client of the node at `address`.
    pub fn client(&self, address: &str) -> KvNodeClient<Channel> {
        let mut channels = self.channels.lock().unwrap();
        let channel = channels
            .entry(address.to_owned())
            .or_insert_with(|| {
                Channel::from_shared(format!("http://{address}"))
                    .unwrap()
                    .timeout(Duration::from_secs(3))
                    .connect_lazy()
            })
            .clone();
        KvNodeClient::new(channel)
    }

    /// One put at `address`, routed as `shard` at the shard's current epoch.
    pub async fn put_at(
        &self,
        address: &str,
        shard: &ShardInfo,
        req: pb::PutRequest,
    ) -> Result<pb::PutResponse, KvError> {
        let req = pb::NodePutRequest {
            target: Some(target(shard)),
            request: Some(req),
        };
        let reply = self.client(address).put(req).await;
        reply.map(|r| r.into_inner()).map_err(KvError::from)
    }

    /// One get at `address`.
    pub async fn get_at(
        &self,
        address: &str,
        shard: &ShardInfo,
        key: &[u8],
        consistency: pb::Consistency,
    ) -> Result<pb::GetResponse, KvError> {
        let req = pb::NodeGetRequest {
            target: Some(target(shard)),
            request: Some(pb::GetRequest {
                key: key.to_vec().into(),
                consistency: consistency as i32,
                hash_fields: None,
                hash_page: None,
            }),
        };
        let reply = self.client(address).get(req).await;
        reply.map(|r| r.into_inner()).map_err(KvError::from)
    }

    /// One delete at `address`.
    pub async fn delete_at(
        &self,
        address: &str,
        shard: &ShardInfo,
        req: pb::DeleteRequest,
    ) -> Result<pb::DeleteResponse, KvError> {
        let req = pb::NodeDeleteRequest {
            target: Some(target(shard)),
            request: Some(req),
        };
        let reply = self.client(address).delete(req).await;
        reply.map(|r| r.into_inner()).map_err(KvError::from)
    }

    /// A put routed like a smart client: to the map's leader, following
    /// NOT_LEADER hints, rotating over replicas on transport errors, until
    /// it succeeds or fails for good within `DEADLINE`.
    pub async fn put(&self, req: pb::PutRequest) -> Result<pb::PutResponse, KvError> {
        let key = req.key.clone();
        self.routed(&key, |this, addr, shard| {
            let req = req.clone();
            async move { this.put_at(&addr, &shard, req).await }
        })
        .await
    }

    /// A strong get routed to the leader.
    pub async fn get(&self, key: &[u8]) -> Result<pb::GetResponse, KvError> {
        self.routed(key, |this, addr, shard| async move {
            this.get_at(&addr, &shard, key, pb::Consistency::Strong)
                .await
        })
        .await
    }

    async fn routed<'a, T, F, Fut>(&'a self, key: &[u8], mut call: F) -> Result<T, KvError>
    where
        F: FnMut(&'a Self, String, ShardInfo) -> Fut,
        Fut: Future<Output = Result<T, KvError>>,
    {
        let deadline = Instant::now() + DEADLINE;
        let mut hint: Option<String> = None;
        let mut attempt = 0usize;
        loop {
            let map = self.map();
            let shard = self.shard_of(key);
            let nodes: Vec<NodeId> = shard
                .leader
                .into_iter()
                .chain(shard.replicas.clone())
                .collect();
            let addr = hint.take().unwrap_or_else(|| {
                let node = nodes[attempt % nodes.len()];
                map.address(node).unwrap().to_owned()
            });
            attempt += 1;
            match call(self, addr, shard).await {
                Err(KvError::Routing(RoutingError::NotLeader {
                    leader: Some(a), ..
                })) => {
                    // Hints can bounce between two nodes while leadership
                    // moves; back off a little after the first few.
                    if attempt > 2 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    hint = Some(a);
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }
}

/// The shard target of a request routed with `shard`'s current epoch.
pub fn target(shard: &ShardInfo) -> pb::ShardTarget {
    pb::ShardTarget {
        shard_id: shard.id.0,
        epoch: shard.epoch.0,
    }
}

/// A plain put request.
pub fn put_req(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into().into(),
        value: value.into().into(),
        ..Default::default()
    }
}
