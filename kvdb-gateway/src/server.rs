//! Serving the gateway: KvGateway plus gRPC health, with graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use kvdb_client::ExecutorConfig;
use kvdb_client::wire::Executor;
use kvdb_core::cache::{CacheConfig, ShardMapCache};
use kvdb_core::call_link::MAX_CLIENT_MESSAGE_BYTES;
use kvdb_core::call_stream::Closing;
use kvdb_core::coordinator_client::CoordinatorClient;
use kvdb_core::error::KvError;
use kvdb_core::incoming::Listening;
use kvdb_core::introspection::{HealthStatus, reflection};
use kvdb_core::metrics::{Registry, RequestMetrics, RetryMetrics};
use kvdb_core::proto::v1::kv_gateway_server::KvGatewayServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::service::GatewayService;

/// A gateway's routing state: the shard-map cache following the
/// coordinators and the executor that uses it.
pub struct Gateway {
    executor: Executor,
    registry: Arc<Registry>,
    requests: RequestMetrics,
}

impl Gateway {
    /// Follows the coordinators at `coordinators`; does not wait for a map
    /// (requests before the first map retry until their deadline, then fail
    /// `UNAVAILABLE` with `NO_SHARD_MAP`; health says `NOT_SERVING` meanwhile).
    pub fn connect(
        coordinators: &[String],
        mut config: ExecutorConfig,
    ) -> Result<Gateway, KvError> {
        let source = CoordinatorClient::with_config(coordinators, config.coordinator_client())
            .map_err(|e| KvError::InvalidArgument(format!("coordinators: {e}")))?;
        let (cache, _driver) = ShardMapCache::spawn(Arc::new(source), CacheConfig::default())
            .map_err(|e| KvError::InvalidArgument(e.to_string()))?;
        let mut registry = kvdb_core::metrics::registry();
        let requests = RequestMetrics::register(&mut registry, "gateway");
        config.retries = Some(RetryMetrics::register(&mut registry, "gateway"));
        cache.register_metrics(&mut registry, "gateway");
        Ok(Gateway {
            executor: Executor::new(cache, config),
            registry: Arc::new(registry),
            requests,
        })
    }

    /// Stops counting and timing requests (`false`), for a gateway whose metrics nobody
    /// scrapes; the other series are read at scrape time and cost nothing until then.
    pub fn record_requests(mut self, record: bool) -> Gateway {
        if !record {
            self.requests = RequestMetrics::off();
        }
        self
    }

    /// The gateway's metrics, to serve with [`kvdb_core::metrics::serve`].
    pub fn metrics(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The executor requests run on.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    gateway: &Gateway,
    listener: TcpListener,
    listening: Listening,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    // NOT_SERVING until there is a shard map to route by: without one every request would
    // only wait for its deadline.
    let (mut status, health) = HealthStatus::new(SERVICES).await;
    let (reflection_v1, reflection_v1alpha) = reflection(SERVICES);
    let mut maps = gateway.executor.cache().subscribe();
    let health_updates = tokio::spawn(async move {
        if maps.wait_for(|map| !map.shards.is_empty()).await.is_ok() {
            status.set(true).await;
        }
    });
    let (closing, closed) = watch::channel(false);
    let service = GatewayService::new(gateway.executor.clone())
        .with_closing(Closing::on(closed))
        .with_metrics(gateway.requests.clone());
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let served = listening
        .server()
        .tcp_nodelay(true)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            KvGatewayServer::new(service)
                .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(listening.incoming(listener), shutdown)
        .await;
    health_updates.abort();
    served
}

/// The gRPC services a gateway serves, as health checks and reflection name them.
const SERVICES: &[&str] = &["kvdb.v1.KvGateway"];
