//! The Admin API's connections over TLS: those of [`kvdb_core::incoming`], so that the HTTP
//! server shares the gRPC servers' handshake timeout and certificate reloading, and a slow
//! handshake never holds up the next connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kvdb_core::incoming::{Connection, Listening};
#[cfg(doc)]
use kvdb_core::tls::Protocol;
use kvdb_core::tls::ServerTls;
use tokio::net::TcpListener;
use tonic::transport::server::Connected;

/// Pause after an accept error (e.g. no descriptor left), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// An axum listener yielding connections whose TLS handshake succeeded.
pub(super) struct TlsListener {
    connections: Pin<Box<dyn Stream<Item = io::Result<Connection>> + Send>>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` with `tls`, loaded for [`Protocol::Http1`].
    pub(super) fn new(listener: TcpListener, tls: Arc<ServerTls>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        Ok(TlsListener {
            connections: Box::pin(
                Listening {
                    tls: Some(tls),
                    ..Listening::default()
                }
                .incoming(listener),
            ),
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            match self.connections.next().await {
                Some(Ok(connection)) => {
                    let peer = connection.connect_info().remote_addr();
                    return (connection, peer.unwrap_or(self.local));
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "Admin API accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                // The accept loop ends only with the listener, which this owns.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
