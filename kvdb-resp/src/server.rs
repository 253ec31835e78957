//! Serving RESP on a bound listener: one task per connection, all stopped on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kvdb_client::wire::Executor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connection;
use crate::exec::Store;
use crate::options::RespOptions;

/// What every connection of one server shares.
pub struct Shared {
    /// Runs data commands.
    pub(crate) store: Store,
    /// The server's configuration.
    pub(crate) options: RespOptions,
    /// Connections open now (`INFO clients`).
    pub(crate) clients: AtomicUsize,
    /// When serving started (`INFO server`).
    pub(crate) started: std::time::Instant,
    /// The port served (`INFO server`).
    pub(crate) port: u16,
    next_id: AtomicU64,
}

/// Serves the Redis protocol on `listener`, running commands on `executor`, until `shutdown`
/// resolves; then asks every connection to finish the requests it has read, and waits for it.
pub async fn serve(
    listener: TcpListener,
    executor: Executor,
    options: RespOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let shared = Arc::new(Shared {
        store: Store::new(executor, options.allow_flush, options.cluster_node),
        options,
        clients: AtomicUsize::new(0),
        started: std::time::Instant::now(),
        port: listener.local_addr().map_or(0, |a| a.port()),
        next_id: AtomicU64::new(1),
    });
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, id, "RESP connection");
                    connections.spawn(connection::run(stream, shared.clone(), id, closed.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, typically: let connections close first.
                    tracing::warn!(error = %e, "RESP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}
