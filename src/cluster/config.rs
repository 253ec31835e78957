//! What a [`LocalCluster`](super::LocalCluster) runs: addresses, shards and
//! the hooks that tune its members.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kvdb_client::ExecutorConfig;
use kvdb_coordinator::CoordinatorConfig;
use kvdb_core::auth::AuthConfig;
use kvdb_node::config::NodeConfig;

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
    /// Address of the gateway's Redis protocol (RESP) listener; `None` serves none. Needs a
    /// gateway.
    pub resp: Option<SocketAddr>,
    /// Whether the RESP listener lets clients run `FLUSHDB`/`FLUSHALL`.
    pub resp_allow_flush: bool,
    /// Each node's Redis Cluster-mode listener, by node index (port 0 picks one, kept
    /// across restarts); empty: the nodes serve no RESP.
    pub node_resp: Vec<SocketAddr>,
    /// One address per storage node; port 0 picks one (kept across restarts).
    pub nodes: Vec<SocketAddr>,
    /// Shards created when the cluster is new.
    pub shards: u32,
    /// Replicas per shard when the cluster is new ([`Self::ephemeral`] caps it at the node count).
    pub replication_factor: u32,
    /// Applied to each node's configuration, at every start of the node.
    pub tune_node: NodeHook,
    /// Applied to the coordinator's configuration.
    pub tune_coordinator: fn(&mut CoordinatorConfig),
    /// How the gateway's executor routes and retries.
    pub gateway_executor: ExecutorConfig,
    /// How long start-up and bootstrap may take.
    pub startup_timeout: Duration,
    /// Every server's tokens (see `kvdb_core::auth`); the cluster's own clients present the
    /// cluster token. Default: open.
    pub auth: AuthConfig,
    /// Connection and stream limits of every server.
    pub connections: kvdb_core::incoming::ConnectionLimits,
    /// Whether nodes and the gateway count and time requests (see `kvdb_core::metrics`).
    pub request_metrics: bool,
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
            resp: None,
            resp_allow_flush: false,
            node_resp: Vec::new(),
            nodes: vec![any; nodes],
            shards: Self::DEFAULT_SHARDS,
            replication_factor: Self::DEFAULT_REPLICATION.min(nodes as u32),
            tune_node: NodeHook::none(),
            tune_coordinator: |_| {},
            gateway_executor: ExecutorConfig::default(),
            startup_timeout: Self::DEFAULT_STARTUP_TIMEOUT,
            auth: AuthConfig::default(),
            connections: kvdb_core::incoming::ConnectionLimits::default(),
            request_metrics: true,
        }
    }
}

/// Failure handling fast enough to watch: nodes are dead 2 s after their last heartbeat and
/// their replicas replaced 1 s later, and the scheduler plans every 200 ms (the defaults: 6 s,
/// 30 s, 1 s). For [`ClusterConfig::tune_coordinator`] in tests and demonstrations.
pub fn fast_repair(config: &mut CoordinatorConfig) {
    config.heartbeat_interval = Duration::from_millis(200);
    config.suspect_after = Duration::from_secs(1);
    config.dead_after = Duration::from_secs(2);
    config.scheduler.interval = Duration::from_millis(200);
    config.scheduler.repair_after = Duration::from_secs(1);
}

/// A change to node `i`'s configuration (0-based), e.g. its timeouts or the
/// proxies it dials its peers through.
#[derive(Clone)]
pub struct NodeHook(Arc<TuneNode>);

type TuneNode = dyn Fn(usize, &mut NodeConfig) + Send + Sync;

impl NodeHook {
    /// A hook calling `tune` with each node's index and configuration.
    pub fn new(tune: impl Fn(usize, &mut NodeConfig) + Send + Sync + 'static) -> NodeHook {
        NodeHook(Arc::new(tune))
    }

    /// Leaves every configuration as it is.
    pub fn none() -> NodeHook {
        NodeHook::new(|_, _| {})
    }

    /// Tunes node `i`'s `config`.
    pub fn apply(&self, i: usize, config: &mut NodeConfig) {
        (self.0)(i, config)
    }
}

impl fmt::Debug for NodeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeHook")
    }
}
