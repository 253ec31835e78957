//! How KvDB's gRPC servers accept connections.
//!
//! Requests and Raft messages are small and latency-bound: Nagle's algorithm
//! combined with delayed ACKs stalls them for tens of milliseconds. tonic
//! ignores its builder's `tcp_nodelay` for a caller-supplied listener, so
//! every server accepts through this.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// The connection stream of `listener`, with `TCP_NODELAY` on every accepted
/// socket.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
