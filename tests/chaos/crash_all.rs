//! A targeted scenario for reads right after a whole-cluster crash: every node process gets
//! SIGKILL at once, they restart staggered, and STRONG reads go out at once.
//!
//! The leader that comes back first knows only the commit index it last saved, which may lag
//! its last acknowledged write; it must win an election in a new term (its log store never
//! lets it resume the old one) and apply that term's first entry before it answers. Each
//! round writes every key and then compare-and-swaps it (both acknowledged, both recorded),
//! crashes the cluster, restarts the nodes in the round's order [`RESTART_GAP`] apart and
//! reads every key, recorded, for the linearizability checker. A read that returns the
//! pre-CAS value is also counted directly, so a report says how often it happened.
//!
//! Out of scope: faults other than the crash (the signal schedule has single-node kills).

use std::path::Path;
use std::time::Duration;

use kvdb::core::ShardMap;
use kvdb::core::slot::slot;
use kvdb_client::{Client, Consistency, GetOptions, Kv, PutOptions};
use kvdb_testkit::{ClientId, Op, Outcome, Output, Recorder, Version};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::process::ProcessCluster;
use super::stale_read::check_history;

/// Time between two node restarts.
pub const RESTART_GAP: Duration = Duration::from_millis(100);
/// Bound on each read and write, retries included: a restarted cluster needs a moment, and
/// three debug processes starting and electing leaders on a loaded CI machine need more. A
/// read that fails fails the test, so the bound is the scenario deadline, not a latency.
const CALL_BOUND: Duration = super::DEADLINE;
const WRITER: ClientId = ClientId(0);
const READER: ClientId = ClientId(1);

/// In which order the crashed nodes come back.
#[derive(Debug, Clone, Copy)]
pub enum RestartOrder {
    /// The first key's shard leader first, the others [`RESTART_GAP`] later.
    LeaderFirst,
    /// A random order from this seed, one node every [`RESTART_GAP`].
    Random(u64),
}

/// What the rounds saw.
#[derive(Debug, Default)]
pub struct CrashReport {
    /// Whole-cluster crashes.
    pub rounds: usize,
    /// STRONG reads answered after a restart.
    pub reads: usize,
    /// Of those, reads that returned the value from before the acknowledged CAS.
    pub stale: usize,
    /// Keys the linearizability checker flagged.
    pub violations: usize,
    /// The checker's explanation when it flagged any.
    pub details: String,
}

/// Runs crash rounds on a fresh cluster of `bin` processes with `shards` shards, until
/// `rounds` rounds are done and `at_least` has passed.
pub async fn strong_reads_after_cluster_crash(
    bin: &Path,
    shards: u32,
    order: RestartOrder,
    rounds: usize,
    at_least: Duration,
) -> CrashReport {
    let mut cluster = ProcessCluster::start_with(bin, 3, shards, None).await;
    let client = cluster.client().await;
    let keys = keys(&client.cache().current());
    let recorder = Recorder::new();
    let mut rng = match order {
        RestartOrder::LeaderFirst => StdRng::seed_from_u64(0),
        RestartOrder::Random(seed) => StdRng::seed_from_u64(seed),
    };
    let mut report = CrashReport::default();
    let end = Instant::now() + at_least;
    while report.rounds < rounds || Instant::now() < end {
        let round = report.rounds;
        let mut before_cas = Vec::new();
        for key in &keys {
            let first = format!("round-{round}").into_bytes();
            let version = recorded_put(&client, &recorder, key, &first, None).await;
            let second = format!("round-{round}-cas").into_bytes();
            recorded_put(&client, &recorder, key, &second, Some(version)).await;
            before_cas.push(first);
        }
        let mut restart: Vec<usize> = (0..3).collect();
        match order {
            RestartOrder::LeaderFirst => {
                let leader = leader_of(&cluster, &client, &keys[0]);
                restart.sort_by_key(|&i| Some(i) != leader);
            }
            RestartOrder::Random(_) => restart.shuffle(&mut rng),
        }
        cluster.kill_all();
        for (n, &i) in restart.iter().enumerate() {
            if n > 0 {
                tokio::time::sleep(RESTART_GAP).await;
            }
            cluster.restart(i);
        }
        let reads = keys
            .iter()
            .map(|key| recorded_read(&client, &recorder, key));
        for (seen, old) in futures::future::join_all(reads)
            .await
            .into_iter()
            .zip(&before_cas)
        {
            let seen = seen.unwrap_or_else(|| panic!("round {round}: a strong read failed"));
            report.reads += 1;
            report.stale += usize::from(seen.as_ref() == Some(old));
        }
        report.rounds += 1;
        println!(
            "    crash round {round}: restart order {restart:?}, {} stale reads so far",
            report.stale
        );
    }
    (report.violations, report.details) = check_history(&recorder);
    println!("CRASH-ALL order={order:?} {report:?}");
    report
}

/// Two keys in each shard of `map`.
fn keys(map: &ShardMap) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for shard in map.shards.values() {
        let found = (0..)
            .map(|n| format!("crash-{n}").into_bytes())
            .filter(|k| shard.contains(slot(k)))
            .take(2);
        keys.extend(found);
    }
    keys
}

/// The index of the node that leads `key`'s shard, as the client's map says.
fn leader_of(cluster: &ProcessCluster, client: &Client, key: &[u8]) -> Option<usize> {
    let map = client.cache().current();
    let shard = map.shards.values().find(|s| s.contains(slot(key)))?;
    let address = map.address(shard.leader?)?;
    cluster.index_of_address(address)
}

/// Writes `value` (a CAS when `expected` is given), recorded; must be acknowledged.
async fn recorded_put(
    client: &Client,
    recorder: &Recorder,
    key: &[u8],
    value: &[u8],
    expected: Option<kvdb::core::Version>,
) -> kvdb::core::Version {
    let pending = recorder.invoke(WRITER, key.to_vec(), Op::Write(value.to_vec()));
    let options = PutOptions {
        if_version: expected,
        timeout: Some(CALL_BOUND),
        ..PutOptions::default()
    };
    let version = client
        .put_with(key, value, options)
        .await
        .expect("a healthy cluster acknowledges the write");
    pending.complete(Outcome::Ok(Output::applied(version.0)));
    version
}

/// One STRONG read of `key`, recorded: the value seen, or `None` if the read failed.
async fn recorded_read(
    client: &Client,
    recorder: &Recorder,
    key: &[u8],
) -> Option<Option<Vec<u8>>> {
    let pending = recorder.invoke(READER, key.to_vec(), Op::Read);
    let options = GetOptions {
        consistency: Consistency::Strong,
        timeout: Some(CALL_BOUND),
        hash_fields: None,
    };
    match client.get_with(key, options).await {
        Ok(seen) => {
            let output = seen
                .as_ref()
                .map(|v| (v.value.clone(), Version(v.version.0)));
            pending.complete(Outcome::Ok(Output::Read(output)));
            Some(seen.map(|v| v.value))
        }
        Err(e) => {
            println!("    strong read failed: {e}");
            pending.complete(Outcome::Fail);
            None
        }
    }
}
