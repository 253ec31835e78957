//! A shard leader dies during a write loop: every write the client reports
//! as successful is readable afterwards with its value and version, every
//! failure is a typed error, and the longest stall is reported.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvdb::core::{NodeId, ShardId, Version};
use kvdb_client::{Client, ClientError, Kv, PutOptions};

use common::{TestCluster, node_index, shard_of, wait_until};

const WRITERS: usize = 8;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes before the kill, and after it once the shards have new leaders.
const WRITES_EACH_SIDE: u64 = 200;

/// One write and what the client reported about it.
struct Write {
    key: Vec<u8>,
    value: Vec<u8>,
    result: Result<Version, ClientError>,
}

/// What the writers saw.
#[derive(Default)]
struct Log {
    writes: Mutex<Vec<Write>>,
    successes: AtomicU64,
    /// The longest time between two successive successes, and the last one.
    stall: Mutex<(Duration, Option<Instant>)>,
    stop: AtomicBool,
}

impl Log {
    fn record(&self, write: Write) {
        if write.result.is_ok() {
            let now = Instant::now();
            let mut stall = self.stall.lock().unwrap();
            if let Some(last) = stall.1 {
                stall.0 = stall.0.max(now - last);
            }
            stall.1 = Some(now);
            self.successes.fetch_add(1, Ordering::SeqCst);
        }
        self.writes.lock().unwrap().push(write);
    }

    fn successes(&self) -> u64 {
        self.successes.load(Ordering::SeqCst)
    }
}

/// Writes fresh keys of `shards` until told to stop.
async fn writer(client: Client, id: usize, shards: BTreeSet<ShardId>, log: Arc<Log>) {
    let map = client.cache().current();
    let keys = (0u64..)
        .map(|n| format!("failover-{id}-{n}").into_bytes())
        .filter(|k| shards.contains(&shard_of(&map, k)));
    for key in keys {
        if log.stop.load(Ordering::SeqCst) {
            return;
        }
        let value = [b"value of ".as_slice(), &key].concat();
        let options = PutOptions {
            timeout: Some(WRITE_TIMEOUT),
            ..PutOptions::default()
        };
        let result = client.put_with(&key, &value, options).await;
        log.record(Write { key, value, result });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_leader_kill() {
    let mut test = TestCluster::start(3).await;
    let client = test.cluster.client().await.unwrap();

    // --- pick a victim: the leader of shard 0, and every shard it leads
    let map = test.cluster.coordinator().map();
    let first = map.shards.keys().next().copied().unwrap();
    let victim_id: NodeId = map.shards[&first].leader.unwrap();
    let victim = node_index(&test.cluster, victim_id).unwrap();
    let led: BTreeSet<ShardId> = map
        .shards
        .values()
        .filter(|s| s.leader == Some(victim_id))
        .map(|s| s.id)
        .collect();
    eprintln!("killing node {victim_id}, leader of shards {led:?}");

    // --- write to the victim's shards
    let log = Arc::new(Log::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(client.clone(), id, led.clone(), log.clone())))
        .collect();
    wait_until("writes before the kill", || {
        log.successes() >= WRITES_EACH_SIDE
    })
    .await;

    // --- kill the leader mid-loop
    let before = log.successes();
    let killed_at = Instant::now();
    test.cluster.stop_node(victim).await;
    eprintln!("node stopped in {:?}", killed_at.elapsed());
    wait_until("new leaders and writes after the kill", || {
        let map = test.cluster.coordinator().map();
        let moved = led
            .iter()
            .all(|s| map.shards[s].leader.is_some_and(|l| l != victim_id));
        moved && log.successes() >= before + WRITES_EACH_SIDE
    })
    .await;
    log.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    // --- report: the longest stall, the failures
    let (acked, failed): (Vec<Write>, Vec<Write>) =
        std::mem::take(&mut *log.writes.lock().unwrap())
            .into_iter()
            .partition(|w| w.result.is_ok());
    let longest = log.stall.lock().unwrap().0;
    eprintln!(
        "leader kill: {} writes acknowledged, {} failed, longest stall {longest:?}",
        acked.len(),
        failed.len()
    );
    for Write { key, result, .. } in &failed {
        let error = result.as_ref().unwrap_err();
        eprintln!("  failed {}: {error}", String::from_utf8_lossy(key));
        assert!(
            error.is_unavailable(),
            "a write failed with an unexpected kind of error: {error:?}"
        );
    }

    // --- every acknowledged write is there, with its value and version
    let reader = test.cluster.client().await.unwrap();
    for Write { key, value, result } in &acked {
        let got = reader.get(key).await.unwrap();
        let got = got.unwrap_or_else(|| panic!("acked {:?} is lost", String::from_utf8_lossy(key)));
        assert_eq!(
            (&got.value, got.version),
            (value, *result.as_ref().unwrap())
        );
    }
    // A failed write may or may not have been applied, but never garbled.
    for Write { key, value, .. } in &failed {
        if let Some(got) = reader.get(key).await.unwrap() {
            assert_eq!(&got.value, value);
        }
    }

    test.stop().await;
}
