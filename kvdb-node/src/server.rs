//! The entry point of the `kvdb node` subcommand: run a node on an already
//! bound listener until a shutdown future completes (mini-redis style, so
//! tests bind `127.0.0.1:0` and never sleep).
//!
//! Out of scope: flag parsing and signal handling, which belong to the
//! binary; it passes `tokio::signal::ctrl_c()` (or similar) as `shutdown`.

use std::future::Future;
use std::sync::Arc;

use kvdb_core::cache::ShardMapSource;
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::control::ControlPlane;
use crate::node::{Node, NodeError};

/// Starts a node on `listener` with core's coordinator client, serves until
/// `shutdown` completes, then stops it gracefully.
pub async fn serve(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let node = Node::start(config, listener).await?;
    run_until(node, shutdown).await;
    Ok(())
}

/// Starts a node on `listener`, serves until `shutdown` completes, then
/// stops it gracefully (replicas keep their data).
pub async fn serve_with(
    config: NodeConfig,
    listener: TcpListener,
    control: Arc<dyn ControlPlane>,
    source: Arc<dyn ShardMapSource>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let node = Node::start_with(config, listener, control, source).await?;
    run_until(node, shutdown).await;
    Ok(())
}

async fn run_until(node: Node, shutdown: impl Future<Output = ()>) {
    tracing::info!(node = %node.id(), address = %node.address(), "storage node serving");
    shutdown.await;
    tracing::info!(node = %node.id(), "shutting down");
    node.shutdown().await;
}
