//! Serving one coordinator member over gRPC: the Coordinator service and the
//! Raft transport of the coordinator group, on one already-bound listener.
//! WatchShardMap is routed to [`crate::watch_route`], which sends each event's
//! shared encoding instead of encoding it per stream.
//!
//! Out of scope: the admin HTTP API, which runs on its own listener
//! (`admin::router`), and TLS.

use std::future::Future;

use kvdb_core::call_stream::Closing;
use kvdb_core::introspection::{HealthStatus, reflection};
use kvdb_core::raft::transport::RaftTransportService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;

use crate::coordinator::Coordinator;
use crate::service::CoordinatorService;
use crate::watch_route::{WATCH_SHARD_MAP_PATH, WatchShardMapRoute};

/// The largest Coordinator message accepted or sent: room for the full map
/// of a cluster with every slot in its own shard.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server failed.
    #[error("coordinator gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The configured tokens are unusable.
    #[error("coordinator tokens: {0}")]
    Auth(String),
}

/// Serves `coordinator` on `listener` until `shutdown` completes, then ends
/// every open watch and waits for in-flight calls to finish. The
/// coordinator itself keeps running; shut it down separately.
pub async fn serve(
    coordinator: Coordinator,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (closing, closed) = watch::channel(false);
    let service = CoordinatorService::new(coordinator.clone(), closed.clone())
        .into_server()
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let raft = RaftTransportService::new(coordinator.router())
        .with_forwarded_writes()
        .with_closing(Closing::on(closed.clone()))
        .into_server();
    let watch = WatchShardMapRoute::new(coordinator.clone(), closed, MAX_MESSAGE_SIZE);
    let (health, health_service) = HealthStatus::new(SERVICES).await;
    let (reflection_v1, reflection_v1alpha) = reflection(SERVICES);
    let readiness = tokio::spawn(report_readiness(coordinator.clone(), health));
    // The exact path of the watch method wins over the service's wildcard.
    let routes = Routes::new(service)
        .add_service(raft)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .route_service(WATCH_SHARD_MAP_PATH, watch);
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let config = coordinator.config();
    let listening = config
        .auth
        .listening(config.connections)
        .map_err(|e| ServeError::Auth(e.to_string()))?;
    let served = listening
        .server()
        .add_routes(Routes::from(routes))
        .serve_with_incoming_shutdown(listening.incoming(listener), shutdown)
        .await;
    readiness.abort();
    served?;
    Ok(())
}

/// The gRPC services a coordinator serves, as health checks and reflection name them.
const SERVICES: &[&str] = &["kvdb.v1.Coordinator", "kvdb.v1.RaftTransport"];

/// Keeps health `SERVING` while the coordinator group has a leader that applied an entry of
/// its term (the coordinator can answer), `NOT_SERVING` otherwise.
async fn report_readiness(coordinator: Coordinator, mut health: HealthStatus) {
    let mut metrics = coordinator.raft_metrics();
    loop {
        health.set(coordinator.is_ready()).await;
        if metrics.changed().await.is_err() {
            health.set(false).await;
            return;
        }
    }
}
