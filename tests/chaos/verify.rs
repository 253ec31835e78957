//! What a schedule must show once its faults are healed: every shard takes
//! writes again within a bound, every acknowledged write is still there, and
//! the recorded history is linearizable.
//!
//! Also the epoch probe: requests routed with a wrong shard epoch must be
//! refused. KvDB has no slot-range changes, so Raft leadership alone keeps a
//! wrongly routed write linearizable and the checker cannot see a missing
//! epoch check; the probe checks that node guarantee directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_node_client::KvNodeClient;
use kvdb::core::slot::slot;
use kvdb::core::{ShardId, ShardMap};
use kvdb_client::{Client, Kv, PutOptions};
use kvdb_testkit::{
    CheckConfig, ClientId, History, Key, Op, Outcome, Output, Recorder, Summary, Version, check,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long every shard may take to accept a write after a heal.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// The first probe's deadline: short, so that recovery times are measured closely.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest deadline a probe is given after failures.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// One key per shard of `map`, for writability probes.
pub fn probe_keys(map: &ShardMap) -> BTreeMap<ShardId, Vec<u8>> {
    let mut keys = BTreeMap::new();
    for n in 0.. {
        if keys.len() == map.shards.len() {
            break;
        }
        let key = format!("probe-{n}").into_bytes();
        if let Some(shard) = map.shards.values().find(|s| s.contains(slot(&key))) {
            keys.entry(shard.id).or_insert(key);
        }
    }
    keys
}

/// A shard that took no write within [`RECOVERY_BOUND`], and the last error its probe saw.
#[derive(Debug)]
pub struct NotWritable {
    pub shard: ShardId,
    pub last_error: String,
    /// How many shards failed, this one included.
    pub failed: usize,
}

/// Time from now until every shard accepted a write, or the first shard that did not
/// within [`RECOVERY_BOUND`].
pub async fn time_to_writable(
    client: &Client,
    probes: &BTreeMap<ShardId, Vec<u8>>,
) -> Result<Duration, NotWritable> {
    let started = Instant::now();
    let deadline = started + RECOVERY_BOUND;
    let attempts = probes.iter().map(|(shard, key)| async move {
        let mut timeout = PROBE_TIMEOUT;
        loop {
            let options = PutOptions {
                timeout: Some(timeout),
                ..PutOptions::default()
            };
            let Err(e) = client.put_with(key, b"probe", options).await else {
                return Ok(started.elapsed());
            };
            if Instant::now() >= deadline {
                return Err(NotWritable {
                    shard: *shard,
                    last_error: e.to_string(),
                    failed: 1,
                });
            }
            // An abandoned probe still costs its shard a log entry: retrying at once with the
            // same short deadline would keep a loaded cluster busy with writes nobody waits
            // for, so every failure allows the next attempt more time.
            timeout = (timeout * 2).min(MAX_PROBE_TIMEOUT);
        }
    });
    let took = futures::future::join_all(attempts).await;
    let failed = took.iter().filter(|t| t.is_err()).count();
    took.into_iter()
        .try_fold(Duration::ZERO, |max, took| Ok(max.max(took?)))
        .map_err(|first: NotWritable| NotWritable { failed, ..first })
}

/// The client id final reads are recorded under.
pub const FINAL_READER: ClientId = ClientId(1_000);

/// Reads every key strongly (retrying until each succeeds), records the
/// reads in the history and returns what they saw.
pub async fn final_reads(
    client: &Client,
    keys: &[Vec<u8>],
    recorder: &Recorder,
) -> BTreeMap<Key, Option<(Vec<u8>, Version)>> {
    let deadline = Instant::now() + RECOVERY_BOUND;
    let mut seen = BTreeMap::new();
    for key in keys {
        loop {
            let pending = recorder.invoke(FINAL_READER, key.clone(), Op::Read);
            match client.get(key).await {
                Ok(value) => {
                    let value = value.map(|v| (v.value, Version(v.version.0)));
                    pending.complete(Outcome::Ok(Output::Read(value.clone())));
                    seen.insert(key.clone(), value);
                    break;
                }
                Err(e) => {
                    pending.complete(Outcome::Fail);
                    assert!(Instant::now() < deadline, "final read of a key failed: {e}");
                }
            }
        }
    }
    seen
}

/// What the end-of-run checks found in a history.
pub struct Findings {
    /// Recorded operations by outcome.
    pub ops: Summary,
    /// Keys found not linearizable.
    pub violations: usize,
    /// Keys the checker could not decide.
    pub inconclusive: usize,
    /// Acknowledged writes missing from the final state.
    pub lost_writes: Vec<String>,
    /// The checker's explanation and the first lost writes, when something failed.
    pub details: String,
}

/// Reads every workload key with `client` ([`final_reads`]), then checks the whole
/// history for linearizability and lost acknowledged writes.
pub async fn check_run(client: &Client, keys: &[Vec<u8>], recorder: &Recorder) -> Findings {
    let finals = final_reads(client, keys, recorder).await;
    let history = recorder.history();
    let checked = check(&history, &CheckConfig::default());
    let lost = lost_writes(&history, &finals);
    let mut details = String::new();
    if !checked.is_linearizable() {
        details.push_str(&checked.to_string());
    }
    for line in lost.iter().take(10) {
        details.push_str(&format!("lost write: {line}\n"));
    }
    Findings {
        ops: history.summary(),
        violations: checked.violations().count(),
        inconclusive: checked.inconclusive().count(),
        lost_writes: lost,
        details,
    }
}

/// Acknowledged writes that the final state does not reflect: the final
/// version is older than the write's, or equal with another value.
pub fn lost_writes(
    history: &History,
    finals: &BTreeMap<Key, Option<(Vec<u8>, Version)>>,
) -> Vec<String> {
    let mut lost = Vec::new();
    for op in history.operations() {
        let value = match &op.op {
            Op::Write(v) | Op::Cas { new: v, .. } => v,
            _ => continue,
        };
        let Outcome::Ok(Output::Applied(version)) = op.outcome else {
            continue;
        };
        let Some(last) = finals.get(&op.key) else {
            continue;
        };
        let (final_value, final_version) = last
            .as_ref()
            .map_or((None, Version::ABSENT), |(v, ver)| (Some(v), *ver));
        if version > final_version || (version == final_version && final_value != Some(value)) {
            lost.push(format!(
                "{} {} acknowledged at {version}, final {final_version}",
                op.id, op.op
            ));
        }
    }
    lost
}

/// Sends writes with a wrong shard epoch straight to shard leaders until
/// stopped, counting those a node served instead of refusing.
pub struct EpochProbe {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EpochProbe {
    /// Starts probing with routes from `client`'s map.
    pub fn start(client: Client) -> EpochProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(probe(client, stop.clone(), served.clone()));
        EpochProbe { stop, served, task }
    }

    /// Stops probing; returns how many wrong-epoch writes were served.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.served.load(Ordering::Relaxed)
    }
}

async fn probe(client: Client, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    let key = b"epoch-probe".to_vec();
    while !stop.load(Ordering::Relaxed) {
        let map = client.cache().current();
        let route = map
            .shards
            .values()
            .find(|s| s.contains(slot(&key)))
            .and_then(|s| {
                let leader = map.address(s.leader?)?;
                Some((s.id, s.epoch, leader.to_owned()))
            });
        if let Some((shard, epoch, leader)) = route
            && let Ok(mut node) = KvNodeClient::connect(format!("http://{leader}")).await
        {
            let request = pb::NodePutRequest {
                target: Some(pb::ShardTarget {
                    shard_id: shard.0,
                    epoch: epoch.0 + 7,
                }),
                request: Some(pb::PutRequest {
                    key: key.clone().into(),
                    value: b"wrong epoch".to_vec().into(),
                    ..Default::default()
                }),
            };
            let call = node.put(request);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), call).await {
                served.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
