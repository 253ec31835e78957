//! The chaos workload: several logical clients doing strong reads, writes of
//! unique values and CAS on a small key set, every call recorded in a
//! kvdb-testkit [`Recorder`].
//!
//! Each logical client has at most one call in flight (the checker's
//! contract). Half of them use smart clients, half the gateway. Outcomes map
//! conservatively: only a routing refusal or a failed CAS condition is a
//! definite answer; any other error of a write is [`Outcome::Unknown`].
//!
//! Out of scope: deletes and TTLs (the lost-write check compares versions of
//! live values; TTL expiry is unobservable to the checker).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kvdb::core::Version as KvVersion;
use kvdb::core::error::KvError;
use kvdb_client::{ClientError, Kv};
use kvdb_testkit::{ClientId, Op, Outcome, Output, Recorder, Version};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::resp::{Counters, RespWorker};

/// Keys a workload works on unless told otherwise: few, so that each key's history is long.
pub const DEFAULT_KEYS: usize = 8;

/// The `count` keys every client of a workload works on.
pub fn keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|k| format!("chaos-{k}").into_bytes())
        .collect()
}

/// A running workload.
pub struct Workload {
    key_count: usize,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    recorder: Recorder,
    seed: u64,
    next_client: u64,
    /// Calls issued so far, over all clients.
    pub issued: Arc<AtomicU64>,
    /// What the Redis clients' increments should have left.
    pub counters: Arc<Counters>,
}

impl Workload {
    /// A workload over [`keys`]`(key_count)` recording into `recorder`, its clients seeded
    /// from `seed`.
    pub fn new(recorder: &Recorder, seed: u64, key_count: usize) -> Workload {
        Workload {
            key_count,
            stop: Arc::new(AtomicBool::new(false)),
            tasks: JoinSet::new(),
            recorder: recorder.clone(),
            seed,
            next_client: 0,
            issued: Arc::new(AtomicU64::new(0)),
            counters: Arc::default(),
        }
    }

    /// Starts one more logical client, speaking Redis to the RESP port at `address`.
    pub fn spawn_resp(&mut self, address: SocketAddr) {
        let id = self.next_client;
        self.next_client += 1;
        let worker = RespWorker::new(
            ClientId(id),
            address,
            self.recorder.clone(),
            self.seed.wrapping_add(id),
            keys(self.key_count),
            self.counters.clone(),
        );
        self.tasks
            .spawn(worker.run(self.stop.clone(), self.issued.clone()));
    }

    /// Starts one more logical client over `client`.
    pub fn spawn<C: Kv + 'static>(&mut self, client: C) {
        let worker = self.worker(client);
        self.tasks
            .spawn(worker.run(self.stop.clone(), self.issued.clone()));
    }

    /// A new recorded logical client over `client`.
    fn worker<C: Kv>(&mut self, client: C) -> Worker<C> {
        let id = self.next_client;
        self.next_client += 1;
        Worker {
            id: ClientId(id),
            client,
            recorder: self.recorder.clone(),
            rng: StdRng::seed_from_u64(self.seed.wrapping_add(id)),
            keys: keys(self.key_count),
            seen: vec![Version::ABSENT; self.key_count],
            written: 0,
        }
    }

    /// Reads every key once, in order, through `client`, as one more recorded client: a
    /// check that the state right now holds every acknowledged write.
    pub async fn read_every_key<C: Kv>(&mut self, client: C) {
        let mut worker = self.worker(client);
        for k in 0..self.key_count {
            worker.read(k).await;
        }
    }

    /// Stops every client after its current call.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("workload client panicked");
        }
    }
}

struct Worker<C> {
    id: ClientId,
    client: C,
    recorder: Recorder,
    rng: StdRng,
    keys: Vec<Vec<u8>>,
    /// The last version this client saw per key, the base of its CAS.
    seen: Vec<Version>,
    written: u64,
}

impl<C: Kv> Worker<C> {
    async fn run(mut self, stop: Arc<AtomicBool>, issued: Arc<AtomicU64>) {
        while !stop.load(Ordering::Relaxed) {
            let k = self.rng.random_range(0..self.keys.len());
            let roll = self.rng.random_range(0..10);
            issued.fetch_add(1, Ordering::Relaxed);
            match roll {
                0..5 => self.read(k).await,
                5..8 => self.write(k, None).await,
                _ => self.write(k, Some(self.seen[k])).await,
            }
        }
    }

    async fn read(&mut self, k: usize) {
        let pending = self
            .recorder
            .invoke(self.id, self.keys[k].clone(), Op::Read);
        let outcome = match self.client.get(&self.keys[k]).await {
            Ok(Some(v)) => {
                self.seen[k] = Version(v.version.0);
                Outcome::Ok(Output::read(v.value, v.version.0))
            }
            Ok(None) => {
                self.seen[k] = Version::ABSENT;
                Outcome::Ok(Output::absent())
            }
            Err(_) => Outcome::Fail,
        };
        pending.complete(outcome);
    }

    async fn write(&mut self, k: usize, expected: Option<Version>) {
        self.written += 1;
        let value = format!("{}-{}", self.id, self.written).into_bytes();
        let op = match expected {
            Some(e) => Op::Cas {
                expected: e,
                new: value.clone(),
            },
            None => Op::Write(value.clone()),
        };
        let key = self.keys[k].clone();
        let pending = self.recorder.invoke(self.id, key.clone(), op);
        let result = match expected {
            Some(e) => {
                self.client
                    .compare_and_swap(&key, KvVersion(e.0), &value)
                    .await
            }
            None => self.client.put(&key, &value).await,
        };
        let outcome = match result {
            Ok(version) => {
                self.seen[k] = Version(version.0);
                Outcome::Ok(Output::applied(version.0))
            }
            Err(ClientError::ConditionFailed { current }) => {
                self.seen[k] = Version(current.0);
                Outcome::Ok(Output::Rejected {
                    current: Version(current.0),
                })
            }
            Err(e) if is_definite_failure(&e) => Outcome::Fail,
            Err(_) => Outcome::Unknown,
        };
        pending.complete(outcome);
    }
}

/// Errors that prove a write was never proposed.
fn is_definite_failure(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Kv(KvError::InvalidArgument(_)) | ClientError::BadEndpoint { .. }
    )
}
