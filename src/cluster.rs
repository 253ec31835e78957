//! A whole KvDB cluster inside one process: one coordinator with its Admin
//! API, storage nodes and a gateway, on loopback. `kvdb dev` runs one with
//! fixed ports; tests and the embedded example run one on ephemeral ports.
//!
//! Fault hooks stop and restart a node, or the coordinator, in place (same
//! address, same data), which is what a crash-and-restart looks like to the
//! rest of the cluster.
//! Out of scope: network faults (see `kvdb-testkit`'s fault proxy) and
//! multi-member coordinator groups.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use kvdb_client::{Client, ExecutorConfig, GatewayClient};
use kvdb_coordinator::admin::AdminConfig;
use kvdb_coordinator::{Coordinator, CoordinatorConfig};
use kvdb_gateway::Gateway;
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::servers::{RunningCoordinator, StartError, bind, local_addr};

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Root of every member's data (`coordinator/`, `node-N/`).
    pub data_dir: PathBuf,
    /// Coordinator gRPC address; port 0 picks one.
    pub coordinator: SocketAddr,
    /// Admin API address; port 0 picks one.
    pub admin: SocketAddr,
    /// Gateway address; `None` runs no gateway.
    pub gateway: Option<SocketAddr>,
    /// One address per storage node; port 0 picks one (kept across restarts).
    pub nodes: Vec<SocketAddr>,
    /// Shards created when the cluster is new.
    pub shards: u32,
    pub replication_factor: u32,
    /// Applied to every node's configuration (tests tune timeouts here).
    pub tune_node: fn(&mut NodeConfig),
    /// Applied to the coordinator's configuration.
    pub tune_coordinator: fn(&mut CoordinatorConfig),
    /// How long start-up and bootstrap may take.
    pub startup_timeout: Duration,
}

impl ClusterConfig {
    /// Default shard count.
    pub const DEFAULT_SHARDS: u32 = 8;
    /// Default replication factor.
    pub const DEFAULT_REPLICATION: u32 = 3;
    /// Default start-up bound.
    pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

    /// `nodes` storage nodes, coordinator, Admin API and gateway, all on
    /// ephemeral loopback ports, 8 shards at RF 3 (or RF = nodes if fewer).
    pub fn ephemeral(data_dir: impl Into<PathBuf>, nodes: usize) -> ClusterConfig {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        ClusterConfig {
            data_dir: data_dir.into(),
            coordinator: any,
            admin: any,
            gateway: Some(any),
            nodes: vec![any; nodes],
            shards: Self::DEFAULT_SHARDS,
            replication_factor: Self::DEFAULT_REPLICATION.min(nodes as u32),
            tune_node: |_| {},
            tune_coordinator: |_| {},
            startup_timeout: Self::DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

struct RunningGateway {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
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
    gateway: Option<RunningGateway>,
}

impl LocalCluster {
    /// Starts every member; on a new data directory, initializes the shards
    /// once all nodes registered. Returns when every shard has a leader.
    pub async fn start(config: ClusterConfig) -> Result<LocalCluster, StartError> {
        let grpc = bind("coordinator", config.coordinator).await?;
        let admin = bind("Admin API", config.admin).await?;
        let coordinator_address = local_addr("coordinator", &grpc)?;
        let admin_address = local_addr("Admin API", &admin)?;
        let coordinator = launch_coordinator(&config, grpc, admin).await?;
        let mut cluster = LocalCluster {
            node_addresses: Vec::new(),
            nodes: Vec::new(),
            gateway: None,
            coordinator_address,
            admin_address,
            coordinator: Some(coordinator),
            config,
        };
        for i in 0..cluster.config.nodes.len() {
            let requested = cluster.config.nodes[i];
            let node = cluster.launch_node(i, requested).await?;
            cluster
                .node_addresses
                .push(addr_from(node.address(), requested));
            cluster.nodes.push(Some(node));
        }
        cluster.bootstrap().await?;
        if let Some(addr) = cluster.config.gateway {
            cluster.gateway = Some(cluster.launch_gateway(addr).await?);
        }
        Ok(cluster)
    }

    async fn launch_node(&self, i: usize, addr: SocketAddr) -> Result<Node, StartError> {
        let name = node_name(i);
        let listener = bind(&name, addr).await?;
        let mut config = NodeConfig::new(
            name.clone(),
            self.config.data_dir.join(&name),
            vec![self.coordinator_address.to_string()],
        );
        config.zone = "default".to_owned();
        (self.config.tune_node)(&mut config);
        Node::start(config, listener)
            .await
            .map_err(|source| StartError::Node { name, source })
    }

    async fn launch_gateway(&self, addr: SocketAddr) -> Result<RunningGateway, StartError> {
        let gateway = Gateway::connect(
            &[self.coordinator_address.to_string()],
            ExecutorConfig::default(),
        )
        .map_err(StartError::Gateway)?;
        let listener = bind("gateway", addr).await?;
        let address = local_addr("gateway", &listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(e) = kvdb_gateway::serve(&gateway, listener, stopped).await {
                tracing::error!(error = %e, "gateway failed");
            }
        });
        Ok(RunningGateway {
            address,
            stop,
            task,
        })
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

    /// A smart client of this cluster.
    pub async fn client(&self) -> Result<Client, kvdb_client::ClientError> {
        Client::connect(&[self.coordinator_address()]).await
    }

    /// A gateway client of this cluster (panics if no gateway runs).
    pub fn gateway_client(&self) -> Result<GatewayClient, kvdb_client::ClientError> {
        let addr = self
            .gateway_address()
            .expect("this cluster runs no gateway");
        GatewayClient::connect(&addr.to_string())
    }

    /// Stops node `i` as a crash would look to its peers (its data stays).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Restarts a stopped node `i` at its old address with its old data.
    pub async fn restart_node(&mut self, i: usize) -> Result<(), StartError> {
        if self.nodes[i].is_none() {
            let node = self.launch_node(i, self.node_addresses[i]).await?;
            self.nodes[i] = Some(node);
        }
        Ok(())
    }

    /// Stops the coordinator (gRPC, Admin API and its Raft member) as a
    /// crash would look to clients and nodes; its data stays. Nodes and
    /// clients keep routing with the maps they hold.
    pub async fn stop_coordinator(&mut self) {
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.shutdown().await;
        }
    }

    /// Restarts a stopped coordinator at its old addresses with its old
    /// data, and waits until it leads its group again.
    pub async fn restart_coordinator(&mut self) -> Result<(), StartError> {
        if self.coordinator.is_some() {
            return Ok(());
        }
        let grpc = bind("coordinator", self.coordinator_address).await?;
        let admin = bind("Admin API", self.admin_address).await?;
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
            let _ = g.stop.send(());
            let _ = g.task.await;
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
    grpc: tokio::net::TcpListener,
    admin: tokio::net::TcpListener,
) -> Result<RunningCoordinator, StartError> {
    let address = local_addr("coordinator", &grpc)?;
    let mut coordinator_config =
        CoordinatorConfig::new(1, address, config.data_dir.join("coordinator"));
    (config.tune_coordinator)(&mut coordinator_config);
    RunningCoordinator::start(coordinator_config, grpc, admin, AdminConfig::default()).await
}

/// Name of node `i` (0-based): `node-1`, `node-2`, ...
pub fn node_name(i: usize) -> String {
    format!("node-{}", i + 1)
}

fn addr_from(advertised: &str, fallback: SocketAddr) -> SocketAddr {
    advertised.parse().unwrap_or(fallback)
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
