//! [`ControlPlane`]: what a storage node asks of, and tells, the coordinator.
//!
//! The node's logic (registration, heartbeats, leader and configuration
//! reports) is written against this small trait rather than a gRPC client,
//! so that it can be driven by an in-memory fake in tests. The production
//! implementation is core's leader-following [`CoordinatorClient`].
//!
//! Out of scope: following the shard map, which goes through core's
//! `ShardMapCache` and its `ShardMapSource`.

use futures::FutureExt;
use futures::future::BoxFuture;
use kvdb_core::coordinator_client::CoordinatorClient;
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{Epoch, MapVersion, NodeId, ShardId};

/// A failed call to the coordinator. Every one is retryable: the node tries
/// again on its next heartbeat or reconcile round.
#[derive(Debug, thiserror::Error)]
#[error("coordinator {call} failed: {source}")]
pub struct ControlError {
    /// The call that failed, e.g. `"report_shard_leader"`.
    pub call: &'static str,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ControlError {
    /// A mapper for `map_err` that tags any error with the failed call.
    pub fn during<E>(call: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| Self {
            call,
            source: Box::new(e),
        }
    }
}

/// The coordinator, as a storage node uses it.
pub trait ControlPlane: Send + Sync + 'static {
    /// Registers the node (idempotent by `name`: a restarted node gets its
    /// id back) with its RESP address (empty for none), and returns its id.
    fn register_node<'a>(
        &'a self,
        name: &'a str,
        address: &'a str,
        zone: &'a str,
        resp_address: &'a str,
    ) -> BoxFuture<'a, Result<NodeId, ControlError>>;

    /// Tells the coordinator the node is alive, with its replicas' figures when it has
    /// fresh ones; returns its map version.
    fn heartbeat<'a>(
        &'a self,
        node: NodeId,
        stats: &'a [ShardStats],
    ) -> BoxFuture<'a, Result<MapVersion, ControlError>>;

    /// Reports that `leader` leads `shard` (at `epoch`) in Raft term `term`.
    /// `Ok(false)`: the coordinator refused it (an older term or epoch).
    fn report_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> BoxFuture<'_, Result<bool, ControlError>>;

    /// Reports that `shard`'s group committed the replica set `replicas`
    /// for the move at `epoch`. `Ok(false)`: refused (another epoch).
    fn report_shard_config(
        &self,
        shard: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    ) -> BoxFuture<'_, Result<bool, ControlError>>;

    /// Asks for `shard`'s leadership (at `epoch`) to move to `node`, as an operator's
    /// `SetShardLeader` does: the map names `node`, and the leader and `node` act on it
    /// (see [`crate::transfer`]).
    fn request_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        node: NodeId,
    ) -> BoxFuture<'_, Result<(), ControlError>>;
}

impl ControlPlane for CoordinatorClient {
    fn register_node<'a>(
        &'a self,
        name: &'a str,
        address: &'a str,
        zone: &'a str,
        resp_address: &'a str,
    ) -> BoxFuture<'a, Result<NodeId, ControlError>> {
        async move {
            let node = CoordinatorClient::register_node(self, name, address, zone, resp_address)
                .await
                .map_err(ControlError::during("register_node"))?;
            Ok(node.id)
        }
        .boxed()
    }

    fn heartbeat<'a>(
        &'a self,
        node: NodeId,
        stats: &'a [ShardStats],
    ) -> BoxFuture<'a, Result<MapVersion, ControlError>> {
        async move {
            CoordinatorClient::heartbeat(self, node, stats)
                .await
                .map_err(ControlError::during("heartbeat"))
        }
        .boxed()
    }

    fn report_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> BoxFuture<'_, Result<bool, ControlError>> {
        async move {
            CoordinatorClient::report_shard_leader(self, shard, epoch, leader, term)
                .await
                .map_err(ControlError::during("report_shard_leader"))
        }
        .boxed()
    }

    fn report_shard_config(
        &self,
        shard: ShardId,
        epoch: Epoch,
        replicas: Vec<NodeId>,
    ) -> BoxFuture<'_, Result<bool, ControlError>> {
        async move {
            CoordinatorClient::report_shard_config(self, shard, epoch, &replicas)
                .await
                .map_err(ControlError::during("report_shard_config"))
        }
        .boxed()
    }

    fn request_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        node: NodeId,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        async move {
            CoordinatorClient::set_shard_leader(self, shard, epoch, node)
                .await
                .map(|_| ())
                .map_err(ControlError::during("request_shard_leader"))
        }
        .boxed()
    }
}
