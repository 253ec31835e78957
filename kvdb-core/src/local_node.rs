//! A storage node's KV service called from its own process.
//!
//! A node's Redis Cluster port runs its commands over the request executor, as the gateway
//! does, and most of them are for shards the node itself leads. Through the node's own address
//! each would be encoded, framed, sent over loopback, read back and decoded, then its reply the
//! same way, all on the CPU the node needs for Raft. An executor given a [`LocalNodeLink`]
//! hands those operations to the service directly instead; routing, retries and errors are
//! the executor's as for any node.
//!
//! Out of scope: authorization. The caller is the node's own front door, which authenticates
//! its clients itself and would present the cluster's credentials over the network anyway.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::KvError;
use crate::proto::v1 as pb;

/// What a call of the `KvNode.Calls` stream answers: its outcome, or the error its unary RPC
/// would have failed with.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<pb::reply::Result, KvError>> + Send + 'a>>;

/// A node's KV service, callable in process.
pub trait LocalNode: Send + Sync {
    /// Runs `op` as the node runs a call of its `Calls` stream.
    fn answer(&self, op: pb::node_call::Op) -> Answer<'_>;
}

/// The node an executor reaches in process, and the address the shard map lists it under.
#[derive(Clone)]
pub struct LocalNodeLink {
    /// The node's data-plane address as the map lists it (`host:port`).
    pub address: String,
    /// Its KV service.
    pub node: Arc<dyn LocalNode>,
}

impl fmt::Debug for LocalNodeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNodeLink")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}
