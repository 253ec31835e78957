//! Connections to storage nodes: one lazily connected channel per address,
//! carrying the [`NodeLink`] call stream that every request to the node
//! shares (or, for a node of this process, the node itself), and a failure cool-down per
//! address.
//!
//! Lookups are lock-free (copy-on-write map behind an atomic pointer);
//! only the rare insertion of a new address clones the map.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use kvdb_core::AddressRewrite;
use kvdb_core::auth::Credentials;
use kvdb_core::call_link::MAX_CLIENT_MESSAGE_BYTES;
use kvdb_core::error::KvError;
use kvdb_core::local_node::LocalNodeLink;
use kvdb_core::proto::v1::kv_node_client::KvNodeClient;

use crate::call_link::NodeLink;

/// Timeout for establishing a connection to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Peer {
    link: NodeLink,
    /// Milliseconds since the pool's epoch until which the node counts as failed.
    failed_until_ms: AtomicU64,
}

/// A pool of node connections shared by all requests of a client.
#[derive(Clone)]
pub struct NodePool {
    peers: Arc<ArcSwap<HashMap<String, Arc<Peer>>>>,
    started: Instant,
    cool_down: Duration,
    /// Applied to an address when its channel is created; the pool is
    /// still keyed by the real address.
    rewrite: Option<AddressRewrite>,
    /// Presented on every call.
    credentials: Credentials,
}

impl NodePool {
    /// A pool that avoids a failed node for `cool_down` when it has a choice.
    #[cfg(test)]
    pub fn new(cool_down: Duration) -> NodePool {
        NodePool::with_rewrite(cool_down, None)
    }

    /// A pool (see `NodePool::new`) dialing `rewrite(address)` instead of a node's
    /// `address`, if a rewrite is given.
    pub fn with_rewrite(cool_down: Duration, rewrite: Option<AddressRewrite>) -> NodePool {
        NodePool {
            peers: Arc::default(),
            started: Instant::now(),
            cool_down,
            rewrite,
            credentials: Credentials::default(),
        }
    }

    /// The pool, presenting `credentials` on every call.
    pub fn with_credentials(mut self, credentials: Credentials) -> NodePool {
        self.credentials = credentials;
        self
    }

    /// The pool, reaching the node `local` (one of this process) without the network.
    pub fn with_local(self, local: Option<LocalNodeLink>) -> NodePool {
        if let Some(local) = local {
            let peer = Arc::new(Peer {
                link: NodeLink::local(local.node),
                failed_until_ms: AtomicU64::new(0),
            });
            self.peers
                .store(Arc::new(HashMap::from([(local.address, peer)])));
        }
        self
    }

    /// The link to `address` (`host:port`), connecting lazily.
    pub fn link(&self, address: &str) -> Result<NodeLink, KvError> {
        if let Some(peer) = self.peers.load().get(address) {
            return Ok(peer.link.clone());
        }
        let dialed = match &self.rewrite {
            Some(rewrite) => rewrite.apply(address),
            None => address.to_owned(),
        };
        let endpoint = self
            .credentials
            .endpoint(&dialed)
            .map_err(|e| KvError::InvalidArgument(format!("node address {address:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        let peer = Arc::new(Peer {
            link: NodeLink::open(
                KvNodeClient::new(self.credentials.on(endpoint.connect_lazy()))
                    .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
            ),
            failed_until_ms: AtomicU64::new(0),
        });
        self.peers.rcu(|peers| {
            let mut peers = HashMap::clone(peers);
            peers
                .entry(address.to_owned())
                .or_insert_with(|| peer.clone());
            peers
        });
        Ok(self.peers.load()[address].link.clone())
    }

    /// Records a transport failure of `address`.
    pub fn mark_failed(&self, address: &str) {
        if let Some(peer) = self.peers.load().get(address) {
            let until = self.now_ms() + self.cool_down.as_millis() as u64;
            peer.failed_until_ms.store(until, Ordering::Relaxed);
        }
    }

    /// Whether `address` failed within its cool-down.
    pub fn is_failed(&self, address: &str) -> bool {
        self.peers
            .load()
            .get(address)
            .is_some_and(|p| p.failed_until_ms.load(Ordering::Relaxed) > self.now_ms())
    }

    /// Number of distinct node addresses with a channel.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.peers.load().len()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reuses_one_channel_per_address() {
        let pool = NodePool::new(Duration::from_secs(1));
        pool.link("127.0.0.1:1").unwrap();
        pool.link("127.0.0.1:1").unwrap();
        pool.link("127.0.0.1:2").unwrap();
        assert_eq!(pool.len(), 2);
    }

    #[tokio::test]
    async fn failure_cools_down() {
        let pool = NodePool::new(Duration::from_millis(50));
        pool.link("127.0.0.1:1").unwrap();
        assert!(!pool.is_failed("127.0.0.1:1"));
        pool.mark_failed("127.0.0.1:1");
        assert!(pool.is_failed("127.0.0.1:1"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.is_failed("127.0.0.1:1") {
            assert!(Instant::now() < deadline, "cool-down never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn bad_address_is_invalid_argument() {
        let pool = NodePool::new(Duration::from_secs(1));
        assert!(matches!(
            pool.link("not a uri \u{0}"),
            Err(KvError::InvalidArgument(_))
        ));
    }

    /// Answers every GET with its key as the value.
    struct EchoNode;

    impl kvdb_core::local_node::LocalNode for EchoNode {
        fn answer(
            &self,
            op: kvdb_core::proto::v1::node_call::Op,
        ) -> kvdb_core::local_node::Answer<'_> {
            use kvdb_core::proto::v1 as pb;
            Box::pin(async move {
                match op {
                    pb::node_call::Op::Get(get) => Ok(pb::reply::Result::Get(pb::GetResponse {
                        found: true,
                        value: get.request.unwrap().key,
                        ..pb::GetResponse::default()
                    })),
                    _ => Err(KvError::Internal("not a get".into())),
                }
            })
        }
    }

    #[tokio::test]
    async fn the_local_node_is_called_in_process_and_others_over_the_network() {
        use kvdb_core::proto::v1 as pb;
        let local = LocalNodeLink {
            address: "127.0.0.1:1".into(),
            node: Arc::new(EchoNode),
        };
        let pool = NodePool::new(Duration::from_secs(1)).with_local(Some(local));
        let get = pb::NodeGetRequest {
            target: None,
            request: Some(pb::GetRequest {
                key: b"key"[..].into(),
                consistency: 0,
                hash_fields: None,
                hash_page: None,
            }),
        };
        // Nothing listens on port 1: only the local node can answer.
        let reply = pool.link("127.0.0.1:1").unwrap().get(get.clone()).await;
        assert_eq!(reply.unwrap().value.as_ref(), b"key");
        let remote = pool.link("127.0.0.1:2").unwrap().get(get).await;
        assert!(matches!(remote, Err(KvError::Unavailable(_))), "{remote:?}");
        assert_eq!(pool.len(), 2);
    }
}
