//! The load loop: `concurrency` workers, each a task that sends one request at a time and
//! waits for its answer, until the phase's request budget is spent. Workers share only a
//! request counter; each keeps its own [`Tally`], merged once at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::pb::kv_client::KvClient;
use crate::pb::{PutRequest, RangeRequest};
use crate::report::{Outcome, Tally, latency_histogram};
use crate::{Args, BenchOp, DriverError};

/// Which key each request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// Drawn uniformly from the key space.
    Random,
    /// The request's sequence number: every key once, for a preload.
    Sequential,
}

/// Everything a phase's workers share.
#[derive(Debug)]
pub struct Phase {
    op: BenchOp,
    order: KeyOrder,
    key_prefix: String,
    key_space: u64,
    value: Bytes,
    serializable: bool,
    requests: u64,
    timeout: Duration,
    /// Seeds worker `i`'s generator with `seed + i`.
    seed: u64,
    issued: AtomicU64,
}

impl Phase {
    /// A phase of `requests` requests of `op` as `args` describe them.
    pub fn new(
        args: &Args,
        op: BenchOp,
        order: KeyOrder,
        requests: u64,
        seed: u64,
        timeout: Duration,
    ) -> Arc<Phase> {
        Arc::new(Phase {
            op,
            order,
            key_prefix: args.key_prefix.clone(),
            key_space: args.key_space.max(1),
            value: value(args.value_size, seed),
            serializable: args.serializable,
            requests,
            timeout,
            seed,
            issued: AtomicU64::new(0),
        })
    }

    /// Claims the next request's sequence number, or `None` once the budget is spent.
    fn claim(&self) -> Option<u64> {
        let seq = self.issued.fetch_add(1, Ordering::Relaxed);
        (seq < self.requests).then_some(seq)
    }

    fn key(&self, seq: u64, rng: &mut StdRng) -> Bytes {
        let index = match self.order {
            KeyOrder::Random if self.key_space > 1 => rng.random_range(0..self.key_space),
            KeyOrder::Random => 0,
            KeyOrder::Sequential => seq % self.key_space,
        };
        Bytes::from(format!("{}{index}", self.key_prefix))
    }
}

/// `size` printable bytes drawn from `seed`.
fn value(size: usize, seed: u64) -> Bytes {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..size)
        .map(|_| rng.random_range(b'a'..=b'z'))
        .collect::<Vec<u8>>()
        .into()
}

/// Runs `phase` with `concurrency` workers spread over `clients` (worker `i` uses client
/// `i % clients.len()`); returns the merged tally and the phase's wall-clock time.
pub async fn run(
    clients: &[KvClient<Channel>],
    concurrency: usize,
    phase: Arc<Phase>,
) -> Result<(Tally, Duration), DriverError> {
    let empty = latency_histogram()?;
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .zip(clients.iter().cycle())
        .map(|(i, client)| {
            let worker = Worker {
                client: client.clone(),
                phase: phase.clone(),
                rng: StdRng::seed_from_u64(phase.seed.wrapping_add(i as u64)),
                tally: Tally::new(empty.clone()),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let mut total = Tally::new(empty);
    for worker in workers {
        total.merge(&worker.await?)?;
    }
    Ok((total, start.elapsed()))
}

/// One closed-loop worker.
struct Worker {
    client: KvClient<Channel>,
    phase: Arc<Phase>,
    rng: StdRng,
    tally: Tally,
}

impl Worker {
    async fn run(mut self) -> Tally {
        let phase = self.phase.clone();
        while let Some(seq) = phase.claim() {
            let key = phase.key(seq, &mut self.rng);
            let start = Instant::now();
            let outcome = tokio::time::timeout(phase.timeout, self.send(key)).await;
            let outcome = outcome.unwrap_or(Outcome::Deadline);
            self.tally.record(phase.op, start.elapsed(), outcome);
        }
        self.tally
    }

    async fn send(&mut self, key: Bytes) -> Outcome {
        let phase = &self.phase;
        match phase.op {
            BenchOp::Put => {
                let request = PutRequest {
                    key,
                    value: phase.value.clone(),
                };
                match self.client.put(request).await {
                    Ok(_) => Outcome::Ok { found: true },
                    Err(status) => Outcome::Failed(status),
                }
            }
            BenchOp::Get => {
                let request = RangeRequest {
                    key,
                    serializable: phase.serializable,
                };
                match self.client.range(request).await {
                    Ok(response) => Outcome::Ok {
                        found: !response.get_ref().kvs.is_empty(),
                    },
                    Err(status) => Outcome::Failed(status),
                }
            }
        }
    }
}
