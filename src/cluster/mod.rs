//! A whole KvDB cluster inside one process: one coordinator with its Admin
//! API, storage nodes and a gateway, on loopback. `kvdb dev` runs one with
//! fixed ports; tests and the embedded example run one on ephemeral ports.
//!
//! It is the one way KvDB starts a cluster in a process: `kvdb dev`, the
//! embedded example, the end-to-end tests and the chaos suite all use it.
//! Hooks tune each node's configuration by index and the gateway's executor,
//! and [`LocalCluster::bind`] hands out every address before anything starts,
//! so a caller can put fault proxies between the members first.
//!
//! Fault hooks stop and restart a node, or the coordinator, in place (same
//! address, same data), which is what a crash-and-restart looks like to the
//! rest of the cluster.
//!
//! Out of scope: network faults themselves (see `kvdb-testkit`'s fault proxy)
//! and multi-member coordinator groups.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kvdb_client::{Client, ExecutorConfig, GatewayClient};
use kvdb_coordinator::admin::AdminConfig;
use kvdb_coordinator::{Coordinator, CoordinatorConfig};
use kvdb_core::auth::Credentials;
use kvdb_core::error::KvError;
use kvdb_core::{NodeId, ShardId, ShardMap};
use kvdb_gateway::Gateway;
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::servers::{
    RunningCoordinator, RunningResp, StartError, bind, local_addr, rebind, reserve,
};

mod bound;
mod config;

pub use bound::BoundCluster;
pub use config::{ClusterConfig, NodeHook, fast_repair};

struct RunningGateway {
    address: SocketAddr,
    metrics: std::sync::Arc<kvdb_core::metrics::Registry>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    resp: Option<RunningResp>,
}

/// A running in-process cluster.
pub struct LocalCluster {
    config: ClusterConfig,
    /// `None` while stopped by [`LocalCluster::stop_coordinator`].
    coordinator: Option<RunningCoordinator>,
    coordinator_address: SocketAddr,
    admin_address: SocketAddr,
    /// Bound address of each node (fixed at first start).
    node_addresses: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    /// Each node's coordinator id (fixed at first start).
    node_ids: Vec<NodeId>,
    /// Each node's Redis Cluster-mode listener, while it runs.
    node_resp: Vec<Option<RunningResp>>,
    gateway: Option<RunningGateway>,
    /// The ports of stopped servers, held until they restart on them (see `servers::reserve`).
    reserved: HashMap<SocketAddr, TcpSocket>,
}

impl LocalCluster {
    /// Binds every listener of `config` and starts the cluster; see
    /// [`BoundCluster::start`].
    pub async fn start(config: ClusterConfig) -> Result<LocalCluster, StartError> {
        LocalCluster::bind(config).await?.start().await
    }

    /// Binds every listener of `config` and starts nothing.
    pub async fn bind(config: ClusterConfig) -> Result<BoundCluster, StartError> {
        let coordinator = bind("coordinator", config.coordinator).await?;
        let admin = bind("Admin API", config.admin).await?;
        let mut nodes = Vec::new();
        let mut node_addresses = Vec::new();
        for (i, addr) in config.nodes.iter().enumerate() {
            let listener = bind(&node_name(i), *addr).await?;
            node_addresses.push(local_addr(&node_name(i), &listener)?);
            nodes.push(listener);
        }
        let gateway = match config.gateway {
            Some(addr) => Some(bind("gateway", addr).await?),
            None => None,
        };
        let resp = match (config.gateway, config.resp) {
            (Some(_), Some(addr)) => Some(bind("Redis protocol listener", addr).await?),
            _ => None,
        };
        Ok(BoundCluster {
            coordinator_address: local_addr("coordinator", &coordinator)?,
            admin_address: local_addr("Admin API", &admin)?,
            coordinator,
            admin,
            nodes,
            gateway,
            resp,
            node_addresses,
            config,
        })
    }

    /// Starts node `i`, and its Redis Cluster-mode listener when the configuration gives it
    /// one (bound first, so that the node registers its address).
    async fn launch_node(
        &mut self,
        i: usize,
        listener: TcpListener,
    ) -> Result<(Node, Option<RunningResp>), StartError> {
        let resp = match self.config.node_resp.get(i) {
            Some(&addr) => {
                let listener = self
                    .listen_again(&format!("{} Redis listener", node_name(i)), addr)
                    .await?;
                // A restart binds the same port again.
                self.config.node_resp[i] = local_addr("Redis listener", &listener)?;
                Some(listener)
            }
            None => None,
        };
        let node = self.launch_node_server(i, listener, resp.is_some()).await?;
        let resp = match resp {
            Some(listener) => {
                let options = kvdb_resp::RespOptions {
                    tokens: self.tokens()?,
                    allow_flush: self.config.resp_allow_flush,
                    ..kvdb_resp::RespOptions::default()
                };
                Some(RunningResp::for_node(
                    &node,
                    listener,
                    self.credentials(),
                    options,
                )?)
            }
            None => None,
        };
        Ok((node, resp))
    }

    async fn launch_node_server(
        &self,
        i: usize,
        listener: TcpListener,
        resp: bool,
    ) -> Result<Node, StartError> {
        let name = node_name(i);
        let mut config = NodeConfig::new(
            name.clone(),
            self.config.data_dir.join(&name),
            vec![self.coordinator_address.to_string()],
        );
        config.zone = "default".to_owned();
        config.auth = self.config.auth.clone();
        config.connections = self.config.connections;
        config.request_metrics = self.config.request_metrics;
        if resp {
            config.resp_address = self.config.node_resp[i].to_string();
        }
        self.config.tune_node.apply(i, &mut config);
        Node::start(config, listener)
            .await
            .map_err(|source| StartError::Node { name, source })
    }

    async fn launch_gateway(
        &self,
        listener: TcpListener,
        resp: Option<TcpListener>,
    ) -> Result<RunningGateway, StartError> {
        let executor = ExecutorConfig {
            credentials: self.credentials(),
            ..self.config.gateway_executor.clone()
        };
        let invalid = |e: kvdb_core::auth::AuthConfigError| {
            StartError::Gateway(KvError::InvalidArgument(e.to_string()))
        };
        let listening = self
            .config
            .auth
            .listening(self.config.connections)
            .map_err(invalid)?;
        let gateway = Gateway::connect(&[self.coordinator_address.to_string()], executor)
            .map_err(StartError::Gateway)?
            .record_requests(self.config.request_metrics);
        let metrics = gateway.metrics();
        let resp = match resp {
            Some(listener) => Some(self.launch_resp(listener, gateway.executor().clone())?),
            None => None,
        };
        let address = local_addr("gateway", &listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(e) = kvdb_gateway::serve(&gateway, listener, listening, stopped).await {
                tracing::error!(error = %e, "gateway failed");
            }
        });
        Ok(RunningGateway {
            address,
            metrics,
            stop,
            task,
            resp,
        })
    }

    /// Serves the Redis protocol on `listener` over the gateway's executor, with the
    /// cluster's tokens for `AUTH`.
    fn launch_resp(
        &self,
        listener: TcpListener,
        executor: kvdb_gateway::Executor,
    ) -> Result<RunningResp, StartError> {
        let options = kvdb_resp::RespOptions {
            tokens: self.tokens()?,
            allow_flush: self.config.resp_allow_flush,
            ..kvdb_resp::RespOptions::default()
        };
        RunningResp::start(listener, executor, options)
    }

    /// The client tokens `AUTH` accepts.
    fn tokens(&self) -> Result<kvdb_core::auth::Tokens, StartError> {
        self.config
            .auth
            .tokens()
            .map_err(|e| StartError::Gateway(KvError::InvalidArgument(e.to_string())))
    }

    /// Initializes the shards if the map is new, then waits for leaders.
    async fn bootstrap(&self) -> Result<(), StartError> {
        let coordinator = self.coordinator();
        let deadline = tokio::time::Instant::now() + self.config.startup_timeout;
        let wanted = self.config.nodes.len();
        wait_until(deadline, "storage nodes to register", || {
            let map = coordinator.map();
            map.is_initialized() || (coordinator.is_leader() && map.nodes.len() >= wanted)
        })
        .await?;
        if !coordinator.map().is_initialized() {
            coordinator
                .init_shards(self.config.shards, self.config.replication_factor)
                .await
                .map_err(StartError::Coordinator)?;
        }
        // Designated leaders are in the map from the start; a reported Raft
        // term shows the group really elected one.
        wait_until(deadline, "every shard to elect a leader", || {
            coordinator.map().shards.values().all(|s| s.leader_term > 0)
        })
        .await
    }

    /// The coordinator handle (map, admin operations).
    ///
    /// # Panics
    /// While the coordinator is stopped ([`stop_coordinator`](Self::stop_coordinator)).
    pub fn coordinator(&self) -> &Coordinator {
        &self
            .coordinator
            .as_ref()
            .expect("the coordinator is stopped")
            .coordinator
    }

    /// Whether the coordinator is running.
    pub fn coordinator_running(&self) -> bool {
        self.coordinator.is_some()
    }

    /// Coordinator gRPC address, for smart clients and nodes.
    pub fn coordinator_address(&self) -> String {
        self.coordinator_address.to_string()
    }

    /// Admin API address.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_address
    }

    /// Gateway address, when a gateway runs.
    pub fn gateway_address(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|g| g.address)
    }

    /// The address of the gateway's Redis protocol listener, when it serves one.
    pub fn resp_address(&self) -> Option<SocketAddr> {
        self.gateway.as_ref()?.resp.as_ref().map(|r| r.address)
    }

    /// The gateway's metrics, if the cluster runs one.
    pub fn gateway_metrics(&self) -> Option<std::sync::Arc<kvdb_core::metrics::Registry>> {
        self.gateway.as_ref().map(|g| g.metrics.clone())
    }

    /// Where node `i` serves Redis Cluster mode, while it runs and serves it.
    pub fn node_resp_address(&self, i: usize) -> Option<SocketAddr> {
        self.node_resp.get(i)?.as_ref().map(|r| r.address)
    }

    /// Data-plane address of node `i` (0-based).
    pub fn node_address(&self, i: usize) -> SocketAddr {
        self.node_addresses[i]
    }

    /// Number of storage nodes (running or stopped).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`, if running.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].as_ref()
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Node `i`'s coordinator id.
    pub fn node_id(&self, i: usize) -> NodeId {
        self.node_ids[i]
    }

    /// The index of the node with coordinator id `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.node_ids.iter().position(|n| *n == id)
    }

    /// The coordinator's current map, while it runs.
    pub fn map(&self) -> Option<Arc<ShardMap>> {
        self.coordinator.as_ref().map(|c| c.coordinator.map())
    }

    /// Whether node `i` runs and believes it leads `shard` (the coordinator's
    /// leader hint may lag).
    pub fn is_leader(&self, i: usize, shard: ShardId) -> bool {
        let (Some(map), Some(node)) = (self.map(), self.nodes[i].as_ref()) else {
            return false;
        };
        node.manager()
            .local(&map, shard)
            .is_some_and(|(local, _)| local.is_leader)
    }

    /// The node that leads `shard` according to the nodes themselves.
    pub fn leader_of(&self, shard: ShardId) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.is_leader(i, shard))
    }

    /// The Raft term of node `i`'s replica of `shard`, if it runs and holds one.
    pub fn term(&self, i: usize, shard: ShardId) -> Option<u64> {
        let map = self.map()?;
        let (_, replica) = self.nodes[i].as_ref()?.manager().local(&map, shard)?;
        Some(replica.leadership().term)
    }

    /// A smart client of this cluster, presenting the cluster token when there is one.
    pub async fn client(&self) -> Result<Client, kvdb_client::ClientError> {
        let config = ExecutorConfig {
            credentials: self.credentials(),
            ..ExecutorConfig::default()
        };
        Client::connect_with(&[self.coordinator_address()], config).await
    }

    /// A gateway client of this cluster (panics if no gateway runs), presenting the cluster
    /// token when there is one.
    pub fn gateway_client(&self) -> Result<GatewayClient, kvdb_client::ClientError> {
        let addr = self
            .gateway_address()
            .expect("this cluster runs no gateway");
        GatewayClient::connect_with(&addr.to_string(), self.credentials())
    }

    /// What the cluster's own clients present: the cluster token, if any.
    pub fn credentials(&self) -> Credentials {
        self.config.auth.credentials().unwrap_or_default()
    }

    /// Starts one more storage node on an ephemeral loopback port, as an
    /// operator adding a machine would: it registers, and the coordinator's
    /// scheduler gives it replicas. Returns its index.
    pub async fn add_node(&mut self) -> Result<usize, StartError> {
        let i = self.nodes.len();
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let listener = bind(&node_name(i), any).await?;
        self.node_addresses
            .push(local_addr(&node_name(i), &listener)?);
        self.config.nodes.push(any);
        if !self.config.node_resp.is_empty() {
            self.config.node_resp.push(any);
        }
        let (node, resp) = self.launch_node(i, listener).await?;
        self.node_ids.push(node.id());
        self.nodes.push(Some(node));
        self.node_resp.push(resp);
        Ok(i)
    }

    /// Stops node `i` as a crash would look to its peers (its data stays).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(resp) = self.node_resp[i].take() {
            resp.stop().await;
        }
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
        let mut ports = vec![self.node_addresses[i]];
        ports.extend(self.config.node_resp.get(i).copied());
        self.reserve(ports);
    }

    /// Holds `ports` of a stopped server until it restarts (see `servers::reserve`).
    fn reserve(&mut self, ports: Vec<SocketAddr>) {
        for addr in ports {
            if let Some(socket) = reserve(addr) {
                self.reserved.insert(addr, socket);
            }
        }
    }

    /// Listens on `addr` again, on the socket that held it while its server was down, if any.
    async fn listen_again(
        &mut self,
        what: &str,
        addr: SocketAddr,
    ) -> Result<TcpListener, StartError> {
        rebind(what, addr, self.reserved.remove(&addr)).await
    }

    /// Restarts a stopped node `i` at its old address with its old data.
    pub async fn restart_node(&mut self, i: usize) -> Result<(), StartError> {
        if self.nodes[i].is_none() {
            let addr = self.node_addresses[i];
            let listener = self.listen_again(&node_name(i), addr).await?;
            let (node, resp) = self.launch_node(i, listener).await?;
            self.nodes[i] = Some(node);
            self.node_resp[i] = resp;
        }
        Ok(())
    }

    /// Stops the coordinator (gRPC, Admin API and its Raft member) as a
    /// crash would look to clients and nodes; its data stays. Nodes and
    /// clients keep routing with the maps they hold.
    pub async fn stop_coordinator(&mut self) {
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.shutdown().await;
            self.reserve(vec![self.coordinator_address, self.admin_address]);
        }
    }

    /// Restarts a stopped coordinator at its old addresses with its old
    /// data, and waits until it leads its group again.
    pub async fn restart_coordinator(&mut self) -> Result<(), StartError> {
        if self.coordinator.is_some() {
            return Ok(());
        }
        let (grpc, admin) = (self.coordinator_address, self.admin_address);
        let grpc = self.listen_again("coordinator", grpc).await?;
        let admin = self.listen_again("Admin API", admin).await?;
        let running = launch_coordinator(&self.config, grpc, admin).await?;
        let deadline = tokio::time::Instant::now() + self.config.startup_timeout;
        let coordinator = running.coordinator.clone();
        self.coordinator = Some(running);
        wait_until(deadline, "the restarted coordinator to lead", || {
            coordinator.is_leader() && coordinator.map().is_initialized()
        })
        .await
    }

    /// Stops everything: gateway, nodes, coordinator.
    pub async fn shutdown(mut self) {
        if let Some(g) = self.gateway.take() {
            if let Some(resp) = g.resp {
                resp.stop().await;
            }
            let _ = g.stop.send(());
            let _ = g.task.await;
        }
        for resp in self.node_resp.iter_mut().filter_map(Option::take) {
            resp.stop().await;
        }
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.shutdown().await;
        }
        self.stop_coordinator().await;
    }
}

/// Starts the coordinator of `config` on bound listeners.
async fn launch_coordinator(
    config: &ClusterConfig,
    grpc: TcpListener,
    admin: TcpListener,
) -> Result<RunningCoordinator, StartError> {
    let address = local_addr("coordinator", &grpc)?;
    let mut coordinator_config =
        CoordinatorConfig::new(1, address, config.data_dir.join("coordinator"));
    coordinator_config.auth = config.auth.clone();
    coordinator_config.connections = config.connections;
    (config.tune_coordinator)(&mut coordinator_config);
    let admin_config = AdminConfig {
        tokens: config
            .auth
            .tokens()
            .map_err(|e| StartError::Bootstrap(format!("tokens: {e}")))?,
        ..AdminConfig::default()
    };
    RunningCoordinator::start(coordinator_config, grpc, admin, admin_config).await
}

/// Name of node `i` (0-based): `node-1`, `node-2`, ...
pub fn node_name(i: usize) -> String {
    format!("node-{}", i + 1)
}

/// Polls `ready` (cheap, in-memory) until it holds or `deadline` passes.
async fn wait_until(
    deadline: tokio::time::Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), StartError> {
    while !ready() {
        if tokio::time::Instant::now() >= deadline {
            return Err(StartError::Bootstrap(format!(
                "timed out waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
