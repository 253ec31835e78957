//! The scheduler over real servers on loopback: nodes that join get their
//! share of replicas and leaderships, a drained node is emptied, and a node
//! killed for good has its replicas replaced, all while a workload writes.
//! The workload must see no failed write, and every acknowledged value must
//! read back afterwards.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::TestCluster;
use kvdb::cluster::LocalCluster;
use kvdb::coordinator::scheduler::{Load, Reason};
use kvdb::core::{NodeId, NodeStatus, ShardMap, ShardState};
use kvdb_client::{Client, Kv};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long the cluster may take to settle after each change.
const SETTLE: Duration = Duration::from_secs(90);
/// How often the settling cluster is looked at.
const POLL: Duration = Duration::from_millis(50);
const WRITERS: usize = 6;
const KEYS_PER_WRITER: u64 = 100;

/// What one writer saw: the last acknowledged value per key, and its errors.
type WriterResult = (BTreeMap<Vec<u8>, u64>, Vec<String>);

/// Writers that put increasing values until stopped.
struct Workload {
    stop: Arc<AtomicBool>,
    writers: JoinSet<WriterResult>,
}

impl Workload {
    fn start(client: &Client) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            let client = client.clone();
            let stop = stop.clone();
            writers.spawn(async move {
                let mut acked = BTreeMap::new();
                let mut errors = Vec::new();
                let mut n = 0u64;
                while n < KEYS_PER_WRITER || !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}-{}", n % KEYS_PER_WRITER).into_bytes();
                    match client.put(&key, n.to_string().as_bytes()).await {
                        Ok(_) => {
                            acked.insert(key, n);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                    n += 1;
                }
                (acked, errors)
            });
        }
        Workload { stop, writers }
    }

    /// Stops the writers; asserts that no write failed and that every key
    /// reads its last acknowledged value.
    async fn finish(mut self, client: &Client) {
        self.stop.store(true, Ordering::Relaxed);
        let mut keys = 0;
        while let Some(result) = self.writers.join_next().await {
            let (acked, errors) = result.expect("writer task");
            assert!(errors.is_empty(), "writes failed: {errors:?}");
            for (key, n) in acked {
                let got = client.get(&key).await.expect("read back").expect("present");
                assert_eq!(got.value, n.to_string().as_bytes(), "key {key:?}");
                keys += 1;
            }
        }
        assert_eq!(keys, WRITERS * KEYS_PER_WRITER as usize);
    }
}

fn fast_scheduler(config: &mut kvdb::cluster::ClusterConfig) {
    config.tune_coordinator = kvdb::cluster::fast_repair;
}

/// Max minus min of `count` over `nodes`.
fn spread(count: &BTreeMap<NodeId, usize>, nodes: &[NodeId]) -> usize {
    let counts: Vec<usize> = nodes.iter().map(|n| count[n]).collect();
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

/// Leaderships per node, as the nodes themselves see them.
fn real_leaders(cluster: &LocalCluster, map: &ShardMap) -> BTreeMap<NodeId, usize> {
    let mut count: BTreeMap<NodeId, usize> = map.nodes.keys().map(|&n| (n, 0)).collect();
    for shard in map.shards.keys() {
        if let Some(i) = cluster.leader_of(*shard) {
            *count.entry(cluster.node_id(i)).or_default() += 1;
        }
    }
    count
}

/// Waits until every shard is stable with `rf` replicas on alive nodes and
/// replicas and (real) leaderships are within one of each other across the
/// alive nodes.
async fn wait_balanced(cluster: &LocalCluster, rf: usize) {
    let coordinator = cluster.coordinator().clone();
    let balanced = || {
        let map = coordinator.map();
        let alive = map.alive_nodes();
        let stable = map.shards.values().all(|s| {
            s.state == ShardState::Stable
                && s.replicas.len() == rf
                && s.replicas.iter().all(|r| alive.contains(r))
        });
        let load = Load::of(&map);
        let leaders = real_leaders(cluster, &map);
        let led = leaders.values().sum::<usize>() == map.shards.len();
        stable && led && spread(&load.replicas, &alive) <= 1 && spread(&leaders, &alive) <= 1
    };
    let started = Instant::now();
    while !balanced() {
        let map = coordinator.map();
        assert!(
            started.elapsed() < SETTLE,
            "not balanced after {SETTLE:?}: replicas {:?}, leaders {:?}, shards {:?}, operations {:?}",
            Load::of(&map).replicas,
            real_leaders(cluster, &map),
            map.shards.values().collect::<Vec<_>>(),
            coordinator.recent_operations()
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!("balanced in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joining_nodes_get_their_share_and_a_drained_node_is_emptied() {
    let mut test = TestCluster::start_with(3, fast_scheduler).await;
    let client = test.cluster.client().await.unwrap();
    let workload = Workload::start(&client);

    // --- a 4th and a 5th node join under load
    for _ in 0..2 {
        test.cluster.add_node().await.expect("node joins");
    }
    wait_balanced(&test.cluster, 3).await;
    let map = test.cluster.coordinator().map();
    assert_eq!(map.alive_nodes().len(), 5);
    for node in [test.cluster.node_id(3), test.cluster.node_id(4)] {
        assert!(Load::of(&map).replicas[&node] >= 4, "{node} got its share");
    }

    // --- drain one of the original nodes: it ends with nothing
    let drained = test.cluster.node_id(0);
    test.cluster
        .coordinator()
        .set_node_status(drained, NodeStatus::Draining)
        .await
        .unwrap();
    wait_balanced(&test.cluster, 3).await;
    let map = test.cluster.coordinator().map();
    let load = Load::of(&map);
    assert_eq!(load.replicas[&drained], 0);
    assert_eq!(real_leaders(&test.cluster, &map)[&drained], 0);

    workload.finish(&client).await;
    test.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_for_good_has_its_replicas_replaced() {
    let mut test = TestCluster::start_with(4, fast_scheduler).await;
    let client = test.cluster.client().await.unwrap();
    let workload = Workload::start(&client);

    let victim = test.cluster.node_id(1);
    let coordinator = test.cluster.coordinator().clone();
    assert!(Load::of(&coordinator.map()).replicas[&victim] > 0);
    test.cluster.stop_node(1).await;

    // --- dead after 2 s, repaired 1 s later: every shard back to 3 replicas
    wait_balanced(&test.cluster, 3).await;
    let map = coordinator.map();
    assert_eq!(map.nodes[&victim].status, NodeStatus::Dead);
    assert_eq!(Load::of(&map).replicas[&victim], 0);
    let repairs = coordinator
        .recent_operations()
        .into_iter()
        .filter(|op| op.operation.reason == Reason::Repair)
        .count();
    assert!(repairs > 0, "the scheduler logged its repairs");

    workload.finish(&client).await;
    test.stop().await;
}

/// Nodes send each replica's key count and request counters with their heartbeats; the
/// coordinator leader keeps the leaders' figures, turns the counters into rates, and the
/// Admin API shows them with the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shard_figures_reach_the_coordinator_and_the_admin_api() {
    let test = TestCluster::start(3).await;
    let client = test.cluster.client().await.unwrap();
    let coordinator = test.cluster.coordinator().clone();
    let map = coordinator.map();
    let shard = *map.shards.keys().next().unwrap();
    let keys = common::keys_in_shard(&map, shard, "figures", 50);
    for key in &keys {
        client.put(key, b"v").await.unwrap();
    }
    let load = || coordinator.shard_stats().load(shard, Instant::now());
    let started = Instant::now();
    // Reads and writes keep going until two reports show their rates.
    while !load().is_some_and(|l| {
        l.keys == 50
            && l.writes_per_sec.is_some_and(|w| w > 0.0)
            && l.reads_per_sec.is_some_and(|r| r > 0.0)
    }) {
        assert!(
            started.elapsed() < SETTLE,
            "no figures for {shard}: {:?}",
            load()
        );
        client.put(&keys[0], b"again").await.unwrap();
        client.get(&keys[1]).await.unwrap();
    }
    let admin =
        kvdb::coordinator::admin::AdminClient::new(&test.cluster.admin_address().to_string())
            .unwrap();
    let view = admin.shard(shard).await.unwrap();
    let shown = view.load.expect("the Admin API shows the figures");
    assert_eq!(shown.keys, 50);
    assert!(map.shards[&shard].replicas.contains(&shown.reported_by));
    test.stop().await;
}
