//! How a RESP server is configured: limits, idle timeout and tokens, with named defaults.

use std::time::Duration;

use kvdb_core::auth::Tokens;

/// A RESP server's configuration.
#[derive(Debug, Clone)]
pub struct RespOptions {
    /// Longest bulk string (key or value) a request may carry. Redis allows 512 MB; KvDB's
    /// default is the most a node can ever be configured to store, since anything longer
    /// would only be refused after being buffered.
    pub max_bulk_len: usize,
    /// Most arguments in one request.
    pub max_array_len: usize,
    /// Most unanswered bytes a connection may send before authenticating (when tokens are
    /// required); past it the connection is closed.
    pub unauthenticated_buffer: usize,
    /// Closes a connection silent this long; zero keeps idle connections open.
    pub idle_timeout: Duration,
    /// Client tokens `AUTH` accepts, each with its role; empty: no `AUTH` needed.
    pub tokens: Tokens,
    /// Whether `FLUSHDB` and `FLUSHALL` may delete every key; refused when off (the default),
    /// since one mistyped command would empty the cluster.
    pub allow_flush: bool,
    /// Serve Redis Cluster mode as this storage node: keys of shards it does not lead are
    /// redirected (`MOVED`), and `CLUSTER` describes the shard map. `None`: standalone mode,
    /// as a gateway serves (every key answered, `CLUSTER` refused).
    pub cluster_node: Option<kvdb_core::NodeId>,
}

impl RespOptions {
    /// Default [`Self::max_bulk_len`]: the node's largest key plus value.
    pub const DEFAULT_MAX_BULK_LEN: usize = kvdb_core::call_link::MAX_KEY_AND_VALUE_BYTES;
    /// Default [`Self::max_array_len`].
    pub const DEFAULT_MAX_ARRAY_LEN: usize = 1024 * 1024;
    /// Default [`Self::unauthenticated_buffer`].
    pub const DEFAULT_UNAUTHENTICATED_BUFFER: usize = 16 * 1024;
}

impl Default for RespOptions {
    fn default() -> Self {
        RespOptions {
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
            max_array_len: Self::DEFAULT_MAX_ARRAY_LEN,
            unauthenticated_buffer: Self::DEFAULT_UNAUTHENTICATED_BUFFER,
            idle_timeout: Duration::ZERO,
            tokens: Tokens::default(),
            allow_flush: false,
            cluster_node: None,
        }
    }
}
