//! Shared support for the chaos suite (`tests/chaos_*.rs`): a cluster with a
//! fault proxy on every link, a recorded workload, named nemesis schedules,
//! and the checks every schedule must pass.
//!
//! A run: start the cluster and the workload (smart and gateway clients on
//! eight keys unless the options say otherwise), run fault cycles for `KVDB_CHAOS_SECS` (each cycle heals and
//! measures how long until every shard is writable), heal everything, let
//! the workload run through a recovery window, read every key, then check
//! the history (kvdb-testkit's linearizability checker), look for lost
//! acknowledged writes and count wrong-epoch writes a node served.
//!
//! # Layout
//! - `cluster`: [`cluster::ChaosCluster`], in-process servers behind proxies.
//! - `workload`: the recorded clients.
//! - `resp`: recorded clients that speak Redis to the gateway (with `resp_clients`).
//! - `nemesis`: [`nemesis::Schedule`] and one fault cycle each.
//! - `verify`: writability, final reads, lost writes, the epoch probe.
//! - `process`: a multi-process cluster of `kvdb` binaries for signals.
//! - `availability`: what isolating or delaying one node costs (a measurement, no assertion).
//! - `rolling`: the rolling-restart drill over processes (every server, one at a time).
//! - `crash_all`: a targeted STRONG-read-after-a-whole-cluster-crash scenario (processes).
//! - `stale_read`: a targeted STRONG-read-on-a-stale-follower scenario.
//! - `deposed_leader`: a targeted STRONG-read-on-a-cut-off-leader scenario (read leases).
//! - `joining_replica`: a targeted EVENTUAL-read-on-a-replica-still-joining scenario.
//!
//! Out of scope: TTLs and deletes in the workload (splits copy expiries; the state-machine
//! tests check that), multi-member coordinator groups, and network faults on coordinator
//! links.

#![allow(dead_code)] // Each chaos test binary uses a different subset.

pub mod availability;
pub mod cluster;
pub mod crash_all;
pub mod deposed_leader;
pub mod hung_leader;
pub mod joining_replica;
pub mod nemesis;
pub mod process;
pub mod resp;
pub mod rolling;
pub mod settled_proposal;
pub mod stale_read;
pub mod verify;
pub mod workload;

use std::fmt;
use std::time::Duration;

use kvdb_testkit::{Recorder, Summary};
pub use kvdb_testkit::{init_tracing, wait_until, wait_until_or_report};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use cluster::{ChaosCluster, ChaosOptions};
use nemesis::Schedule;
use verify::{EpochProbe, NotWritable, RECOVERY_BOUND, check_run, probe_keys, time_to_writable};
use workload::{Workload, keys};

/// Run length and seed, from the environment of the test process.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long faults are injected.
    pub duration: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Settings {
    /// Default fault phase per schedule: short, for CI.
    pub const DEFAULT_SECS: u64 = 12;

    /// `KVDB_CHAOS_SECS` (default [`Self::DEFAULT_SECS`]) and
    /// `KVDB_CHAOS_SEED` (default random).
    pub fn from_env() -> Settings {
        let secs = std::env::var("KVDB_CHAOS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Self::DEFAULT_SECS);
        let seed = std::env::var("KVDB_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        Settings {
            duration: Duration::from_secs(secs),
            seed,
        }
    }

    /// The same seed, another duration (sensitivity runs stay short).
    pub fn with_duration(self, duration: Duration) -> Settings {
        Settings { duration, ..self }
    }
}

/// What one schedule run saw.
#[derive(Debug)]
pub struct RunReport {
    /// Schedule name.
    pub schedule: &'static str,
    /// The seed that reproduces it.
    pub seed: u64,
    /// The planted bug the nodes ran with, if any.
    pub bug: Option<kvdb_node::planted::PlantedBug>,
    /// Fault cycles injected.
    pub faults: usize,
    /// Recorded operations by outcome.
    pub ops: Summary,
    /// Keys found not linearizable.
    pub violations: usize,
    /// Keys the checker could not decide.
    pub inconclusive: usize,
    /// Acknowledged writes missing from the final state.
    pub lost_writes: Vec<String>,
    /// Wrong-epoch writes a node served.
    pub epoch_served: u64,
    /// Time to writability after each heal.
    pub recovery: Vec<Duration>,
    /// Shards in the map at the end (splits add some).
    pub shards: usize,
    /// Running replicas whose log was purged behind a snapshot, of all running replicas.
    pub compacted: (u64, u64),
    /// The checker's explanation when something failed.
    pub details: String,
}

impl RunReport {
    /// Whether every check passed.
    pub fn is_clean(&self) -> bool {
        self.violations == 0 && self.lost_writes.is_empty() && self.epoch_served == 0
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.recovery.iter().max().copied().unwrap_or_default();
        write!(
            f,
            "CHAOS schedule={} bug={:?} seed={} faults={} ops={} ok={} fail={} unknown={} \
             violations={} inconclusive={} lost_writes={} epoch_served={} shards={} \
             compacted_replicas={}/{} recovery_ms={:?} recovery_max_ms={}",
            self.schedule,
            self.bug,
            self.seed,
            self.faults,
            self.ops.operations,
            self.ops.ok,
            self.ops.failed,
            self.ops.unknown,
            self.violations,
            self.inconclusive,
            self.lost_writes.len(),
            self.epoch_served,
            self.shards,
            self.compacted.0,
            self.compacted.1,
            self.recovery
                .iter()
                .map(Duration::as_millis)
                .collect::<Vec<_>>(),
            max.as_millis(),
        )
    }
}

/// How long a harness condition may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Logical clients of each kind.
const SMART_CLIENTS: usize = 3;
const GATEWAY_CLIENTS: usize = 2;
/// Operations the workload must complete after the final heal.
const RECOVERY_WINDOW_OPS: u64 = 100;

/// Runs `schedule` on a fresh cluster and reports what the checks found.
pub async fn run(schedule: Schedule, options: ChaosOptions, settings: Settings) -> RunReport {
    init_tracing();
    println!(
        "--- {} with {options:?}: {:?} of faults, KVDB_CHAOS_SEED={}",
        schedule.name(),
        settings.duration,
        settings.seed
    );
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut cluster = ChaosCluster::start(options).await;
    let recorder = Recorder::new();
    let mut workload = Workload::new(&recorder, settings.seed, options.keys);
    for _ in 0..SMART_CLIENTS * usize::from(options.grpc_clients) {
        workload.spawn(cluster.client().await);
    }
    for _ in 0..GATEWAY_CLIENTS * usize::from(options.grpc_clients) {
        workload.spawn(cluster.gateway_client());
    }
    for _ in 0..options.resp_clients {
        workload.spawn_resp(cluster.resp_address().expect("a RESP listener"));
    }
    let probe = EpochProbe::start(cluster.client().await);
    let checker_client = cluster.client().await;
    let probes = probe_keys(&cluster.map().expect("coordinator runs"));

    // --- fault cycles
    let end = Instant::now() + settings.duration;
    let mut recovery = Vec::new();
    let mut faults = 0;
    while Instant::now() < end {
        let what = nemesis::cycle(schedule, &mut cluster, &mut rng, faults).await;
        faults += 1;
        if schedule.splits() {
            // Every key read right after the split settled, into the history: a split that
            // lost or kept back a key shows at once, whatever the workload does next.
            workload.read_every_key(cluster.client().await).await;
        }
        let took = match time_to_writable(&checker_client, &probes).await {
            Ok(took) => took,
            Err(failed) => not_writable(&cluster, failed).await,
        };
        println!("    fault {faults}: {what}; writable again after {took:?}");
        recovery.push(took);
    }

    // --- heal everything, recovery window
    cluster.heal_all().await;
    match time_to_writable(&checker_client, &probes).await {
        Ok(took) => recovery.push(took),
        Err(failed) => not_writable(&cluster, failed).await,
    }
    let issued = workload.issued.clone();
    let target = issued.load(std::sync::atomic::Ordering::Relaxed) + RECOVERY_WINDOW_OPS;
    wait_until("the recovery window", || {
        issued.load(std::sync::atomic::Ordering::Relaxed) >= target
    })
    .await;
    let counters = workload.counters.clone();
    workload.stop().await;
    let epoch_served = probe.stop().await;

    // --- final reads and checks
    let shards = cluster.map().map_or(0, |m| m.shards.len());
    let compacted = cluster.compacted_replicas();
    let mut found = check_run(&checker_client, &keys(options.keys), &recorder).await;
    if options.resp_clients > 0 {
        let values = read_counters(&checker_client).await;
        println!("    Redis INCR counters: {}", counters.describe(&values));
        let mut wrong = counters.check(&values);
        let pairs = read_large_hash(&checker_client).await;
        println!("    Redis large hash: {}", counters.describe_hash(&pairs));
        wrong.extend(counters.check_hash(&pairs));
        found.details.extend(wrong.iter().map(|w| format!("{w}\n")));
        found.lost_writes.extend(wrong);
    }
    let report = RunReport {
        schedule: schedule.name(),
        seed: settings.seed,
        bug: options.bug,
        faults,
        ops: found.ops,
        violations: found.violations,
        inconclusive: found.inconclusive,
        lost_writes: found.lost_writes,
        epoch_served,
        recovery,
        shards,
        compacted,
        details: found.details,
    };
    println!("{report}");
    if !report.is_clean() {
        println!("{}", report.details);
    }
    cluster.shutdown().await;
    report
}

/// The Redis clients' counters, read strongly once the workload stopped.
async fn read_counters(client: &kvdb_client::Client) -> Vec<Option<u64>> {
    use kvdb_client::Kv;
    let mut values = Vec::new();
    for i in 0..resp::COUNTERS {
        let read = tokio::time::timeout(resp::COUNTER_READ_TIMEOUT, async {
            loop {
                if let Ok(value) = client.get(&resp::counter_key(i)).await {
                    break value;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the counters read back");
        values.push(read.map(|v| {
            String::from_utf8_lossy(&v.value)
                .parse()
                .expect("a counter holds an integer")
        }));
    }
    values
}

/// The Redis clients' large hash, read strongly once the workload stopped.
async fn read_large_hash(client: &kvdb_client::Client) -> kvdb_client::HashPairs {
    use kvdb_client::Kv;
    let read = tokio::time::timeout(resp::COUNTER_READ_TIMEOUT, async {
        loop {
            if let Ok(value) = client.get(resp::LARGE_HASH).await {
                break value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the large hash reads back");
    read.and_then(|v| v.hash).unwrap_or_default()
}

/// Fails the run for a shard that took no write within `RECOVERY_BOUND`, with its state.
async fn not_writable(cluster: &ChaosCluster, failed: NotWritable) -> ! {
    let NotWritable {
        shard,
        last_error,
        failed,
    } = failed;
    let first = cluster.raft_report_of(Some(shard));
    // A second look shows what still moves, and whether the replicas' Raft cores answer.
    let liveness = cluster.liveness_of(shard).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    panic!(
        "shard {shard} not writable {RECOVERY_BOUND:?} after the heal ({failed} shards failed; last error: {last_error})\n{first}{liveness}2 s later:\n{}",
        cluster.raft_report_of(Some(shard))
    )
}

pub async fn run_clean(schedule: Schedule, options: ChaosOptions) {
    let report = run(schedule, options, Settings::from_env()).await;
    assert!(
        report.is_clean(),
        "{} (reproduce with KVDB_CHAOS_SEED={}):\n{}",
        report.schedule,
        report.seed,
        report.details
    );
}
