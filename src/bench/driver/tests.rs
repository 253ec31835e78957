use std::collections::HashMap;
use std::sync::Mutex;

use kvdb_client::{Action, ClientError, DeleteOptions, UpdateOptions, Updated, Value};
use kvdb_core::Version;
use kvdb_core::error::KvError;

use super::*;

/// An in-memory store that fails every `fail_every`-th request (never when 0).
#[derive(Clone, Default)]
struct FakeKv {
    data: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
    calls: Arc<AtomicU64>,
    fail_every: u64,
}

impl FakeKv {
    /// Yields like a network round trip would, then fails every `fail_every`-th call.
    async fn call(&self) -> Result<(), ClientError> {
        tokio::task::yield_now().await;
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_every != 0 && call.is_multiple_of(self.fail_every) {
            return Err(ClientError::Kv(KvError::Unavailable("fake".into())));
        }
        Ok(())
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<_> = self.data.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl Kv for FakeKv {
    async fn get_with(&self, key: &[u8], _: GetOptions) -> Result<Option<Value>, ClientError> {
        self.call().await?;
        let data = self.data.lock().unwrap();
        Ok(data.get(key).map(|v| Value {
            value: v.clone(),
            version: Version(1),
            expires_at_ms: None,
            hash: None,
            hash_len: None,
        }))
    }

    async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        _: PutOptions,
    ) -> Result<Version, ClientError> {
        self.call().await?;
        self.data
            .lock()
            .unwrap()
            .insert(key.to_vec(), value.to_vec());
        Ok(Version(1))
    }

    async fn delete_with(&self, key: &[u8], _: DeleteOptions) -> Result<bool, ClientError> {
        Ok(self.data.lock().unwrap().remove(key).is_some())
    }

    async fn update_with(
        &self,
        _: &[u8],
        _: Action,
        _: UpdateOptions,
    ) -> Result<Updated, ClientError> {
        Err(KvError::Internal("the benchmark never updates".into()).into())
    }

    async fn txn_with(
        &self,
        _: &kvdb_client::Txn,
        _: UpdateOptions,
    ) -> Result<Option<Vec<kvdb_client::TxnReply>>, ClientError> {
        Err(KvError::Internal("the benchmark runs no transactions".into()).into())
    }

    async fn scan(
        &self,
        _: &kvdb_client::ScanCursor,
        _: u32,
    ) -> Result<kvdb_client::ScanPage, ClientError> {
        Err(KvError::Internal("the benchmark never scans".into()).into())
    }
}

fn phase(mix: OpMix, keys: u64, order: KeyOrder, budget: Budget) -> Arc<Phase> {
    Arc::new(Phase {
        mix,
        keys: KeySpace::new("k", keys),
        order,
        value: Arc::from(&b"value"[..]),
        get_options: GetOptions::default(),
        put_options: PutOptions::default(),
        budget,
        seed: 7,
    })
}

async fn run_phase(clients: &[FakeKv], concurrency: usize, phase: Arc<Phase>) -> Tally {
    let counters = Arc::new(Counters::default());
    let (tally, _) = run(clients, concurrency, phase, counters.clone())
        .await
        .unwrap();
    assert_eq!(
        counters.done(),
        tally.requests(),
        "progress counts every answer"
    );
    tally
}

#[tokio::test]
async fn a_request_budget_is_spent_exactly() {
    let kv = FakeKv::default();
    let tally = run_phase(
        &[kv],
        8,
        phase(OpMix::PUT, 100, KeyOrder::Random, Budget::Requests(1000)),
    )
    .await;
    assert_eq!((tally.requests(), tally.puts), (1000, 1000));
    assert_eq!(tally.latency.len(), 1000);
    assert_eq!(tally.errors.total(), 0);
}

#[tokio::test]
async fn a_sequential_phase_writes_every_key_once() {
    let kv = FakeKv::default();
    let preload = phase(OpMix::PUT, 50, KeyOrder::Sequential, Budget::Requests(50));
    run_phase(std::slice::from_ref(&kv), 4, preload).await;
    assert_eq!(kv.keys().len(), 50);
    assert_eq!(kv.calls.load(Ordering::Relaxed), 50);
    // After the preload every get finds its key.
    let gets = run_phase(
        &[kv],
        4,
        phase(OpMix::GET, 50, KeyOrder::Random, Budget::Requests(200)),
    )
    .await;
    assert_eq!((gets.gets, gets.misses), (200, 0));
}

#[tokio::test]
async fn gets_without_a_preload_miss() {
    let kv = FakeKv::default();
    let tally = run_phase(
        &[kv],
        2,
        phase(OpMix::GET, 10, KeyOrder::Random, Budget::Requests(20)),
    )
    .await;
    assert_eq!((tally.gets, tally.misses), (20, 20));
}

#[tokio::test]
async fn a_hot_key_phase_touches_one_key() {
    let kv = FakeKv::default();
    run_phase(
        std::slice::from_ref(&kv),
        8,
        phase(OpMix::PUT, 1, KeyOrder::Random, Budget::Requests(100)),
    )
    .await;
    assert_eq!(kv.keys(), [b"k0".to_vec()]);
}

#[tokio::test]
async fn failures_are_counted_by_kind_and_timed() {
    let kv = FakeKv {
        fail_every: 4,
        ..FakeKv::default()
    };
    let tally = run_phase(
        &[kv],
        3,
        phase(
            OpMix::mixed(0.5),
            10,
            KeyOrder::Random,
            Budget::Requests(400),
        ),
    )
    .await;
    assert_eq!(tally.errors.unavailable, 100);
    assert_eq!(tally.errors.total(), 100);
    assert_eq!(tally.latency.len(), 400);
    assert_eq!(tally.first_error.as_deref(), Some("unavailable: fake"));
}

#[tokio::test]
async fn workers_spread_over_every_client() {
    let clients: Vec<FakeKv> = (0..3).map(|_| FakeKv::default()).collect();
    run_phase(
        &clients,
        6,
        phase(OpMix::PUT, 1000, KeyOrder::Random, Budget::Requests(600)),
    )
    .await;
    for client in &clients {
        assert!(
            client.calls.load(Ordering::Relaxed) > 0,
            "every client is used"
        );
    }
}

#[tokio::test]
async fn a_time_budget_stops_the_phase() {
    let kv = FakeKv::default();
    let budget = Budget::Time(Duration::from_millis(50));
    let counters = Arc::new(Counters::default());
    let (tally, elapsed) = run(
        &[kv],
        4,
        phase(OpMix::PUT, 10, KeyOrder::Random, budget),
        counters,
    )
    .await
    .unwrap();
    assert!(tally.requests() > 0);
    assert!(elapsed >= Duration::from_millis(50), "ran {elapsed:?}");
}
