//! The first half of starting a cluster: listeners bound, nothing running.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{ClusterConfig, LocalCluster, launch_coordinator};
use crate::servers::StartError;

/// A cluster whose listeners are bound and nothing runs yet: every address is
/// known, so a caller can set up what sits between the members (and tune the
/// configuration with those addresses) before [`BoundCluster::start`].
pub struct BoundCluster {
    pub(super) config: ClusterConfig,
    pub(super) coordinator: TcpListener,
    pub(super) admin: TcpListener,
    pub(super) nodes: Vec<TcpListener>,
    pub(super) gateway: Option<TcpListener>,
    pub(super) resp: Option<TcpListener>,
    pub(super) coordinator_address: SocketAddr,
    pub(super) admin_address: SocketAddr,
    pub(super) node_addresses: Vec<SocketAddr>,
}

impl BoundCluster {
    /// The coordinator's gRPC address.
    pub fn coordinator_address(&self) -> SocketAddr {
        self.coordinator_address
    }

    /// Every node's data-plane address, by index.
    pub fn node_addresses(&self) -> &[SocketAddr] {
        &self.node_addresses
    }

    /// The configuration to start with, open to changes until then.
    pub fn config_mut(&mut self) -> &mut ClusterConfig {
        &mut self.config
    }

    /// Starts every member; on a new data directory, initializes the shards
    /// once all nodes registered. Returns when every shard has a leader.
    pub async fn start(self) -> Result<LocalCluster, StartError> {
        let coordinator = launch_coordinator(&self.config, self.coordinator, self.admin).await?;
        let mut cluster = LocalCluster {
            node_addresses: self.node_addresses,
            nodes: Vec::new(),
            node_ids: Vec::new(),
            node_resp: Vec::new(),
            gateway: None,
            coordinator_address: self.coordinator_address,
            admin_address: self.admin_address,
            coordinator: Some(coordinator),
            config: self.config,
            reserved: Default::default(),
        };
        for (i, listener) in self.nodes.into_iter().enumerate() {
            let (node, resp) = cluster.launch_node(i, listener).await?;
            cluster.node_ids.push(node.id());
            cluster.nodes.push(Some(node));
            cluster.node_resp.push(resp);
        }
        cluster.bootstrap().await?;
        if let Some(listener) = self.gateway {
            cluster.gateway = Some(cluster.launch_gateway(listener, self.resp).await?);
        }
        Ok(cluster)
    }
}
