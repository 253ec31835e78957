//! The load loop: `concurrency` workers, each a task that sends one request at a time and
//! waits for its answer (closed loop, as ghz and etcd's benchmark tool do), until the run's
//! budget of requests or time is spent. Workers share nothing but two counters; each keeps its
//! own [`Tally`], merged once at the end, so measuring costs no locks.
//!
//! Generic over the client ([`Kv`]), so the gateway client and the smart client run the very
//! same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvdb_client::{GetOptions, Kv, PutOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::BenchError;
use super::report::{Tally, latency_histogram};
use super::workload::{KeySpace, Op, OpMix};

/// When a phase stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// After this many requests in all.
    Requests(u64),
    /// Once this much time has passed since the phase started; requests in flight finish.
    Time(Duration),
}

/// Which key each request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// Drawn uniformly from the key space.
    Random,
    /// The request's sequence number (wrapped into the key space): every key once, for a
    /// preload.
    Sequential,
}

/// Everything a phase's workers share.
pub struct Phase {
    pub mix: OpMix,
    pub keys: KeySpace,
    pub order: KeyOrder,
    pub value: Arc<[u8]>,
    pub get_options: GetOptions,
    pub put_options: PutOptions,
    pub budget: Budget,
    /// Seeds worker `i`'s generator with `seed + i`.
    pub seed: u64,
}

/// The counters a phase's workers share; `done` also feeds the progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    issued: AtomicU64,
    done: AtomicU64,
}

impl Counters {
    /// Requests answered so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Claims the next request's sequence number, or `None` once the budget is spent.
    fn claim(&self, budget: Budget, deadline: Instant) -> Option<u64> {
        match budget {
            Budget::Requests(total) => {
                let seq = self.issued.fetch_add(1, Ordering::Relaxed);
                (seq < total).then_some(seq)
            }
            Budget::Time(_) => {
                (Instant::now() < deadline).then(|| self.issued.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

/// Runs `phase` with `concurrency` workers spread over `clients` (worker `i` uses client
/// `i % clients.len()`), and returns the merged tally and the phase's wall-clock time.
pub async fn run<K: Kv + Clone + 'static>(
    clients: &[K],
    concurrency: usize,
    phase: Arc<Phase>,
    counters: Arc<Counters>,
) -> Result<(Tally, Duration), BenchError> {
    let empty = latency_histogram()?;
    let start = Instant::now();
    let deadline = match phase.budget {
        Budget::Requests(_) => start,
        Budget::Time(length) => start + length,
    };
    let workers: Vec<_> = (0..concurrency)
        .zip(clients.iter().cycle())
        .map(|(i, client)| {
            let worker = Worker {
                client: client.clone(),
                phase: phase.clone(),
                counters: counters.clone(),
                rng: StdRng::seed_from_u64(phase.seed.wrapping_add(i as u64)),
                tally: Tally::new(empty.clone()),
            };
            tokio::spawn(worker.run(deadline))
        })
        .collect();
    let mut total = Tally::new(empty);
    for worker in workers {
        total.merge(&worker.await.map_err(BenchError::Worker)?)?;
    }
    Ok((total, start.elapsed()))
}

/// One closed-loop worker.
struct Worker<K> {
    client: K,
    phase: Arc<Phase>,
    counters: Arc<Counters>,
    rng: StdRng,
    tally: Tally,
}

impl<K: Kv> Worker<K> {
    async fn run(mut self, deadline: Instant) -> Tally {
        let phase = self.phase.clone();
        let mut key = Vec::new();
        while let Some(seq) = self.counters.claim(phase.budget, deadline) {
            let index = match phase.order {
                KeyOrder::Random => phase.keys.pick(&mut self.rng),
                KeyOrder::Sequential => seq,
            };
            phase.keys.write_key(index, &mut key);
            let op = phase.mix.pick(&mut self.rng);
            let start = Instant::now();
            let outcome = match op {
                Op::Get => {
                    let options = phase.get_options.clone();
                    self.client
                        .get_with(&key, options)
                        .await
                        .map(|v| v.is_some())
                }
                Op::Put => {
                    let options = phase.put_options.clone();
                    self.client
                        .put_with(&key, &phase.value, options)
                        .await
                        .map(|_| true)
                }
            };
            self.tally
                .record(op, start.elapsed(), outcome.as_ref().copied());
            self.counters.done.fetch_add(1, Ordering::Relaxed);
        }
        self.tally
    }
}

#[cfg(test)]
mod tests;
