//! A TCP fault proxy for loopback links between KvDB processes.
//!
//! A [`FaultProxy`] listens on `127.0.0.1:0` and forwards each accepted
//! connection to one upstream address. Point a client (or a peer node) at
//! [`FaultProxy::addr`] instead of the real server and switch the link's
//! [`Fault`] at run time; a change applies to open connections at once.
//!
//! Held data is not discarded: under [`Fault::Blackhole`] or a one-way cut a
//! direction stops forwarding with at most one chunk in hand, so the sender's
//! socket buffers fill up and its writes stall, as across a real partition
//! where TCP keeps retransmitting. When the link heals the stream resumes
//! intact, or the endpoints have timed out and reconnect.
//!
//! [`Fault::Delay`] behaves like a long link rather than a slow one: every chunk leaves one
//! delay after it arrived, however many are in flight, so latency grows and bandwidth does not
//! shrink.
//!
//! Out of scope: packet-level faults (reordering, corruption, partial loss),
//! which TCP hides from KvDB anyway, and refusing the TCP handshake itself: a
//! blackholed proxy still accepts connections, which then hang.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Which way bytes travel through a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the connecting client to the upstream server (requests).
    ToUpstream,
    /// From the upstream server back to the client (responses).
    ToClient,
}

/// What a proxied link does to its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward everything.
    #[default]
    Pass,
    /// Accept and read, forward nothing in either direction: connections hang.
    Blackhole,
    /// Reset open connections, and reset new ones right after accepting them.
    Drop,
    /// Hold every chunk this long before forwarding it, in each direction.
    Delay(Duration),
    /// Stop forwarding in this direction only; the other still flows.
    CutOneWay(Direction),
}

/// What one direction of a connection does with its next chunk.
enum Gate {
    Forward,
    Delay(Duration),
    Hold,
}

impl Fault {
    fn gate(self, direction: Direction) -> Gate {
        match self {
            Fault::Pass => Gate::Forward,
            Fault::Delay(by) => Gate::Delay(by),
            Fault::CutOneWay(cut) if cut != direction => Gate::Forward,
            // Drop is enforced by the connection task, which resets both ends.
            Fault::Blackhole | Fault::Drop | Fault::CutOneWay(_) => Gate::Hold,
        }
    }
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Binding the loopback listener failed.
    #[error("bind a proxy listener for upstream {upstream}: {source}")]
    Bind {
        /// The upstream the proxy was meant for.
        upstream: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Bytes read per chunk.
const CHUNK_SIZE: usize = 16 * 1024;

/// A running proxy for one link. Stops (closing every connection) on
/// [`FaultProxy::stop`] or when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    open: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on `127.0.0.1:0`, passing traffic.
    /// Must be called within a Tokio runtime.
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy, ProxyError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|source| ProxyError::Bind { upstream, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { upstream, source })?;
        let (fault, watcher) = watch::channel(Fault::Pass);
        let open = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(accept_loop(listener, upstream, watcher, open.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            fault,
            open,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Switches the link's fault, for open and future connections.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// The link's current fault.
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.accept.abort();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until aborted; aborting drops the [`JoinSet`], which
/// aborts (and so closes) every connection.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    fault: watch::Receiver<Fault>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) if *fault.borrow() == Fault::Drop => reset(&client),
                Ok((client, _)) => {
                    let guard = OpenGuard::new(open.clone());
                    connections.spawn(serve(client, upstream, fault.clone(), guard));
                }
                Err(error) => {
                    tracing::warn!(%error, %upstream, "fault proxy: accept failed");
                    tokio::task::yield_now().await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Counts a connection as open while alive.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Forwards one connection until both directions end, either side fails, or
/// the link switches to [`Fault::Drop`].
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    _open: OpenGuard,
) {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%error, %upstream, "fault proxy: upstream unreachable");
            reset(&client);
            return;
        }
    };
    // Latency here is the fault's to add, not Nagle's.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let (up, down) = (fault.clone(), fault.clone());
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let forward = async {
        tokio::try_join!(
            pump(client_read, server_write, Direction::ToUpstream, up),
            pump(server_read, client_write, Direction::ToClient, down),
        )
    };
    let clean = tokio::select! {
        result = forward => result.is_ok(),
        _ = fault.wait_for(|f| *f == Fault::Drop) => false,
    };
    if !clean {
        // Pass a failure on as a reset, like a broken network path would.
        reset(&client);
        reset(&server);
    }
}

/// Chunks a direction holds in flight under [`Fault::Delay`]: enough for a busy link's
/// bandwidth-delay product, bounded so a stalled reader pushes back on the sender.
const IN_FLIGHT: usize = 1024;

/// Copies one direction, chunk by chunk, through the fault gate. End of
/// stream is forwarded (as a write shutdown) through the gate too.
///
/// Reading and writing are separate loops joined by a queue of chunks stamped with when they
/// may leave, so a delay adds latency without cutting throughput, as on a long link: chunks
/// read 1 ms apart leave 1 ms apart, each `by` after it arrived.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    mut fault: watch::Receiver<Fault>,
) -> io::Result<()> {
    let (queue, mut queued) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let read = async move {
        let mut buf = vec![0; CHUNK_SIZE];
        loop {
            let n = from.read(&mut buf).await?;
            let due = pass_gate(&mut fault, direction).await;
            if queue.send((due, buf[..n].to_vec())).await.is_err() || n == 0 {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() {
                return to.shutdown().await;
            }
            to.write_all(&chunk).await?;
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Waits until the current fault lets a chunk through in `direction`, and says when the
/// chunk may leave.
async fn pass_gate(fault: &mut watch::Receiver<Fault>, direction: Direction) -> Instant {
    loop {
        let current = *fault.borrow_and_update();
        match current.gate(direction) {
            Gate::Forward => return Instant::now(),
            Gate::Delay(by) => return Instant::now() + by,
            Gate::Hold => {
                if fault.changed().await.is_err() {
                    // The proxy is gone; the connection is about to be aborted.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Makes dropping `stream` send a TCP reset instead of a graceful close.
fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "fault proxy: cannot arm a reset");
    }
}

#[cfg(test)]
mod tests;
