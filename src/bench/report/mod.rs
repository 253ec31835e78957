//! What a run measured, and how it is shown: the latency histogram and counters every worker
//! fills ([`Tally`]), merged and summarised into a [`Summary`] that prints as a short text
//! report or as one JSON object.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::errors::{AdditionError, CreationError};
use kvdb_client::ClientError;
use kvdb_core::error::KvError;
use serde::Serialize;

use super::workload::Op;

/// The slowest latency the histogram tells apart, in microseconds; slower ones are recorded
/// as this. A minute is far past any sane `--timeout`.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant decimal digits kept for each latency: 0.1% relative error.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram, in microseconds.
pub fn latency_histogram() -> Result<Histogram<u64>, CreationError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
}

/// Why a request failed, as the report groups failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A put condition did not hold (never for the unconditional puts the bench sends, so any
    /// count here points at a bug).
    ConditionFailed,
    /// The cluster could not be reached or could not route the request.
    Unavailable,
    /// `--timeout` ran out, retries included.
    Deadline,
    /// Anything else: bad input, an internal error.
    Other,
}

impl ErrorKind {
    /// The kind of `error`.
    pub fn of(error: &ClientError) -> ErrorKind {
        match error {
            ClientError::ConditionFailed { .. } => ErrorKind::ConditionFailed,
            ClientError::Kv(KvError::DeadlineExceeded) => ErrorKind::Deadline,
            e if e.is_unavailable() => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }
}

/// Failed requests by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub condition_failed: u64,
    pub unavailable: u64,
    pub deadline: u64,
    pub other: u64,
}

impl ErrorCounts {
    /// All failed requests.
    pub fn total(&self) -> u64 {
        self.condition_failed + self.unavailable + self.deadline + self.other
    }

    fn add(&mut self, kind: ErrorKind) {
        let count = match kind {
            ErrorKind::ConditionFailed => &mut self.condition_failed,
            ErrorKind::Unavailable => &mut self.unavailable,
            ErrorKind::Deadline => &mut self.deadline,
            ErrorKind::Other => &mut self.other,
        };
        *count += 1;
    }

    fn merge(&mut self, other: &ErrorCounts) {
        self.condition_failed += other.condition_failed;
        self.unavailable += other.unavailable;
        self.deadline += other.deadline;
        self.other += other.other;
    }
}

/// What one worker (or, merged, the whole run) saw.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency of every request, failed ones included (so timeouts are not hidden), in µs.
    pub latency: Histogram<u64>,
    pub gets: u64,
    pub puts: u64,
    /// Gets that found no value.
    pub misses: u64,
    pub errors: ErrorCounts,
    /// The first error seen, to show why requests fail.
    pub first_error: Option<String>,
}

impl Tally {
    /// An empty tally over `latency`, an empty histogram from [`latency_histogram`].
    pub fn new(latency: Histogram<u64>) -> Tally {
        Tally {
            latency,
            gets: 0,
            puts: 0,
            misses: 0,
            errors: ErrorCounts::default(),
            first_error: None,
        }
    }

    /// Records one request: its operation, how long it took, and whether it succeeded
    /// (`Ok(found)`; `found` only matters for gets).
    pub fn record(&mut self, op: Op, took: Duration, outcome: Result<bool, &ClientError>) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        match op {
            Op::Get => self.gets += 1,
            Op::Put => self.puts += 1,
        }
        match outcome {
            Ok(found) => self.misses += u64::from(op == Op::Get && !found),
            Err(e) => {
                self.errors.add(ErrorKind::of(e));
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Adds `other`'s requests to this tally.
    pub fn merge(&mut self, other: &Tally) -> Result<(), AdditionError> {
        self.latency.add(&other.latency)?;
        self.gets += other.gets;
        self.puts += other.puts;
        self.misses += other.misses;
        self.errors.merge(&other.errors);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }

    /// Every request recorded.
    pub fn requests(&self) -> u64 {
        self.gets + self.puts
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram in microseconds; all zero when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Latency {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Latency {
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// How the run was set up, echoed in the report so that a saved result explains itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    /// `put`, `get` or `mixed`.
    pub op: &'static str,
    /// Share of gets, for `mixed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_ratio: Option<f64>,
    /// `gateway` or `smart`.
    pub target: &'static str,
    /// The gateway address, or the coordinator addresses.
    pub endpoints: Vec<String>,
    /// Closed-loop workers, each with one request in flight.
    pub concurrency: usize,
    /// Clients the workers are spread over.
    pub connections: usize,
    /// Distinct keys.
    pub key_space: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// `strong` or `eventual`.
    pub consistency: &'static str,
    /// Whether every key was written once before the measured phase.
    pub preload: bool,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The run's setup; flattened into the JSON object.
    #[serde(flatten)]
    pub setup: Setup,
    /// Requests sent (succeeded or failed).
    pub requests: u64,
    /// Gets sent.
    pub gets: u64,
    /// Puts sent.
    pub puts: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Gets that found no value (they count as successes).
    pub misses: u64,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// The first failure's message, to show why requests fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Wall-clock time of the measured phase, in seconds.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of all requests, failed ones included.
    pub latency_ms: Latency,
}

impl Summary {
    /// Summarises a merged tally of a measured phase that took `elapsed`.
    pub fn new(setup: Setup, tally: &Tally, elapsed: Duration) -> Summary {
        let requests = tally.requests();
        let ok = requests - tally.errors.total();
        let secs = elapsed.as_secs_f64();
        Summary {
            setup,
            requests,
            gets: tally.gets,
            puts: tally.puts,
            ok,
            misses: tally.misses,
            errors: tally.errors.clone(),
            first_error: tally.first_error.clone(),
            elapsed_s: secs,
            throughput: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            latency_ms: Latency::of(&tally.latency),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.setup;
        let ratio = s
            .get_ratio
            .map(|r| format!(" ({:.0}% gets)", r * 100.0))
            .unwrap_or_default();
        writeln!(
            f,
            "{}{ratio} via {} {}: concurrency {}, {} connection(s), key space {}, {} B values, {} reads",
            s.op,
            s.target,
            s.endpoints.join(","),
            s.concurrency,
            s.connections,
            s.key_space,
            s.value_size,
            s.consistency,
        )?;
        let e = &self.errors;
        writeln!(
            f,
            "  requests    {} ({} gets, {} puts)",
            self.requests, self.gets, self.puts
        )?;
        writeln!(
            f,
            "  ok          {} ({} gets found nothing)",
            self.ok, self.misses
        )?;
        writeln!(
            f,
            "  errors      {}: condition failed {}, unavailable {}, deadline {}, other {}",
            e.total(),
            e.condition_failed,
            e.unavailable,
            e.deadline,
            e.other
        )?;
        if let Some(error) = &self.first_error {
            writeln!(f, "  first error {error}")?;
        }
        writeln!(f, "  elapsed     {:.3} s", self.elapsed_s)?;
        writeln!(f, "  throughput  {:.0} ops/s", self.throughput)?;
        let l = &self.latency_ms;
        write!(
            f,
            "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )
    }
}

#[cfg(test)]
mod tests;
