//! [`ChaosCluster`]: an in-process KvDB cluster (a [`LocalCluster`]) whose
//! every data link runs through a kvdb-testkit [`FaultProxy`].
//!
//! The cluster's listeners are bound first ([`LocalCluster::bind`]); then a
//! proxy is put on every link and each node's configuration hook points it at
//! its own proxies. Node B reaches node A through the proxy of link
//! `Node(B) -> Node(A)` (an [`AddressRewrite`] in B's `NodeConfig`), while
//! every node keeps advertising its real address. Smart clients share the
//! links `Clients -> Node(n)`, the gateway has `Gateway -> Node(n)`. Links to
//! the coordinator are not proxied.
//!
//! Out of scope: multi-member coordinator groups and processes (see
//! `process.rs` for real signals).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::workload::DEFAULT_KEYS;
use kvdb::cluster::{ClusterConfig, LocalCluster, NodeHook};
use kvdb::coordinator::Coordinator;
use kvdb::core::auth::{AuthConfig, Credentials};
use kvdb::core::tls::ClientTls;
use kvdb::core::{AddressRewrite, NodeId, ShardId, ShardMap};
use kvdb_client::{Client, ExecutorConfig, GatewayClient};
use kvdb_node::config::DEFAULT_SLOW_LEADER;
use kvdb_node::planted::PlantedBug;
use kvdb_node::slow_leader::SlowLeaderPolicy;
use kvdb_testkit::{Fault, FaultProxy, Partition};
use tempfile::TempDir;

/// One end of a proxied link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Storage node `i` (0-based).
    Node(usize),
    /// The smart clients of the workload.
    Clients,
    /// The gateway.
    Gateway,
}

/// How to build a cluster.
#[derive(Debug, Clone, Copy)]
pub struct ChaosOptions {
    /// Storage nodes.
    pub nodes: usize,
    /// Shards, all at replication factor 3.
    pub shards: u32,
    /// A planted bug every node runs with.
    pub bug: Option<PlantedBug>,
    /// Every node's slow-leader policy (see `kvdb_node::slow_leader`); the nodes' default.
    pub slow_leader: Option<SlowLeaderPolicy>,
    /// Keys the workload writes and reads (spread over the shards by slot).
    pub keys: usize,
    /// Whether the coordinator's scheduler runs; schedules that move
    /// replicas by hand turn it off so that it does not move them again.
    pub scheduler: bool,
    /// Nodes declared dead within 2 s and their replicas replaced 1 s later
    /// (rather than the defaults' 6 s and 30 s), so repairs happen within a
    /// fault cycle.
    pub fast_repair: bool,
    /// The scheduler splits shards that serve more than [`AUTO_SPLIT_RATE`] requests a
    /// second, from figures the nodes report every second.
    pub auto_split: bool,
    /// Every server requires tokens (see `kvdb_core::auth`); the cluster runs on its cluster
    /// token and the workload's clients present a read-write client token.
    pub tokens: bool,
    /// Every server speaks mutual TLS, with a throwaway CA, and so do the workload's clients.
    pub tls: bool,
    /// How long a shard must be idle before it quiesces (see `kvdb_core::raft::quiesce`);
    /// the nodes' default unless a schedule wants shards to go quiet between faults.
    pub quiesce_after: Option<Duration>,
    /// Logical clients speaking Redis to the gateway's RESP port (see `chaos::resp`); the
    /// gateway serves one when this is not 0. Not with `tokens` or `tls`.
    pub resp_clients: usize,
    /// Whether the workload runs its smart and gateway clients; off, only the Redis clients
    /// run (a control that their checks catch bugs alone).
    pub grpc_clients: bool,
    /// Replicas snapshot and purge their logs every [`SMALL_LOG_BYTES`] (on by default), so
    /// that faults land on groups that compact.
    pub small_logs: bool,
    /// Replicas keep only [`SHORT_LOG_TAIL`] entries behind a snapshot, so that a follower
    /// back from a crash catches up from a snapshot rather than the log.
    pub short_log_tail: bool,
}

/// With `small_logs`: the log growth that makes a replica snapshot (see
/// `kvdb_node::log_compaction`), where the nodes' default waits for 2 MiB.
pub const SMALL_LOG_BYTES: u64 = 16 * 1024;
/// With `short_log_tail`: log entries a replica keeps behind a snapshot (default 1,000).
pub const SHORT_LOG_TAIL: u64 = 50;

/// The cluster token of chaos runs with `tokens`.
const CHAOS_CLUSTER_TOKEN: &str = "chaos-cluster";
/// The workload's token in chaos runs with `tokens`.
const CHAOS_CLIENT_TOKEN: &str = "chaos-writer";

/// Requests per second above which a shard is split when `auto_split` is on: a few times
/// below what the workload sends to each of a handful of shards.
pub const AUTO_SPLIT_RATE: f64 = 30.0;

/// The coordinator tuning of `auto_split`.
fn auto_split(config: &mut kvdb::coordinator::CoordinatorConfig) {
    config.scheduler.interval = Duration::from_millis(200);
    config.scheduler.limits.split_rate = Some(AUTO_SPLIT_RATE);
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            nodes: 3,
            shards: 4,
            bug: None,
            slow_leader: Some(DEFAULT_SLOW_LEADER),
            keys: DEFAULT_KEYS,
            scheduler: true,
            fast_repair: false,
            auto_split: false,
            tokens: false,
            tls: false,
            quiesce_after: Some(kvdb_core::raft::quiesce::DEFAULT_QUIESCE_IDLE),
            resp_clients: 0,
            grpc_clients: true,
            small_logs: true,
            short_log_tail: false,
        }
    }
}

/// Bound on each client call during the workload: short, so calls into a
/// partition end as unknown quickly rather than stalling a client.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A running cluster with proxied links.
pub struct ChaosCluster {
    cluster: LocalCluster,
    /// Every proxied link, by endpoints.
    pub partition: Partition<Endpoint>,
    /// Where each endpoint dials each node: through its proxies.
    rewrites: Rewrites,
    /// What the workload's clients present.
    credentials: Credentials,
    /// The cluster's data; removed on drop.
    _dir: TempDir,
}

impl ChaosCluster {
    /// Starts coordinator, nodes, proxies and gateway; returns once every
    /// shard has elected a leader.
    pub async fn start(options: ChaosOptions) -> ChaosCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = ClusterConfig::ephemeral(dir.path(), options.nodes);
        config.shards = options.shards;
        config.replication_factor = 3;
        if options.resp_clients > 0 {
            assert!(
                !options.tokens && !options.tls,
                "the chaos RESP clients neither AUTH nor speak TLS"
            );
            config.resp = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let mut bound = LocalCluster::bind(config).await.expect("cluster binds");
        let partition = proxy_links(bound.node_addresses()).await;
        let rewrites = Rewrites::new(bound.node_addresses(), &partition);
        let config = bound.config_mut();
        let nodes = rewrites.clone();
        config.tune_node = NodeHook::new(move |i, node| {
            node.request_timeout = CALL_TIMEOUT;
            node.peer_address_rewrite = Some(nodes.from(Endpoint::Node(i)));
            node.planted_bug = options.bug;
            node.slow_leader = options.slow_leader;
            node.quiesce_after = options.quiesce_after;
            if options.small_logs {
                node.snapshot_log_bytes = SMALL_LOG_BYTES;
            }
            if options.short_log_tail {
                node.logs_kept_after_snapshot = SHORT_LOG_TAIL;
            }
            if options.auto_split {
                // Shard figures ride every tenth heartbeat: one a second.
                node.coordinator_heartbeat = Duration::from_millis(100);
            }
        });
        config.gateway_executor = rewrites.executor_config(Endpoint::Gateway);
        if options.tokens {
            config.auth = AuthConfig {
                cluster_token: Some(CHAOS_CLUSTER_TOKEN.to_owned()),
                client_tokens: vec![format!("read-write={CHAOS_CLIENT_TOKEN}")],
                tls: None,
            };
        }
        let client_token = options.tokens.then_some(CHAOS_CLIENT_TOKEN);
        let mut client_tls = None;
        if options.tls {
            let files = kvdb::core::tls::write_throwaway(&dir.path().join("tls"), &["127.0.0.1"])
                .expect("throwaway certificates");
            client_tls = Some(ClientTls::for_server(&files).expect("client TLS"));
            config.auth.tls = Some(files);
        }
        if options.auto_split {
            config.tune_coordinator = auto_split;
        }
        if options.fast_repair {
            config.tune_coordinator = kvdb::cluster::fast_repair;
        }
        let cluster = bound.start().await.expect("cluster starts");
        if !options.scheduler {
            cluster
                .coordinator()
                .set_scheduler_paused(true)
                .await
                .expect("scheduler paused");
        }
        ChaosCluster {
            cluster,
            partition,
            rewrites,
            credentials: Credentials::bearer(client_token)
                .expect("a valid token")
                .with_tls(client_tls),
            _dir: dir,
        }
    }

    /// A smart client whose node links go through the `Clients` proxies.
    pub async fn client(&self) -> Client {
        self.client_with_timeout(CALL_TIMEOUT).await
    }

    /// A smart client for a targeted scenario's own set-up writes and reads: each call may take
    /// up to [`super::DEADLINE`], retries included, because the scenario asserts that they
    /// succeed, not how fast (a loaded machine can stall one fsync past [`CALL_TIMEOUT`]).
    pub async fn patient_client(&self) -> Client {
        self.client_with_timeout(super::DEADLINE).await
    }

    /// A smart client whose calls give up after `timeout`, retries included.
    async fn client_with_timeout(&self, timeout: Duration) -> Client {
        let config = ExecutorConfig {
            credentials: self.credentials.clone(),
            default_timeout: timeout,
            ..self.rewrites.executor_config(Endpoint::Clients)
        };
        Client::connect_with(&[self.cluster.coordinator_address()], config)
            .await
            .expect("smart client connects")
    }

    /// A client of the gateway.
    pub fn gateway_client(&self) -> GatewayClient {
        let address = self.cluster.gateway_address().expect("a gateway runs");
        GatewayClient::connect_with(&address.to_string(), self.credentials.clone())
            .expect("gateway client")
    }

    /// Running replicas whose log was purged behind a snapshot, and running replicas.
    pub fn compacted_replicas(&self) -> (u64, u64) {
        (0..self.cluster.node_count())
            .filter_map(|i| self.cluster.node(i))
            .flat_map(|node| {
                let manager = node.manager();
                manager
                    .shards()
                    .into_iter()
                    .filter_map(|shard| manager.replica(shard))
                    .map(|r| (u64::from(r.raft_figures().purged_index > 0), 1))
                    .collect::<Vec<_>>()
            })
            .fold((0, 0), |(b, i), (nb, ni)| (b + nb, i + ni))
    }

    /// The gateway's RESP listener, when it serves one.
    pub fn resp_address(&self) -> Option<std::net::SocketAddr> {
        self.cluster.resp_address()
    }

    /// The coordinator (panics while it is stopped).
    pub fn coordinator(&self) -> &Coordinator {
        self.cluster.coordinator()
    }

    /// The coordinator's current map, if it runs.
    pub fn map(&self) -> Option<Arc<ShardMap>> {
        self.cluster.map()
    }

    /// The map's shards and every running replica's Raft state, for a timed-out wait.
    pub fn raft_report(&self) -> String {
        self.raft_report_of(None)
    }

    /// [`Self::raft_report`] of one shard, or of all of them.
    pub fn raft_report_of(&self, only: Option<ShardId>) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        if let Some(map) = self.map() {
            let _ = writeln!(out, "map version {}:", map.version);
            for s in map
                .shards
                .values()
                .filter(|s| only.is_none_or(|o| o == s.id))
            {
                let _ = writeln!(
                    out,
                    "  shard {} epoch {} {:?} replicas {:?} leader {:?} term {}",
                    s.id, s.epoch, s.state, s.replicas, s.leader, s.leader_term
                );
            }
        }
        for i in 0..self.node_count() {
            let Some(node) = self.cluster.node(i) else {
                let _ = writeln!(out, "node {i}: down");
                continue;
            };
            let manager = node.manager();
            let _ = writeln!(out, "node {i} ({}):", node.id());
            for shard in manager.shards() {
                if only.is_some_and(|o| o != shard) {
                    continue;
                }
                let Some(replica) = manager.replica(shard) else {
                    continue;
                };
                let f = replica.raft_figures();
                let voters = replica.leadership().voters;
                let (ack, vote, running) = {
                    let m = replica.raft().metrics().borrow().clone();
                    (m.millis_since_quorum_ack, m.vote, m.running_state.is_ok())
                };
                let _ = writeln!(
                    out,
                    "  shard {shard}: {} term {} log {} vote {vote} running {running} applied {} purged {} voters {voters:?} leader {:?} quiet {:?} matched {:?} quorum ack {ack:?} ms",
                    f.role,
                    f.term,
                    f.last_log_index,
                    f.applied_index,
                    f.purged_index,
                    replica.leadership().leader,
                    node.quiet(shard),
                    f.replication
                );
            }
        }
        out
    }

    /// Whether each replica of `shard` still answers: its Raft core takes a heartbeat
    /// trigger, and its leader confirms a read index, each within a second. A core that
    /// takes no message is stuck inside a command; one that does but cannot confirm lacks a
    /// quorum.
    pub async fn liveness_of(&self, shard: ShardId) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for i in 0..self.node_count() {
            let Some(replica) = self.replica(i, shard) else {
                continue;
            };
            let second = Duration::from_secs(1);
            let heartbeat =
                tokio::time::timeout(second, replica.raft().trigger().heartbeat()).await;
            let read = tokio::time::timeout(second, replica.raft().ensure_linearizable()).await;
            let _ = writeln!(
                out,
                "  node {i} shard {shard}: heartbeat trigger {:?}, read index {:?}",
                heartbeat.map(|r| r.is_ok()),
                read.map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            );
        }
        out
    }

    /// Node `i`'s replica of `shard`, if the node runs and holds one.
    fn replica(&self, i: usize, shard: ShardId) -> Option<Arc<kvdb_node::replica::Replica>> {
        self.cluster.node(i)?.manager().replica(shard)
    }

    /// Node `i`'s Raft figures for `shard`, if it runs a replica of it.
    pub fn figures(&self, i: usize, shard: ShardId) -> Option<kvdb_node::replica::RaftFigures> {
        self.replica(i, shard).map(|r| r.raft_figures())
    }

    /// Switches the election timer of node `i`'s replica of `shard` on or off.
    pub fn set_elections(&self, i: usize, shard: ShardId, on: bool) {
        if let Some(replica) = self.replica(i, shard) {
            replica.raft().runtime_config().elect(on);
        }
    }

    /// Has node `i`'s replica of `shard` call an election now, if the node runs one.
    pub async fn trigger_election(&self, i: usize, shard: ShardId) {
        if let Some(replica) = self.replica(i, shard) {
            let _ = replica.raft().trigger().elect().await;
        }
    }

    /// Cuts every Raft link of node `i`, both ways; clients still reach it.
    pub fn isolate(&self, i: usize) {
        self.partition.set_where(Fault::Blackhole, |from, to| {
            matches!((from, to), (Endpoint::Node(a), Endpoint::Node(b)) if *a == i || *b == i)
        });
    }

    /// Waits until some node leads `shard`, and returns the one it saw.
    pub async fn elected_leader(&self, shard: ShardId) -> usize {
        let mut found = None;
        super::wait_until("the shard's leader", || {
            found = self.leader_of(shard);
            found.is_some()
        })
        .await;
        found.expect("a leader was found")
    }

    /// Waits until a node other than `old` leads `shard`, and returns the one it saw.
    pub async fn leader_other_than(&self, old: usize, shard: ShardId) -> usize {
        let mut found = None;
        super::wait_until("another node to lead the shard", || {
            found = (0..self.node_count()).find(|&i| i != old && self.is_leader(i, shard));
            found.is_some()
        })
        .await;
        found.expect("a new leader was found")
    }

    /// Number of storage nodes.
    pub fn node_count(&self) -> usize {
        self.cluster.node_count()
    }

    /// The index of the node with coordinator id `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.cluster.index_of(id)
    }

    /// The coordinator id of node `i`.
    pub fn id_of(&self, i: usize) -> NodeId {
        self.cluster.node_id(i)
    }

    /// The node that leads `shard` according to the nodes themselves.
    pub fn leader_of(&self, shard: ShardId) -> Option<usize> {
        self.cluster.leader_of(shard)
    }

    /// Whether node `i` runs and believes it leads `shard`.
    pub fn is_leader(&self, i: usize, shard: ShardId) -> bool {
        self.cluster.is_leader(i, shard)
    }

    /// The Raft term of node `i`'s replica of `shard`, if it runs and holds one.
    pub fn term(&self, i: usize, shard: ShardId) -> Option<u64> {
        self.cluster.term(i, shard)
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.cluster.is_running(i)
    }

    /// Crash-stops node `i` (its data stays).
    pub async fn stop_node(&mut self, i: usize) {
        self.cluster.stop_node(i).await;
    }

    /// Restarts a stopped node at its old address with its old data.
    pub async fn restart_node(&mut self, i: usize) {
        self.cluster.restart_node(i).await.expect("node restarts");
    }

    /// Stops the coordinator; nodes and clients keep their maps.
    pub async fn stop_coordinator(&mut self) {
        self.cluster.stop_coordinator().await;
    }

    /// Restarts the coordinator on its old addresses and data.
    pub async fn restart_coordinator(&mut self) {
        self.cluster
            .restart_coordinator()
            .await
            .expect("coordinator restarts");
    }

    /// Heals the network and restarts everything stopped.
    pub async fn heal_all(&mut self) {
        self.partition.heal();
        self.restart_coordinator().await;
        for i in 0..self.node_count() {
            self.restart_node(i).await;
        }
    }

    /// Stops everything and removes the data.
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}

/// For each endpoint, each node's real address and the proxy that endpoint
/// dials it through.
#[derive(Clone)]
struct Rewrites(Arc<HashMap<Endpoint, Arc<HashMap<String, String>>>>);

impl Rewrites {
    fn new(nodes: &[SocketAddr], partition: &Partition<Endpoint>) -> Rewrites {
        let froms = (0..nodes.len())
            .map(Endpoint::Node)
            .chain([Endpoint::Clients, Endpoint::Gateway]);
        let tables = froms
            .map(|from| {
                let table = (0..nodes.len())
                    .filter_map(|to| {
                        let link = partition.link(&from, &Endpoint::Node(to))?;
                        Some((nodes[to].to_string(), link.addr().to_string()))
                    })
                    .collect();
                (from, Arc::new(table))
            })
            .collect();
        Rewrites(Arc::new(tables))
    }

    /// Maps each node's real address to the proxy of `from -> node`.
    fn from(&self, from: Endpoint) -> AddressRewrite {
        let table = self.0[&from].clone();
        AddressRewrite::new(move |addr| table.get(addr).cloned().unwrap_or_else(|| addr.to_owned()))
    }

    fn executor_config(&self, from: Endpoint) -> ExecutorConfig {
        ExecutorConfig {
            default_timeout: CALL_TIMEOUT,
            node_address_rewrite: Some(self.from(from)),
            ..ExecutorConfig::default()
        }
    }
}

/// A proxy for every directed node-to-node link and for the client and
/// gateway links to every node.
async fn proxy_links(nodes: &[SocketAddr]) -> Partition<Endpoint> {
    let mut partition = Partition::new();
    for (to, &upstream) in nodes.iter().enumerate() {
        let froms = (0..nodes.len())
            .filter(|&from| from != to)
            .map(Endpoint::Node)
            .chain([Endpoint::Clients, Endpoint::Gateway]);
        for from in froms {
            let proxy = FaultProxy::start(upstream).await.expect("proxy starts");
            partition.insert(from, Endpoint::Node(to), proxy);
        }
    }
    partition
}
