//! How KvDB's gRPC servers accept connections.
//!
//! Requests and Raft messages are small and latency-bound: Nagle's algorithm
//! combined with delayed ACKs stalls them for tens of milliseconds. tonic
//! ignores its builder's `tcp_nodelay` for a caller-supplied listener, so
//! every server accepts through this.
//!
//! A connection must also send its first bytes (the HTTP/2 preface) within
//! [`HANDSHAKE_TIMEOUT`] (by default) of being accepted, or it is closed: otherwise sockets
//! that never speak would hold a descriptor each for ever, and enough of them
//! lock every client out. Once a connection has spoken, HTTP/2 keep-alive
//! pings ([`Listening::server`]) take over finding dead peers.
//!
//! With TLS ([`ServerTls`]), each accepted socket does its handshake in a task of its own
//! within the same timeout, so a slow or silent client never holds up the next one, and
//! only connections whose handshake succeeded reach the server.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tower::layer::util::{Identity, Stack};

use crate::auth::AuthLayer;
use crate::status::undecodable::UndecodableLayer;
use crate::tls::ServerTls;

/// How long an accepted connection may stay silent before its first byte.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a server pings a connection's peer, and how long it waits for the answer before
/// it closes the connection: a peer that vanished without closing is noticed within a minute.
pub const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(20));

/// How many connections and HTTP/2 streams a server takes, and how long a new connection may
/// stay silent (`--max-connections`, `--max-concurrent-streams`, `--handshake-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is closed as soon as it is accepted. Keep it below
    /// the process's descriptor limit (`ulimit -n`), so that the server always has
    /// descriptors left for its own files and peers.
    pub max_connections: usize,
    /// HTTP/2 streams (calls) open at once on one connection; `None` leaves it to HTTP/2
    /// flow control and the call-stream limits, as every server did before the flag existed.
    pub max_concurrent_streams: Option<u32>,
    /// How long a connection may take to send its first bytes and finish its TLS handshake.
    pub handshake_timeout: Duration,
}

impl ConnectionLimits {
    /// Default [`Self::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_concurrent_streams: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// A server's way in: who may connect and call (TLS, tokens) and how much ([`ConnectionLimits`]).
#[derive(Debug, Clone, Default)]
pub struct Listening {
    /// The token checks (see [`crate::auth`]).
    pub auth: AuthLayer,
    /// TLS, or clear.
    pub tls: Option<Arc<ServerTls>>,
    /// Connection and stream limits.
    pub limits: ConnectionLimits,
}

impl Listening {
    /// A server builder with KvDB's connection settings (keep-alive pings, [`KEEP_ALIVE`],
    /// the stream limit), the authentication layer, and requests tonic cannot decode
    /// answered as bad input ([`UndecodableLayer`]). Serve it [`Self::incoming`].
    pub fn server(
        &self,
    ) -> tonic::transport::Server<Stack<AuthLayer, Stack<UndecodableLayer, Identity>>> {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEP_ALIVE.0))
            .http2_keepalive_timeout(Some(KEEP_ALIVE.1))
            .max_concurrent_streams(self.limits.max_concurrent_streams)
            .layer(UndecodableLayer)
            .layer(self.auth.clone())
    }

    /// The connection stream of `listener`: `TCP_NODELAY` on every accepted socket, at most
    /// [`ConnectionLimits::max_connections`] open, the handshake timeout, and TLS when set.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<Connection>> + Send + 'static {
        let handshake = self.limits.handshake_timeout;
        let open = Arc::new(Semaphore::new(self.limits.max_connections));
        let accepted = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .filter_map(move |accepted| {
                let admitted = accepted.map(|stream| admit(stream, &open, handshake));
                std::future::ready(admitted.transpose())
            });
        match self.tls.clone() {
            None => accepted
                .map(|accepted| accepted.map(Connection::Plain))
                .left_stream(),
            Some(tls) => handshaken(accepted, handshake, tls).right_stream(),
        }
    }
}

/// `stream` with a permit of `open`, or `None` (the socket closed at once) when every permit
/// is taken.
fn admit(
    stream: TcpStream,
    open: &Arc<Semaphore>,
    handshake: Duration,
) -> Option<FirstBytesDeadline> {
    match open.clone().try_acquire_owned() {
        Ok(permit) => Some(FirstBytesDeadline::new(stream, handshake, permit)),
        Err(_) => {
            tracing::warn!(
                peer = ?stream.peer_addr().ok(),
                "connection refused: the server has its maximum of connections open \
                 (--max-connections)"
            );
            None
        }
    }
}

/// The connections of `accepted` whose TLS handshake succeeds within `handshake`; ends when
/// the server drops it.
fn handshaken(
    accepted: impl Stream<Item = io::Result<FirstBytesDeadline>> + Send + 'static,
    handshake: Duration,
    tls: Arc<ServerTls>,
) -> impl Stream<Item = io::Result<Connection>> + Send + 'static {
    let (ready, connections) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut accepted = pin!(accepted);
        loop {
            let next = tokio::select! {
                _ = ready.closed() => return,
                next = accepted.next() => next,
            };
            let stream = match next {
                None => return,
                Some(Err(e)) => {
                    if ready.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(stream)) => stream,
            };
            let acceptor = TlsAcceptor::from(tls.current());
            let ready = ready.clone();
            tokio::spawn(async move {
                let peer = stream.connect_info().remote_addr();
                match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(Connection::Tls(Box::new(tls)))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(?peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(connections)
}

/// An accepted connection, in clear or after its TLS handshake.
#[derive(Debug)]
pub enum Connection {
    /// No TLS.
    Plain(FirstBytesDeadline),
    /// TLS, handshake done.
    Tls(Box<TlsStream<FirstBytesDeadline>>),
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Connection::Plain(stream) => stream.connect_info(),
            Connection::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}

/// Forwards a call to whichever stream a [`Connection`] holds.
macro_rules! either {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Connection::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Connection::Tls($stream) => {
                let $stream = Pin::new(&mut **$stream);
                $call
            }
        }
    };
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(stream) => stream.is_write_vectored(),
            Connection::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_shutdown(cx))
    }
}

/// An accepted connection that fails its reads once its deadline passes with nothing read,
/// which makes the server close it.
#[derive(Debug)]
pub struct FirstBytesDeadline {
    stream: TcpStream,
    /// Pending until the first byte arrives; `None` after.
    deadline: Option<Pin<Box<Sleep>>>,
    /// This connection's place under [`ConnectionLimits::max_connections`].
    _open: OwnedSemaphorePermit,
}

impl FirstBytesDeadline {
    fn new(stream: TcpStream, handshake: Duration, open: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            deadline: Some(Box::pin(tokio::time::sleep(handshake))),
            _open: open,
        }
    }
}

impl Connected for FirstBytesDeadline {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for FirstBytesDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        let Some(deadline) = self.deadline.as_mut() else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > filled => {
                self.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no bytes within the handshake timeout",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for FirstBytesDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tonic::service::Routes;
    use tonic::transport::{Endpoint, Server};

    use super::*;

    const SHORT: Duration = Duration::from_millis(200);

    async fn serve() -> std::net::SocketAddr {
        serve_with(ConnectionLimits {
            handshake_timeout: SHORT,
            ..ConnectionLimits::default()
        })
        .await
    }

    async fn serve_with(limits: ConnectionLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let listening = Listening {
            limits,
            ..Listening::default()
        };
        tokio::spawn(
            Server::builder()
                .add_routes(Routes::default())
                .serve_with_incoming(listening.incoming(listener)),
        );
        address
    }

    /// Whether the server closes `stream` (end of stream or an error) within `within`.
    async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
        let until_closed = async {
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(within, until_closed).await.is_ok()
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_until_one_ends() {
        let address = serve_with(ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        })
        .await;
        let first = TcpStream::connect(address).await.unwrap();
        let mut second = TcpStream::connect(address).await.unwrap();
        let mut third = TcpStream::connect(address).await.unwrap();
        assert!(
            closed(&mut third, Duration::from_secs(5)).await,
            "past the cap"
        );
        assert!(
            !closed(&mut second, Duration::from_millis(300)).await,
            "under the cap"
        );
        drop(first);
        // The first connection's place is freed once the server sees it closed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut next = TcpStream::connect(address).await.unwrap();
            if !closed(&mut next, Duration::from_millis(300)).await {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no place was freed");
        }
    }

    #[tokio::test]
    async fn a_connection_that_never_speaks_is_closed() {
        let address = serve().await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        // The server speaks first (its HTTP/2 settings); the client never does.
        assert!(
            closed(&mut silent, Duration::from_secs(10)).await,
            "the server closes a silent connection"
        );
    }

    #[tokio::test]
    async fn a_connection_that_spoke_stays_open_past_the_timeout() {
        let address = serve().await;
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        // The HTTP/2 handshake has happened; wait past the timeout on the same connection.
        grpc.ready().await.unwrap();
        tokio::time::sleep(SHORT * 3).await;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/none.None/Nothing");
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let answer = grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .unwrap_err();
        assert_eq!(answer.code(), tonic::Code::Unimplemented, "{answer:?}");
    }
}
