//! Server units shared by the `kvdb` binary, [`crate::cluster`] and tests.

use kvdb_core::tls::{Protocol, ServerTls};
use std::net::SocketAddr;

use kvdb_coordinator::admin::{self, AdminConfig, AdminConfigError};
use kvdb_coordinator::{Coordinator, CoordinatorConfig, CoordinatorError};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound, or its address read.
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        /// The server it was for (`coordinator`, `Admin API`, ...).
        what: String,
        /// The address asked for; `0.0.0.0:0` when reading a bound listener's address failed.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The coordinator did not start, or did not create the shards at bootstrap.
    #[error("coordinator: {0}")]
    Coordinator(#[from] CoordinatorError),
    /// The Admin API configuration is invalid.
    #[error("Admin API: {0}")]
    Admin(#[from] AdminConfigError),
    /// The TLS files cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] kvdb_core::tls::TlsError),
    /// A storage node did not start.
    #[error("{name}: {source}")]
    Node {
        /// The node's name (`node-N`).
        name: String,
        /// Why it did not start.
        source: kvdb_node::node::NodeError,
    },
    /// The gateway refused its coordinator addresses or map-cache settings.
    #[error("gateway: {0}")]
    Gateway(kvdb_core::error::KvError),
    /// The cluster did not come up before the start-up timeout; says what it waited for.
    #[error("{0}")]
    Bootstrap(String),
}

/// Binds `addr` for the server named `what`.
pub async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what: what.to_owned(),
            addr,
            source,
        })
}

/// Holds `addr`, bound but not listening, while its server is down: connections to it are
/// refused, as by a crashed server, but the kernel gives the port to no listener on port 0 and
/// to no outgoing connection of the machine before the server is restarted on it with
/// [`rebind`]. `None` when the port cannot be held (say, still listened on).
pub fn reserve(addr: SocketAddr) -> Option<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .ok()?;
    socket.set_reuseaddr(true).ok()?;
    socket.bind(addr).ok()?;
    Some(socket)
}

/// Listens on `addr` again: on its `reserved` socket when there is one (nothing can have taken
/// the port meanwhile), else as [`bind`] does.
pub async fn rebind(
    what: &str,
    addr: SocketAddr,
    reserved: Option<TcpSocket>,
) -> Result<TcpListener, StartError> {
    match reserved {
        Some(socket) => socket
            .listen(LISTEN_BACKLOG)
            .map_err(|source| StartError::Bind {
                what: what.to_owned(),
                addr,
                source,
            }),
        None => bind(what, addr).await,
    }
}

/// The backlog of a listener made from a reserved socket (what `TcpListener::bind` uses).
const LISTEN_BACKLOG: u32 = 1024;

/// The address `listener` is bound to.
pub fn local_addr(what: &str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        what: what.to_owned(),
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Serves `registry` at `http://ADDR/metrics` when `addr` is set, until the task is aborted.
pub async fn serve_metrics(
    addr: Option<SocketAddr>,
    registry: std::sync::Arc<kvdb_core::metrics::Registry>,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = bind("metrics endpoint", addr).await?;
    let served = kvdb_core::metrics::serve(listener, registry, std::future::pending());
    Ok(Some(tokio::spawn(served)))
}

/// A coordinator serving gRPC and the Admin API on bound listeners.
pub struct RunningCoordinator {
    /// The coordinator itself (map, admin operations); shut down through [`Self::shutdown`].
    pub coordinator: Coordinator,
    grpc: JoinHandle<()>,
    admin: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningCoordinator {
    /// Starts the coordinator and its servers.
    pub async fn start(
        mut config: CoordinatorConfig,
        grpc: TcpListener,
        admin_listener: TcpListener,
        admin_config: AdminConfig,
    ) -> Result<RunningCoordinator, StartError> {
        admin_config.validate()?;
        let admin_tls = config
            .auth
            .tls
            .clone()
            .map(|files| ServerTls::load_for(files, Protocol::Http1))
            .transpose()?;
        config.listen = local_addr("coordinator", &grpc)?;
        config.admin_listen = Some(local_addr("Admin API", &admin_listener)?);
        let coordinator = Coordinator::start(config).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let grpc = tokio::spawn({
            let c = coordinator.clone();
            let stopped = until_stopped(stopped.clone());
            async move {
                if let Err(e) = kvdb_coordinator::serve(c, grpc, stopped).await {
                    tracing::error!(error = %e, "coordinator gRPC server failed");
                }
            }
        });
        let router = admin::router(coordinator.clone(), admin_config);
        let admin = tokio::spawn({
            let stopped = until_stopped(stopped);
            async move {
                if let Err(e) = admin::serve(admin_listener, router, admin_tls, stopped).await {
                    tracing::error!(error = %e, "Admin API server failed");
                }
            }
        });
        Ok(RunningCoordinator {
            coordinator,
            grpc,
            admin,
            stop,
        })
    }

    /// Stops serving, then stops the coordinator.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.grpc.await;
        let _ = self.admin.await;
        self.coordinator.shutdown().await;
    }
}

/// A Redis protocol listener being served: a gateway's, or a storage node's in cluster mode.
pub struct RunningResp {
    /// The bound address.
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningResp {
    /// Serves RESP on `listener`, running commands on `executor`.
    pub fn start(
        listener: TcpListener,
        executor: kvdb_client::wire::Executor,
        options: kvdb_resp::RespOptions,
    ) -> Result<RunningResp, StartError> {
        let address = local_addr("Redis protocol listener", &listener)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kvdb_resp::serve(listener, executor, options, async {
            let _ = stopped.await;
        }));
        Ok(RunningResp {
            address,
            stop,
            task,
        })
    }

    /// Serves Redis Cluster mode for `node` on `listener`: the node's own shard map routes
    /// and redirects, and its commands go to shard leaders: to itself, mostly, in process; to
    /// others over gRPC with `credentials`.
    pub fn for_node(
        node: &kvdb_node::node::Node,
        listener: TcpListener,
        credentials: kvdb_core::auth::Credentials,
        options: kvdb_resp::RespOptions,
    ) -> Result<RunningResp, StartError> {
        let config = kvdb_client::ExecutorConfig {
            credentials,
            local_node: Some(node.local_kv()),
            ..kvdb_client::ExecutorConfig::default()
        };
        let executor = kvdb_client::wire::Executor::new(node.manager().cache().clone(), config);
        let options = kvdb_resp::RespOptions {
            cluster_node: Some(node.id()),
            ..options
        };
        RunningResp::start(listener, executor, options)
    }

    /// Stops taking connections, lets open ones finish what they read, and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reserved_port_refuses_connections_until_it_listens_again() {
        let first = bind("server", SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = local_addr("server", &first).unwrap();
        assert!(reserve(addr).is_none(), "a listening port is not held");
        drop(first);
        let reserved = reserve(addr).expect("the freed port can be held");
        // Held but not listening: refused, as by a crashed server.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        let again = rebind("server", addr, Some(reserved)).await.unwrap();
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), again.accept());
        connected.unwrap();
        accepted.unwrap();
    }
}
