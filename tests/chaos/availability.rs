//! What a network fault on one node costs in availability, measured rather than asserted:
//! every key is written in a closed loop while one node is isolated (both directions, from
//! peers and clients) or has every link delayed, and the report gives the longest time any key
//! went without an acknowledged write, how long after the heal every key answered again, and how
//! many Raft terms the shards went through (elections, including failed ones).
//!
//! `make availability` runs it in release; figures go to docs/operations.md. Timing targets are
//! the report's to meet, never a test assertion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvdb::core::ShardId;
use kvdb::core::slot::slot;
use kvdb_client::{Client, Kv, PutOptions};
use kvdb_testkit::Fault;
use tokio::time::Instant;

use super::cluster::{ChaosCluster, ChaosOptions, Endpoint};
use super::wait_until;

/// Keys written in the loop, as in the fault test that motivated this report.
const KEYS: usize = 16;
/// Bound on one write, retries included.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// One fault to measure.
#[derive(Debug, Clone, Copy)]
pub enum LinkFault {
    /// Every link of the node, both directions, to peers and clients: blackholed.
    Isolate,
    /// Every link of the node delayed by this much in each direction.
    Delay(Duration),
}

/// What one fault cost.
#[derive(Debug)]
pub struct AvailabilityReport {
    pub fault: LinkFault,
    /// Whether nodes ran with a slow-leader policy.
    pub slow_leader: bool,
    pub held: Duration,
    /// The longest time any key went without an acknowledged write, from the fault's start
    /// until every key answered after the heal.
    pub longest_stall: Duration,
    /// Keys that went more than a second without an acknowledged write.
    pub keys_stalled_over_1s: usize,
    /// From the heal until every key had an acknowledged write again.
    pub answering_after_heal: Duration,
    /// Raft terms the shards went through while the fault lasted and until every key answered
    /// after the heal.
    pub term_bumps: u64,
    /// Acknowledged writes while the fault was held, and their rate.
    pub writes_during_fault: usize,
}

/// Measures `fault` on the node that leads the most shards, held for `held`, on a fresh
/// cluster started with `options`.
pub async fn measure(
    fault: LinkFault,
    held: Duration,
    options: ChaosOptions,
) -> AvailabilityReport {
    super::init_tracing();
    let slow_leader = options.slow_leader.is_some();
    let cluster = ChaosCluster::start(options).await;
    let map = cluster.map().expect("coordinator runs");
    let keys = spread_keys(&map.shards.values().map(|s| s.id).collect::<Vec<_>>(), &map);
    let successes: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); KEYS]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let client = cluster.client().await;
        let (key, successes, stop) = (key.clone(), successes.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            write_loop(client, key, k, successes, stop).await;
        }));
    }
    // Every key answers before the fault.
    let warm = successes.clone();
    wait_until("every key answering before the fault", || {
        warm.lock().unwrap().iter().all(|s| !s.is_empty())
    })
    .await;

    let victim = busiest_leader(&cluster);
    let terms_before = total_term(&cluster);
    let started = Instant::now();
    let gate = match fault {
        LinkFault::Isolate => Fault::Blackhole,
        LinkFault::Delay(by) => Fault::Delay(by),
    };
    cluster.partition.set_where(gate, |from, to| {
        let touches = |e: &Endpoint| matches!(e, Endpoint::Node(i) if *i == victim);
        touches(from) || touches(to)
    });
    tokio::time::sleep(held).await;
    cluster.partition.heal();
    let healed = Instant::now();
    let after = successes.clone();
    wait_until("every key answering after the heal", || {
        after
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.last().is_some_and(|t| *t >= healed))
    })
    .await;
    let answered = Instant::now();
    let term_bumps = total_term(&cluster) - terms_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    let successes = successes.lock().unwrap().clone();
    let stalls: Vec<Duration> = successes
        .iter()
        .map(|times| longest_gap(times, started, answered))
        .collect();
    let answering_after_heal = successes
        .iter()
        .filter_map(|times| times.iter().find(|t| **t >= healed))
        .map(|t| t.duration_since(healed))
        .max()
        .unwrap_or_default();
    let report = AvailabilityReport {
        fault,
        slow_leader,
        held,
        longest_stall: stalls.iter().max().copied().unwrap_or_default(),
        keys_stalled_over_1s: stalls
            .iter()
            .filter(|s| **s > Duration::from_secs(1))
            .count(),
        answering_after_heal,
        term_bumps,
        writes_during_fault: successes
            .iter()
            .flatten()
            .filter(|t| **t >= started && **t < healed)
            .count(),
    };
    println!("AVAILABILITY {report:?}");
    cluster.shutdown().await;
    report
}

/// [`KEYS`] keys spread over `shards` in turn.
fn spread_keys(shards: &[ShardId], map: &kvdb::core::ShardMap) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut n = 0u64;
    while keys.len() < KEYS {
        let wanted = shards[keys.len() % shards.len()];
        let key = format!("avail-{n}").into_bytes();
        n += 1;
        if map
            .shards
            .get(&wanted)
            .is_some_and(|s| s.contains(slot(&key)))
        {
            keys.push(key);
        }
    }
    keys
}

async fn write_loop(
    client: Client,
    key: Vec<u8>,
    index: usize,
    successes: Arc<Mutex<Vec<Vec<Instant>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let options = PutOptions {
        timeout: Some(WRITE_TIMEOUT),
        ..PutOptions::default()
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if client.put_with(&key, b"v", options.clone()).await.is_ok() {
            successes.lock().unwrap()[index].push(Instant::now());
        } else {
            // A failed call already waited out its bound or its retries; go again at once.
            tokio::task::yield_now().await;
        }
    }
}

/// The longest time between acknowledged writes within `[from, to]`.
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &t in times.iter().filter(|t| **t > from && **t <= to) {
        longest = longest.max(t.duration_since(last));
        last = t;
    }
    longest.max(to.duration_since(last))
}

/// The node that leads the most shards.
fn busiest_leader(cluster: &ChaosCluster) -> usize {
    let map = cluster.map().expect("coordinator runs");
    (0..cluster.node_count())
        .max_by_key(|&i| {
            map.shards
                .keys()
                .filter(|&&s| cluster.is_leader(i, s))
                .count()
        })
        .expect("a node")
}

/// The sum over shards of the highest term any replica holds.
fn total_term(cluster: &ChaosCluster) -> u64 {
    let map = cluster.map().expect("coordinator runs");
    map.shards
        .keys()
        .map(|&s| {
            (0..cluster.node_count())
                .filter_map(|i| cluster.term(i, s))
                .max()
                .unwrap_or(0)
        })
        .sum()
}
