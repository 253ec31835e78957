//! The process-wide pool of connections to peer processes.
//!
//! Every Raft group on a node replicates to the same handful of peers, so the
//! groups share one HTTP/2 connection per peer address rather than opening
//! one per group: a tonic [`Channel`] multiplexes concurrent calls and
//! reconnects by itself after a failure. Channels connect lazily, so creating
//! a group's network never blocks on a peer that is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::error::TransportError;
use crate::address_rewrite::AddressRewrite;

/// How the pool's connections are set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChannelsConfig {
    /// How long a TCP connect may take before the peer counts as unreachable.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 ping probes a connection, idle or not.
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
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
        }
    }
}

/// One lazily connected [`Channel`] per peer address, shared by every Raft
/// group of the process. Cloning is cheap and clones share the pool.
#[derive(Debug, Clone, Default)]
pub struct PeerChannels {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    config: PeerChannelsConfig,
    channels: Mutex<HashMap<String, Channel>>,
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
    pub fn channel(&self, addr: &str) -> Result<Channel, TransportError> {
        let mut channels = self.lock();
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = self.endpoint(addr)?.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
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
        let endpoint = Endpoint::from_shared(format!("http://{dialed}")).map_err(|source| {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        // The map is never left half-updated, so a panic elsewhere cannot
        // poison its contents.
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
