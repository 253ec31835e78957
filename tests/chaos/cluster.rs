//! [`ChaosCluster`]: an in-process KvDB cluster whose every data link runs
//! through a kvdb-testkit [`FaultProxy`].
//!
//! `LocalCluster` configures all nodes with one `fn` pointer, so it cannot
//! give each node its own proxy table; this harness builds the same pieces
//! (coordinator, nodes, gateway) itself. Node B reaches node A through the
//! proxy of link `Node(B) -> Node(A)` (an [`AddressRewrite`] in B's
//! `NodeConfig`), while every node keeps advertising its real address. Smart
//! clients share the links `Clients -> Node(n)`, the gateway has
//! `Gateway -> Node(n)`. Links to the coordinator are not proxied.
//!
//! Out of scope: multi-member coordinator groups and processes (see
//! `process.rs` for real signals).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kvdb::cluster::node_name;
use kvdb::coordinator::admin::AdminConfig;
use kvdb::coordinator::{Coordinator, CoordinatorConfig};
use kvdb::core::{AddressRewrite, NodeId, ShardId, ShardMap};
use kvdb::servers::{RunningCoordinator, bind};
use kvdb_client::{Client, ExecutorConfig, GatewayClient};
use kvdb_gateway::Gateway;
use kvdb_node::config::{DEFAULT_SLOW_LEADER, NodeConfig};
use kvdb_node::node::Node;
use kvdb_node::planted::PlantedBug;
use kvdb_node::slow_leader::SlowLeaderPolicy;
use kvdb_testkit::{FaultProxy, Partition};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::wait_until;

/// One end of a proxied link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Storage node `i` (0-based).
    Node(usize),
    /// The smart clients of the workload.
    Clients,
    /// The gateway.
    Gateway,
}

/// How to build a cluster.
#[derive(Debug, Clone, Copy)]
pub struct ChaosOptions {
    /// Storage nodes.
    pub nodes: usize,
    /// Shards, all at replication factor 3.
    pub shards: u32,
    /// A planted bug every node runs with.
    pub bug: Option<PlantedBug>,
    /// Every node's slow-leader policy (see `kvdb_node::slow_leader`); the nodes' default.
    pub slow_leader: Option<SlowLeaderPolicy>,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            nodes: 3,
            shards: 4,
            bug: None,
            slow_leader: Some(DEFAULT_SLOW_LEADER),
        }
    }
}

/// Bound on each client call during the workload: short, so calls into a
/// partition end as unknown quickly rather than stalling a client.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

struct RunningGateway {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running cluster with proxied links.
pub struct ChaosCluster {
    dir: TempDir,
    options: ChaosOptions,
    coordinator: Option<RunningCoordinator>,
    coordinator_address: SocketAddr,
    admin_address: SocketAddr,
    node_addresses: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    node_ids: Vec<NodeId>,
    /// Every proxied link, by endpoints.
    pub partition: Partition<Endpoint>,
    gateway: Option<RunningGateway>,
}

impl ChaosCluster {
    /// Starts coordinator, nodes, proxies and gateway; returns once every
    /// shard has elected a leader.
    pub async fn start(options: ChaosOptions) -> ChaosCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let grpc = bind("coordinator", any).await.expect("bind coordinator");
        let admin = bind("Admin API", any).await.expect("bind admin");
        let coordinator_address = grpc.local_addr().unwrap();
        let admin_address = admin.local_addr().unwrap();
        let coordinator = launch_coordinator(&dir, grpc, admin).await;

        let mut listeners = Vec::new();
        for _ in 0..options.nodes {
            listeners.push(TcpListener::bind(any).await.expect("bind node"));
        }
        let node_addresses: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let partition = proxy_links(&node_addresses).await;

        let mut cluster = ChaosCluster {
            dir,
            options,
            coordinator: Some(coordinator),
            coordinator_address,
            admin_address,
            node_addresses,
            nodes: Vec::new(),
            node_ids: Vec::new(),
            partition,
            gateway: None,
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let node = cluster.launch_node(i, listener).await;
            cluster.node_ids.push(node.id());
            cluster.nodes.push(Some(node));
        }
        cluster.bootstrap().await;
        cluster.gateway = Some(cluster.launch_gateway().await);
        cluster
    }

    async fn launch_node(&self, i: usize, listener: TcpListener) -> Node {
        let name = node_name(i);
        let mut config = NodeConfig::new(
            name.clone(),
            self.dir.path().join(&name),
            vec![self.coordinator_address.to_string()],
        );
        config.zone = "default".to_owned();
        config.request_timeout = CALL_TIMEOUT;
        config.peer_address_rewrite = Some(self.rewrite_for(Endpoint::Node(i)));
        config.planted_bug = self.options.bug;
        config.slow_leader = self.options.slow_leader;
        Node::start(config, listener).await.expect("node starts")
    }

    async fn launch_gateway(&self) -> RunningGateway {
        let config = self.executor_config(Endpoint::Gateway);
        let gateway = Gateway::connect(&[self.coordinator_address.to_string()], config)
            .expect("gateway connects");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(e) = kvdb_gateway::serve(&gateway, listener, stopped).await {
                tracing::error!(error = %e, "chaos gateway failed");
            }
        });
        RunningGateway {
            address,
            stop,
            task,
        }
    }

    async fn bootstrap(&self) {
        let coordinator = self.coordinator();
        let wanted = self.options.nodes;
        wait_until("nodes to register", || {
            coordinator.map().nodes.len() >= wanted
        })
        .await;
        coordinator
            .init_shards(self.options.shards, 3)
            .await
            .expect("shards initialize");
        wait_until("every shard to elect a leader", || {
            coordinator.map().shards.values().all(|s| s.leader_term > 0)
        })
        .await;
    }

    /// Maps each node's real address to the proxy of `from -> node`.
    fn rewrite_for(&self, from: Endpoint) -> AddressRewrite {
        let table: HashMap<String, String> = (0..self.node_addresses.len())
            .filter_map(|to| {
                let link = self.partition.link(&from, &Endpoint::Node(to))?;
                Some((self.node_addresses[to].to_string(), link.addr().to_string()))
            })
            .collect();
        let table = Arc::new(table);
        AddressRewrite::new(move |addr| table.get(addr).cloned().unwrap_or_else(|| addr.to_owned()))
    }

    fn executor_config(&self, from: Endpoint) -> ExecutorConfig {
        ExecutorConfig {
            default_timeout: CALL_TIMEOUT,
            node_address_rewrite: Some(self.rewrite_for(from)),
            ..ExecutorConfig::default()
        }
    }

    /// A smart client whose node links go through the `Clients` proxies.
    pub async fn client(&self) -> Client {
        let config = self.executor_config(Endpoint::Clients);
        Client::connect_with(&[self.coordinator_address.to_string()], config)
            .await
            .expect("smart client connects")
    }

    /// A client of the gateway.
    pub fn gateway_client(&self) -> GatewayClient {
        let addr = self.gateway.as_ref().expect("gateway runs").address;
        GatewayClient::connect(&addr.to_string()).expect("gateway client")
    }

    /// The coordinator (panics while it is stopped).
    pub fn coordinator(&self) -> &Coordinator {
        &self
            .coordinator
            .as_ref()
            .expect("coordinator runs")
            .coordinator
    }

    /// The coordinator's current map, if it runs.
    pub fn map(&self) -> Option<Arc<ShardMap>> {
        self.coordinator.as_ref().map(|c| c.coordinator.map())
    }

    /// Number of storage nodes.
    pub fn node_count(&self) -> usize {
        self.node_addresses.len()
    }

    /// The index of the node with coordinator id `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.node_ids.iter().position(|n| *n == id)
    }

    /// The coordinator id of node `i`.
    pub fn id_of(&self, i: usize) -> NodeId {
        self.node_ids[i]
    }

    /// The node that leads `shard` according to the nodes themselves (the
    /// coordinator's hint may lag).
    pub fn leader_of(&self, shard: ShardId) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.is_leader(i, shard))
    }

    /// Whether node `i` runs and believes it leads `shard`.
    pub fn is_leader(&self, i: usize, shard: ShardId) -> bool {
        let Some(map) = self.map() else {
            return false;
        };
        self.nodes[i].as_ref().is_some_and(|node| {
            node.manager()
                .local(&map, shard)
                .is_some_and(|(local, _)| local.is_leader)
        })
    }

    /// The Raft term of node `i`'s replica of `shard`, if it runs and holds one.
    pub fn term(&self, i: usize, shard: ShardId) -> Option<u64> {
        let map = self.map()?;
        let node = self.nodes[i].as_ref()?;
        let (_, replica) = node.manager().local(&map, shard)?;
        Some(replica.leadership().term)
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Crash-stops node `i` (its data stays).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Restarts a stopped node at its old address with its old data.
    pub async fn restart_node(&mut self, i: usize) {
        if self.nodes[i].is_some() {
            return;
        }
        let listener = bind("node", self.node_addresses[i])
            .await
            .expect("rebind node");
        self.nodes[i] = Some(self.launch_node(i, listener).await);
    }

    /// Stops the coordinator; nodes and clients keep their maps.
    pub async fn stop_coordinator(&mut self) {
        if let Some(c) = self.coordinator.take() {
            c.shutdown().await;
        }
    }

    /// Restarts the coordinator on its old addresses and data.
    pub async fn restart_coordinator(&mut self) {
        if self.coordinator.is_some() {
            return;
        }
        let grpc = bind("coordinator", self.coordinator_address)
            .await
            .expect("rebind");
        let admin = bind("Admin API", self.admin_address).await.expect("rebind");
        let running = launch_coordinator(&self.dir, grpc, admin).await;
        let coordinator = running.coordinator.clone();
        self.coordinator = Some(running);
        wait_until("the coordinator to lead again", || {
            coordinator.is_leader() && coordinator.map().is_initialized()
        })
        .await;
    }

    /// Heals the network and restarts everything stopped.
    pub async fn heal_all(&mut self) {
        self.partition.heal();
        self.restart_coordinator().await;
        for i in 0..self.nodes.len() {
            self.restart_node(i).await;
        }
    }

    /// Stops everything and removes the data.
    pub async fn shutdown(mut self) {
        if let Some(g) = self.gateway.take() {
            let _ = g.stop.send(());
            let _ = g.task.await;
        }
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.shutdown().await;
        }
        self.stop_coordinator().await;
    }
}

async fn launch_coordinator(
    dir: &TempDir,
    grpc: TcpListener,
    admin: TcpListener,
) -> RunningCoordinator {
    let address = grpc.local_addr().unwrap();
    let config = CoordinatorConfig::new(1, address, dir.path().join("coordinator"));
    RunningCoordinator::start(config, grpc, admin, AdminConfig::default())
        .await
        .expect("coordinator starts")
}

/// A proxy for every directed node-to-node link and for the client and
/// gateway links to every node.
async fn proxy_links(nodes: &[SocketAddr]) -> Partition<Endpoint> {
    let mut partition = Partition::new();
    for (to, &upstream) in nodes.iter().enumerate() {
        let froms = (0..nodes.len())
            .filter(|&from| from != to)
            .map(Endpoint::Node)
            .chain([Endpoint::Clients, Endpoint::Gateway]);
        for from in froms {
            let proxy = FaultProxy::start(upstream).await.expect("proxy starts");
            partition.insert(from, Endpoint::Node(to), proxy);
        }
    }
    partition
}
