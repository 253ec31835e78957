//! The process-wide pool of connections to peer processes.
//!
//! Every Raft group on a node replicates to the same handful of peers, so the
//! groups share one HTTP/2 connection per peer address rather than opening
//! one per group: a tonic [`Channel`] multiplexes concurrent calls and
//! reconnects by itself after a failure. Channels connect lazily, so creating
//! a group's network never blocks on a peer that is down. Over each channel
//! runs one AppendEntries call stream ([`AppendLink`]) that all groups share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Endpoint;

use crate::auth::{AuthChannel, Credentials};
use tonic::{Status, Streaming};

use super::MAX_MESSAGE_SIZE;
use super::error::TransportError;
use crate::address_rewrite::AddressRewrite;
use crate::call_link::{CallLink, CallService};
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::proto::v1::{RaftCall, RaftCallReplies, RaftCallReply, RaftCalls, RaftRequest};

/// How the pool's connections are set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChannelsConfig {
    /// How long a TCP connect may take before the peer counts as unreachable.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 ping probes a connection, idle or not.
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// What this process presents to its peers: the cluster token.
    pub credentials: Credentials,
}

impl PeerChannelsConfig {
    /// Default for [`connect_timeout`](Self::connect_timeout).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default for [`keep_alive_interval`](Self::keep_alive_interval).
    pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
    /// Default for [`keep_alive_timeout`](Self::keep_alive_timeout).
    pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for PeerChannelsConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            keep_alive_interval: Self::DEFAULT_KEEP_ALIVE_INTERVAL,
            keep_alive_timeout: Self::DEFAULT_KEEP_ALIVE_TIMEOUT,
            credentials: Credentials::default(),
        }
    }
}

/// One lazily connected [`tonic::transport::Channel`] per peer address, shared by every Raft
/// group of the process. Cloning is cheap and clones share the pool.
#[derive(Debug, Clone, Default)]
pub struct PeerChannels {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    config: PeerChannelsConfig,
    channels: Mutex<HashMap<String, Peer>>,
    /// Applied to a peer's address when its channel is created (tests
    /// route links through fault proxies); the key stays the real address.
    rewrite: Option<AddressRewrite>,
}

impl PeerChannels {
    /// An empty pool whose connections follow `config`.
    pub fn new(config: PeerChannelsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::default(),
                rewrite: None,
            }),
        }
    }

    /// An empty pool whose connections follow `config` and dial
    /// `rewrite(addr)` instead of a peer's `addr`, if a rewrite is given.
    pub fn with_rewrite(config: PeerChannelsConfig, rewrite: Option<AddressRewrite>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::default(),
                rewrite,
            }),
        }
    }

    /// The channel to `addr` (`host:port`), created on first use. No I/O
    /// happens here: the channel connects when the first call is made. Must
    /// run inside a Tokio runtime, which drives the channel.
    pub fn channel(&self, addr: &str) -> Result<AuthChannel, TransportError> {
        Ok(self.peer(addr)?.channel)
    }

    /// The channel to `addr` and the AppendEntries stream over it, created on
    /// first use like [`PeerChannels::channel`].
    pub fn peer(&self, addr: &str) -> Result<Peer, TransportError> {
        let mut channels = self.lock();
        if let Some(peer) = channels.get(addr) {
            return Ok(peer.clone());
        }
        let channel = self
            .inner
            .config
            .credentials
            .on(self.endpoint(addr)?.connect_lazy());
        let peer = Peer {
            link: CallLink::open(AppendStream(client(channel.clone()))),
            channel,
            health: Arc::new(PeerHealth::new(addr)),
        };
        channels.insert(addr.to_owned(), peer.clone());
        Ok(peer)
    }

    /// Forgets the channel to `addr`, closing it once no group holds a clone.
    /// Returns whether there was one.
    pub fn remove(&self, addr: &str) -> bool {
        self.lock().remove(addr).is_some()
    }

    /// The number of peer addresses with a channel.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the pool holds no channel.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn endpoint(&self, addr: &str) -> Result<Endpoint, TransportError> {
        let config = &self.inner.config;
        let dialed = match &self.inner.rewrite {
            Some(rewrite) => rewrite.apply(addr),
            None => addr.to_owned(),
        };
        let endpoint = config.credentials.endpoint(&dialed).map_err(|source| {
            TransportError::InvalidAddress {
                addr: addr.to_owned(),
                source,
            }
        })?;
        Ok(endpoint
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.keep_alive_interval)
            .keep_alive_timeout(config.keep_alive_timeout)
            .keep_alive_while_idle(true))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        // The map is never left half-updated, so a panic elsewhere cannot
        // poison its contents.
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection to one peer process.
#[derive(Debug, Clone)]
pub struct Peer {
    /// For unary calls: votes, snapshots and large AppendEntries.
    pub channel: AuthChannel,
    /// The AppendEntries stream every group shares.
    pub link: AppendLink,
    /// Whether calls reach the peer, shared by every group.
    pub health: Arc<PeerHealth>,
}

/// How long a peer may fail every call before it is reported unreachable: longer than a
/// restart of its process or a start of the cluster, where peers come up one by one.
pub const PEER_DOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether a peer process answers, as the calls of all groups see it: the one place that
/// tells an operator a peer is down (once, after [`PEER_DOWN_GRACE`]) and back. openraft's own
/// reports of each failed call stay at debug level: with hundreds of groups they would be
/// hundreds of lines a second about the same fact.
#[derive(Debug)]
pub struct PeerHealth {
    addr: String,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    /// Since when every call failed; `None` while calls get through.
    failing_since: Option<std::time::Instant>,
    /// Whether the outage was reported.
    reported: bool,
}

impl PeerHealth {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            state: Mutex::default(),
        }
    }

    /// A call got an answer from the peer's process (any answer: a group it does not host
    /// yet is still a live peer).
    pub fn reached(&self) {
        let mut state = self.lock();
        if let Some(since) = state.failing_since.take()
            && std::mem::take(&mut state.reported)
        {
            tracing::info!(
                peer = %self.addr,
                after_s = since.elapsed().as_secs(),
                "peer reachable again"
            );
        }
    }

    /// A call could not reach the peer's process.
    pub fn unreachable(&self, error: &TransportError) {
        let mut state = self.lock();
        let since = *state
            .failing_since
            .get_or_insert_with(std::time::Instant::now);
        if !state.reported && since.elapsed() >= PEER_DOWN_GRACE {
            state.reported = true;
            tracing::warn!(
                peer = %self.addr,
                for_s = since.elapsed().as_secs(),
                %error,
                "cannot reach peer: shards with replicas there replicate and elect without it \
                 until it is back (is the node down, or cut off from this one?)"
            );
        }
    }

    /// Whether the outage is reported (the peer failed for longer than the grace).
    pub fn reported_down(&self) -> bool {
        self.lock().reported
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The AppendEntries call stream to one peer.
pub type AppendLink = CallLink<AppendStream>;

/// The transport's client with its message size limits.
pub(super) fn client(channel: AuthChannel) -> RaftTransportClient<AuthChannel> {
    RaftTransportClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

/// `RaftTransport.AppendEntriesStream` as a call service.
#[derive(Debug, Clone)]
pub struct AppendStream(RaftTransportClient<AuthChannel>);

impl CallService for AppendStream {
    type Call = RaftRequest;
    type Calls = RaftCalls;
    type Reply = RaftCallReply;
    type Replies = RaftCallReplies;

    fn message(calls: Vec<(u64, RaftRequest)>) -> RaftCalls {
        let calls = calls
            .into_iter()
            .map(|(id, request)| RaftCall {
                id,
                request: Some(request),
            })
            .collect();
        RaftCalls { calls }
    }

    fn size(call: &RaftRequest) -> usize {
        prost::Message::encoded_len(call)
    }

    fn replies(message: RaftCallReplies) -> impl Iterator<Item = (u64, RaftCallReply)> {
        message.replies.into_iter().map(|reply| (reply.id, reply))
    }

    async fn open(
        &mut self,
        calls: UnboundedReceiverStream<RaftCalls>,
    ) -> Result<Streaming<RaftCallReplies>, Status> {
        Ok(self.0.append_entries_stream(calls).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> TransportError {
        TransportError::Rpc {
            group: 1,
            addr: "127.0.0.1:1".into(),
            status: Status::unavailable("tcp connect error"),
        }
    }

    #[test]
    fn a_peer_is_reported_down_only_after_the_grace_and_up_once_it_answers() {
        let health = PeerHealth::new("127.0.0.1:1");
        health.unreachable(&refused());
        assert!(
            !health.reported_down(),
            "a first failure is within the grace"
        );
        health.lock().failing_since =
            Some(std::time::Instant::now() - PEER_DOWN_GRACE - Duration::from_millis(1));
        health.unreachable(&refused());
        assert!(health.reported_down());
        health.reached();
        assert!(!health.reported_down());
        health.unreachable(&refused());
        assert!(!health.reported_down(), "a new outage starts a new grace");
    }
}
