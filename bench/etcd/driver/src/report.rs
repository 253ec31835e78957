//! What a run measured and how it is shown. The JSON form has the same field names as
//! `kvdb bench --json`, so one table script reads both.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::errors::{AdditionError, CreationError};
use serde::Serialize;
use tonic::{Code, Status};

use crate::{Args, BenchOp};

/// The slowest latency the histogram tells apart, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant decimal digits kept for each latency: 0.1% relative error.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram, in microseconds.
pub fn latency_histogram() -> Result<Histogram<u64>, CreationError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
}

/// How one request ended.
#[derive(Debug)]
pub enum Outcome {
    /// Answered; `found` tells whether a get found a value.
    Ok { found: bool },
    /// etcd answered with an error status.
    Failed(Status),
    /// `--timeout-ms` ran out.
    Deadline,
}

/// Failed requests by kind (the kinds of `kvdb bench`; etcd has no conditional put here).
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
    /// Latency of every request, failed ones included, in µs.
    latency: Histogram<u64>,
    gets: u64,
    puts: u64,
    misses: u64,
    pub errors: ErrorCounts,
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

    /// Records one request of `op` that took `took` and ended with `outcome`.
    pub fn record(&mut self, op: BenchOp, took: Duration, outcome: Outcome) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        match op {
            BenchOp::Get => self.gets += 1,
            BenchOp::Put => self.puts += 1,
        }
        match outcome {
            Outcome::Ok { found } => self.misses += u64::from(op == BenchOp::Get && !found),
            Outcome::Deadline => {
                self.errors.deadline += 1;
                self.first_error
                    .get_or_insert_with(|| "deadline exceeded".to_owned());
            }
            Outcome::Failed(status) => {
                let count = match status.code() {
                    Code::Unavailable => &mut self.errors.unavailable,
                    Code::DeadlineExceeded => &mut self.errors.deadline,
                    _ => &mut self.errors.other,
                };
                *count += 1;
                self.first_error.get_or_insert_with(|| status.to_string());
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
    fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        let empty = histogram.is_empty();
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        Latency {
            mean: if empty {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: if empty { 0.0 } else { ms(histogram.max()) },
        }
    }
}

/// How the run was set up, echoed in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    /// `put` or `get`.
    pub op: &'static str,
    /// Always `etcd`.
    pub target: &'static str,
    pub endpoints: Vec<String>,
    pub concurrency: usize,
    pub connections: usize,
    pub key_space: u64,
    pub value_size: usize,
    /// `linearizable` or `serializable`.
    pub consistency: &'static str,
    pub preload: bool,
}

impl Setup {
    /// The setup `args` describe.
    pub fn of(args: &Args) -> Setup {
        Setup {
            op: match args.op {
                BenchOp::Put => "put",
                BenchOp::Get => "get",
            },
            target: "etcd",
            endpoints: args.endpoints.clone(),
            concurrency: args.concurrency as usize,
            connections: args.connections as usize,
            key_space: args.key_space,
            value_size: args.value_size,
            consistency: if args.serializable {
                "serializable"
            } else {
                "linearizable"
            },
            preload: args.preload && args.op == BenchOp::Get,
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub setup: Setup,
    pub requests: u64,
    pub gets: u64,
    pub puts: u64,
    pub ok: u64,
    pub misses: u64,
    pub errors: ErrorCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Wall-clock time of the measured phase, in seconds.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    pub latency_ms: Latency,
}

impl Summary {
    /// Summarises a merged tally of a measured phase that took `elapsed`.
    pub fn new(setup: Setup, tally: &Tally, elapsed: Duration) -> Summary {
        let requests = tally.gets + tally.puts;
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
        writeln!(
            f,
            "{} via etcd {}: concurrency {}, {} connection(s), key space {}, {} B values, {} reads",
            s.op,
            s.endpoints.join(","),
            s.concurrency,
            s.connections,
            s.key_space,
            s.value_size,
            s.consistency,
        )?;
        writeln!(
            f,
            "  requests    {} ({} gets found nothing)",
            self.requests, self.misses
        )?;
        writeln!(f, "  errors      {}", self.errors.total())?;
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
