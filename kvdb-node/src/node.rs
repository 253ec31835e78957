//! [`Node`]: a running storage node, from registration to shutdown.
//!
//! Starting a node opens its two databases in the data directory (the Raft
//! log of every shard group, and every shard's key-value tables), registers
//! with the coordinator (a restarted node gets its id back by name), starts
//! following the shard map, and serves `KvNode` and `RaftTransport` on the
//! one listener it is given. Background tasks send heartbeats and run the
//! replica manager.
//!
//! Out of scope: binding the listener and parsing flags (the binary does),
//! and TLS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kvdb_core::auth::AuthConfigError;
use kvdb_core::cache::{CacheConfig, DriverHandle, ShardMapCache, ShardMapSource};
use kvdb_core::coordinator_client::{
    CoordinatorClient, CoordinatorClientConfig, CoordinatorClientError,
};
use kvdb_core::data_format::{DirKind, FormatError};
use kvdb_core::incoming::Listening;
use kvdb_core::introspection::{Health, HealthServer, HealthStatus, reflection};
use kvdb_core::local_node::LocalNodeLink;
use kvdb_core::metrics::Registry;
use kvdb_core::proto::v1::shard_export_server::ShardExportServer;
use kvdb_core::raft::log_store::{LogDb, LogDbError, LogDbOptions, LogDbStats};
use kvdb_core::raft::quiesce::{QuiesceTokens, Quiescer};
use kvdb_core::raft::transport::{
    PeerChannels, PeerChannelsConfig, RaftRouter, RaftTransportService,
};
use kvdb_core::reopen;
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::storage::WriteBuffer;
use kvdb_core::{NodeId, ShardId};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{ConfigError, KV_DB_FILE, LOG_DB_FILE, NodeConfig};
use crate::control::{ControlError, ControlPlane};
use crate::disk::DiskGuard;
use crate::export::ExportService;
use crate::kv_service::KvService;
use crate::proposal::Limits;
use crate::raft_types::ShardRaftConfig;
use crate::replica::ReplicaEnv;
use crate::replica_manager::ReplicaManager;
use crate::shutdown::Shutdown;
use crate::split::Nursery;

/// How long [`Node::start_with`] keeps trying to register before giving up.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between registration attempts.
const REGISTER_RETRY: Duration = Duration::from_millis(200);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener's address could not be read, or the data directory made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O failure (a panicked blocking task arrives as `io::Error::other`).
        #[source]
        source: std::io::Error,
    },
    /// The data directory is another server's, or in a format this build does not read.
    #[error(transparent)]
    DataFormat(#[from] FormatError),
    /// The Raft log database could not be opened.
    #[error(transparent)]
    LogDb(#[from] LogDbError),
    /// The key-value database could not be opened.
    #[error("open key-value database {path}: {source}")]
    KvDb {
        /// The file.
        path: PathBuf,
        /// Why redb could not open or create it.
        #[source]
        source: redb::DatabaseError,
    },
    /// The coordinator could not be reached for registration in time.
    #[error("registration failed: {0}")]
    Register(#[source] ControlError),
    /// The tokens are unusable.
    #[error("tokens: {0}")]
    Auth(#[from] AuthConfigError),
    /// The coordinator addresses are unusable.
    #[error("coordinator client: {0}")]
    Coordinator(#[from] CoordinatorClientError),
    /// The shard-map cache refused its configuration.
    #[error("shard-map cache: {0}")]
    Cache(#[from] kvdb_core::cache::ConfigError),
}

/// A running storage node.
pub struct Node {
    id: NodeId,
    address: String,
    /// The KV service the gRPC server runs, also reached in process (see `local_kv`).
    kv: KvService,
    manager: Arc<ReplicaManager>,
    log_db: LogDb,
    quiescer: Option<Arc<Quiescer<ShardRaftConfig>>>,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    cache_driver: DriverHandle,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on `listener`, registering with and following the
    /// coordinators of `config.coordinators` through core's
    /// [`CoordinatorClient`].
    pub async fn start(config: NodeConfig, listener: TcpListener) -> Result<Self, NodeError> {
        config.validate()?;
        let client_config = CoordinatorClientConfig {
            credentials: config.auth.credentials()?,
            ..CoordinatorClientConfig::default()
        };
        let client = Arc::new(CoordinatorClient::with_config(
            &config.coordinators,
            client_config,
        )?);
        Self::start_with(config, listener, client.clone(), client).await
    }

    /// Starts a node on `listener`, talking to the coordinator through
    /// `control` and following the map from `source`.
    pub async fn start_with(
        config: NodeConfig,
        listener: TcpListener,
        control: Arc<dyn ControlPlane>,
        source: Arc<dyn ShardMapSource>,
    ) -> Result<Self, NodeError> {
        config.validate()?;
        let address = advertised_address(&config, &listener)?;
        let (log_db, kv_db) = open_databases(&config).await?;
        let id = register(control.as_ref(), &config, &address).await?;
        tracing::info!(node = %id, %address, name = %config.name, "storage node registered");
        let (cache, cache_driver) = ShardMapCache::spawn(source, CacheConfig::default())?;
        let config = Arc::new(config);
        let peers = PeerChannels::with_rewrite(
            PeerChannelsConfig {
                credentials: config.auth.credentials()?,
                ..PeerChannelsConfig::default()
            },
            config.peer_address_rewrite.clone(),
        );
        let router = RaftRouter::new();
        let tokens = Arc::new(QuiesceTokens::default());
        let quiescer = config.quiescence().map(|quiescence| {
            Arc::new(Quiescer::new(
                id.0,
                router.clone(),
                peers.clone(),
                tokens.clone(),
                quiescence,
            ))
        });
        let env = ReplicaEnv {
            node: id,
            config: config.clone(),
            log_db: log_db.clone(),
            nursery: Arc::new(Nursery::new(kv_db.clone(), log_db.clone())),
            kv_db,
            peers,
            router: router.clone(),
            leadership_changed: Arc::new(Notify::new()),
            quiescer: quiescer.clone(),
            write_batches: Arc::default(),
        };
        let env_batches = env.write_batches.clone();
        let manager = Arc::new(ReplicaManager::new(env, cache, control.clone()));
        let (stop, stopped) = Shutdown::new();
        let limits = Limits {
            max_key_bytes: config.max_key_bytes,
            max_value_bytes: config.max_value_bytes,
        };
        let disk = DiskGuard::new(&config.data_dir, config.min_free_disk).map_err(|source| {
            NodeError::Io {
                what: format!("free space of {}", config.data_dir.display()),
                source,
            }
        })?;
        let (registry, requests) = crate::metrics::register(
            manager.clone(),
            env_batches,
            &log_db,
            disk.clone(),
            config.data_dir.clone(),
        );
        let export = ExportService::new(manager.clone(), config.request_timeout)
            .into_server(limits.max_message_bytes());
        let kv = KvService::new(manager.clone(), limits, config.request_timeout)
            .with_closing(stopped.closing())
            .with_disk_guard(disk.clone())
            .with_metrics(if config.request_metrics {
                requests
            } else {
                kvdb_core::metrics::RequestMetrics::off()
            });
        #[cfg(feature = "planted-bugs")]
        let kv = kv.with_planted_bug(config.planted_bug);
        let mut transport = RaftTransportService::new(router).with_closing(stopped.closing());
        if quiescer.is_some() {
            transport = transport.with_quiescence(tokens);
        }
        let listening = config.auth.listening(config.connections)?;
        let (health, health_service) = HealthStatus::new(SERVICES).await;
        let mut tasks = vec![
            tokio::spawn(serve(
                listener,
                kv.clone(),
                export,
                transport,
                listening,
                health_service,
                stopped.clone(),
            )),
            // Its lines (moves, reports, transfers) name the node: a process may run several.
            tokio::spawn(
                manager
                    .clone()
                    .run(stopped.clone())
                    .instrument(tracing::info_span!("node", id = %id)),
            ),
            tokio::spawn(disk.run(stopped.clone())),
            tokio::spawn(report_readiness(manager.clone(), health, stopped.clone())),
            tokio::spawn(heartbeat(
                control,
                manager.clone(),
                id,
                config.coordinator_heartbeat,
                stopped.clone(),
            )),
            tokio::spawn(crate::log_compaction::run(
                manager.clone(),
                config.snapshot_log_bytes,
                stopped.clone(),
            )),
        ];
        if let Some(quiescer) = quiescer.clone() {
            let mut stopped = stopped;
            tasks.push(tokio::spawn(async move {
                quiescer.run(stopped.recv()).await;
            }));
        }
        Ok(Self {
            id,
            address,
            kv,
            manager,
            log_db,
            quiescer,
            registry: Arc::new(registry),
            stop,
            tasks,
            cache_driver,
        })
    }

    /// How many shards this node leads and keeps quiet (see `kvdb_core::raft::quiesce`).
    pub fn quiet_leaderships(&self) -> usize {
        self.quiescer.as_ref().map_or(0, |q| q.quiet_leaderships())
    }

    /// Whether this node keeps its replica of `shard` quiet: "leads" or "follows" quietly,
    /// or `None` while it ticks.
    pub fn quiet(&self, shard: ShardId) -> Option<&'static str> {
        let q = self.quiescer.as_ref()?;
        if q.leads_quietly(shard.0) {
            Some("leads")
        } else if q.follows_quietly(shard.0) {
            Some("follows")
        } else {
            None
        }
    }

    /// The coordinator-assigned id of this node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The data-plane address this node advertises.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The node's KV service, for a front door in this process to call without the network
    /// (see [`kvdb_core::local_node`]).
    pub fn local_kv(&self) -> LocalNodeLink {
        LocalNodeLink {
            address: self.address.clone(),
            node: Arc::new(self.kv.clone()),
        }
    }

    /// The replica manager, for inspection (tests, metrics).
    pub fn manager(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The node's metrics, to serve with [`kvdb_core::metrics::serve`].
    pub fn metrics(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Counters of the Raft log's writes (fsyncs, batching).
    pub fn log_stats(&self) -> LogDbStats {
        self.log_db.stats()
    }

    /// Stops serving, stops every replica (keeping its data) and waits for
    /// every task, so the data directory can be opened again at once.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "node task failed");
            }
        }
        if let Err(e) = self.cache_driver.shutdown().await {
            tracing::warn!(error = %e, "shard-map cache driver failed");
        }
        tracing::info!(node = %self.id, "storage node stopped");
    }
}

fn advertised_address(config: &NodeConfig, listener: &TcpListener) -> Result<String, NodeError> {
    if !config.advertise_address.is_empty() {
        return Ok(config.advertise_address.clone());
    }
    let local = listener.local_addr().map_err(|source| NodeError::Io {
        what: "read the listener's address".into(),
        source,
    })?;
    Ok(local.to_string())
}

async fn open_databases(config: &NodeConfig) -> Result<(LogDb, Arc<WriteBuffer>), NodeError> {
    let dir = config.data_dir.clone();
    let group_commit = config.group_commit;
    let (log_cache, kv_cache) = config.cache_split();
    tokio::task::spawn_blocking(move || {
        kvdb_core::data_format::claim(&dir, DirKind::Node)?;
        let options = LogDbOptions {
            group_commit,
            cache_bytes: log_cache,
            ..LogDbOptions::default()
        };
        let log_db = LogDb::open_when_free(dir.join(LOG_DB_FILE), options)?;
        let kv_path = dir.join(KV_DB_FILE);
        let kv_db = reopen::when_free(
            || {
                redb::Database::builder()
                    .set_cache_size(kv_cache)
                    .create(&kv_path)
            },
            reopen::redb_in_use,
        )
        .map_err(|source| NodeError::KvDb {
            path: kv_path,
            source,
        })?;
        Ok::<_, NodeError>((log_db, WriteBuffer::new(Arc::new(kv_db))))
    })
    .await
    .map_err(|e| NodeError::Io {
        what: "open databases".into(),
        source: std::io::Error::other(e),
    })?
}

async fn register(
    control: &dyn ControlPlane,
    config: &NodeConfig,
    address: &str,
) -> Result<NodeId, NodeError> {
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    loop {
        match control
            .register_node(&config.name, address, &config.zone, &config.resp_address)
            .await
        {
            Ok(id) => return Ok(id),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(NodeError::Register(e));
            }
            Err(e) => {
                tracing::debug!(error = %e, "registration failed; retrying");
                tokio::time::sleep(REGISTER_RETRY).await;
            }
        }
    }
}

/// Serves both gRPC services on `listener` until `stop` turns true.
async fn serve(
    listener: TcpListener,
    kv: KvService,
    export: ShardExportServer<ExportService>,
    transport: RaftTransportService<crate::raft_types::ShardRaftConfig>,
    listening: Listening,
    health: HealthServer<impl Health>,
    mut stop: Shutdown,
) {
    let incoming = listening.incoming(listener);
    let (reflection_v1, reflection_v1alpha) = reflection(SERVICES);
    let served = listening
        .server()
        .add_service(kv.into_server())
        .add_service(export)
        .add_service(transport.into_server())
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, async move { stop.recv().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "storage node server failed");
    }
}

/// The gRPC services a node serves, as health checks and reflection name them.
const SERVICES: &[&str] = &[
    "kvdb.v1.KvNode",
    "kvdb.v1.RaftTransport",
    "kvdb.v1.ShardExport",
];

/// How often a starting node looks whether it hosts its shards yet.
const READINESS_POLL: Duration = Duration::from_millis(100);

/// Keeps health `SERVING` while the node hosts a replica of every shard the map gives it,
/// `NOT_SERVING` before (no map yet, replicas still opening) and once it stops.
async fn report_readiness(
    manager: Arc<ReplicaManager>,
    mut health: HealthStatus,
    mut stop: Shutdown,
) {
    loop {
        health.set(manager.hosts_its_shards()).await;
        tokio::select! {
            _ = stop.recv() => break,
            _ = tokio::time::sleep(READINESS_POLL) => {}
        }
    }
    health.set(false).await;
}

/// How many heartbeats apart the replicas' figures are sent: counting keys costs a read of
/// every replica, so not every heartbeat carries them.
const STATS_EVERY: u64 = 10;

async fn heartbeat(
    control: Arc<dyn ControlPlane>,
    manager: Arc<ReplicaManager>,
    id: NodeId,
    every: Duration,
    mut stop: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for beat in 0u64.. {
        tokio::select! {
            _ = stop.recv() => return,
            _ = tick.tick() => {}
        }
        let stats = if beat % STATS_EVERY == 1 {
            replica_stats(&manager).await
        } else {
            Vec::new()
        };
        if let Err(e) = control.heartbeat(id, &stats).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

/// Every open replica's figures; a replica whose storage cannot be read is left out.
async fn replica_stats(manager: &ReplicaManager) -> Vec<ShardStats> {
    let replicas: Vec<_> = manager
        .shards()
        .into_iter()
        .filter_map(|shard| manager.replica(shard))
        .collect();
    let counted = tokio::task::spawn_blocking(move || {
        replicas
            .iter()
            .filter_map(|r| r.stats().ok())
            .collect::<Vec<_>>()
    })
    .await;
    counted.unwrap_or_default()
}
