//! `kvdb bench`: a closed-loop load generator for a running cluster.
//!
//! `concurrency` workers each send one request at a time (put, get, or a seeded mix) over a
//! key space of `{key-prefix}0..{key-prefix}{N-1}` with values of a fixed size, through the
//! gateway or the smart client, until `--requests` are done or `--duration` has passed.
//! Latencies of every request (failed ones included) go into per-worker HDR histograms merged
//! at the end; the report gives throughput, p50/p90/p99/p99.9/max, and failures by kind, as
//! text or (`--json`) one JSON object. Both clients run the same generic code (`driver`).
//!
//! Target: the gateway at `--gateway` by default; the smart client when `--smart` is given or
//! `--coordinators` is set (then `--gateway` is ignored; `--smart` alone uses the default
//! coordinator address).
//!
//! Exit codes: 0 every request succeeded; 1 some failed (the report is still printed);
//! 4 the cluster could not be reached (as the client commands); 5 any other failure.
//!
//! Out of scope: open-loop (fixed-rate) load, per-operation histograms for `mixed` (one
//! histogram covers both), and starting a cluster (`make bench` does that).
//!
//! # Layout
//! - `workload`: operation mix, key space, values.
//! - `driver`: the workers and their budget.
//! - `report`: tallies, error kinds, the summary and its text and JSON forms.
//! - `progress`: the progress bar.

mod driver;
mod progress;
mod report;
mod workload;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kvdb_client::{
    Client, ClientError, Consistency, ExecutorConfig, GatewayClient, GetOptions, Kv, KvError,
    PutOptions,
};
use kvdb_core::auth::Credentials;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::args::{ConsistencyArg, DEFAULT_COORDINATOR, DEFAULT_GATEWAY, parse_duration};
use driver::{Budget, Counters, KeyOrder, Phase};
use progress::Progress;
pub use report::{Setup, Summary};
use workload::{KeySpace, OpMix};

/// Exit code: some requests failed.
const EXIT_FAILED_REQUESTS: u8 = 1;
/// Exit code: the cluster could not be reached (as the client commands).
const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: any other failure.
const EXIT_ERROR: u8 = 5;

/// Which requests to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// Unconditional puts.
    Put,
    /// Reads (use `--preload` so that they find values).
    Get,
    /// Gets with probability `--get-ratio`, puts otherwise.
    Mixed,
}

/// Flags of `kvdb bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Operation to send.
    #[arg(long, value_enum, default_value = "put")]
    pub op: BenchOp,
    /// Share of gets for --op mixed, from 0 to 1.
    #[arg(long, value_parser = parse_ratio, default_value = "0.5")]
    pub get_ratio: f64,
    /// Concurrent requests in flight (closed-loop workers).
    #[arg(short = 'c', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Total requests to send.
    #[arg(short = 'n', long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,
    /// Run for this long instead of a number of requests (e.g. 30s).
    #[arg(long, value_parser = parse_positive_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Distinct keys; 1 is one hot key (all load on one shard).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space: u64,
    /// Key names are this prefix followed by a number.
    #[arg(long, default_value = "bench-")]
    pub key_prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Read consistency.
    #[arg(long, value_enum, default_value = "strong")]
    pub consistency: ConsistencyArg,
    /// Gateway address (ignored with --smart or --coordinators).
    #[arg(long, env = "KVDB_GATEWAY", default_value = DEFAULT_GATEWAY)]
    pub gateway: String,
    /// Use the smart client, routing in-process via the coordinators.
    #[arg(long)]
    pub smart: bool,
    /// Coordinator addresses for the smart client, comma separated; implies --smart.
    #[arg(long, value_delimiter = ',')]
    pub coordinators: Option<Vec<String>>,
    /// Independent clients (connections) the workers are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Before the run, write every key of the key space once (not measured): gets find values,
    /// and puts run over a filled store.
    #[arg(long)]
    pub preload: bool,
    /// Deadline of each request, retries included (e.g. 5s, 300ms).
    #[arg(long, value_parser = parse_positive_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Seed of the key, operation and value generators, to repeat a run exactly.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of the text report (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// A token the cluster accepts, sent with every request (see docs/security.md).
    #[arg(long, env = "KVDB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// TLS towards the servers (`--tls-ca`, and a client certificate for mutual TLS).
    #[command(flatten)]
    pub tls: crate::args::ClientTlsArgs,
}

/// Why a bench could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No client could be set up.
    #[error("cannot connect: {0}")]
    Connect(#[source] ClientError),
    /// Some preload writes failed, so gets would miss.
    #[error("preload: {failed} of {total} writes failed; first error: {first}")]
    Preload {
        /// Preload writes that failed.
        failed: u64,
        /// Preload writes sent: one per key of the key space.
        total: u64,
        /// The first failure's message.
        first: String,
    },
    /// The latency histogram could not be created.
    #[error("latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::errors::CreationError),
    /// Two workers' histograms could not be merged.
    #[error("merging latencies: {0}")]
    Merge(#[from] hdrhistogram::errors::AdditionError),
    /// A worker task panicked or was cancelled.
    #[error("bench worker failed: {0}")]
    Worker(#[source] tokio::task::JoinError),
    /// The summary could not be encoded.
    #[error("encoding the JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BenchError::Connect(e) if e.is_unavailable() => ExitCode::from(EXIT_UNAVAILABLE),
            _ => ExitCode::from(EXIT_ERROR),
        }
    }
}

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Gateway(String),
    Smart(Vec<String>),
}

impl BenchArgs {
    fn target(&self) -> Target {
        match (&self.coordinators, self.smart) {
            (Some(coordinators), _) => Target::Smart(coordinators.clone()),
            (None, true) => Target::Smart(vec![DEFAULT_COORDINATOR.to_owned()]),
            (None, false) => Target::Gateway(self.gateway.clone()),
        }
    }

    fn mix(&self) -> OpMix {
        match self.op {
            BenchOp::Put => OpMix::PUT,
            BenchOp::Get => OpMix::GET,
            BenchOp::Mixed => OpMix::mixed(self.get_ratio),
        }
    }

    fn budget(&self) -> Budget {
        self.duration
            .map_or(Budget::Requests(self.requests), Budget::Time)
    }

    fn setup(&self) -> Setup {
        let (target, endpoints) = match self.target() {
            Target::Gateway(address) => ("gateway", vec![address]),
            Target::Smart(coordinators) => ("smart", coordinators),
        };
        self.setup_for(target, endpoints)
    }

    /// The report's description of this run against `target` (e.g. `etcd`)
    /// at `endpoints`.
    pub fn setup_for(&self, target: &'static str, endpoints: Vec<String>) -> Setup {
        Setup {
            op: match self.op {
                BenchOp::Put => "put",
                BenchOp::Get => "get",
                BenchOp::Mixed => "mixed",
            },
            get_ratio: (self.op == BenchOp::Mixed).then_some(self.get_ratio),
            target,
            endpoints,
            concurrency: self.concurrency as usize,
            connections: self.connections as usize,
            key_space: self.key_space,
            value_size: self.value_size,
            consistency: match self.consistency {
                ConsistencyArg::Strong => "strong",
                ConsistencyArg::Eventual => "eventual",
            },
            preload: self.preload,
        }
    }

    fn phase(&self, mix: OpMix, order: KeyOrder, budget: Budget, seed: u64) -> Phase {
        let mut rng = StdRng::seed_from_u64(seed);
        Phase {
            mix,
            keys: KeySpace::new(self.key_prefix.clone(), self.key_space),
            order,
            value: workload::value(self.value_size, &mut rng).into(),
            get_options: GetOptions {
                consistency: match self.consistency {
                    ConsistencyArg::Strong => Consistency::Strong,
                    ConsistencyArg::Eventual => Consistency::Eventual,
                },
                timeout: Some(self.timeout),
                hash_fields: None,
            },
            put_options: PutOptions {
                timeout: Some(self.timeout),
                ..PutOptions::default()
            },
            budget,
            seed,
        }
    }
}

/// Runs `kvdb bench` against the KvDB target its flags name and prints the
/// report.
pub async fn run(args: BenchArgs) -> ExitCode {
    match args.target() {
        Target::Gateway(address) => match gateway_clients(&address, &args) {
            Ok(clients) => run_on(&clients, &args, args.setup()).await,
            Err(e) => fail(e),
        },
        Target::Smart(coordinators) => match smart_clients(&coordinators, &args).await {
            Ok(clients) => run_on(&clients, &args, args.setup()).await,
            Err(e) => fail(e),
        },
    }
}

/// Runs the benchmark `args` describe on `clients` (any store behind the
/// [`Kv`] API; `args`' target flags are ignored) and prints the report,
/// echoing `setup` (see [`BenchArgs::setup_for`]). This is how other stores
/// are measured with exactly the same method.
pub async fn run_on<K: Kv + Clone + 'static>(
    clients: &[K],
    args: &BenchArgs,
    setup: Setup,
) -> ExitCode {
    let summary = match execute(clients, args, setup).await {
        Ok(summary) => summary,
        Err(e) => return fail(e),
    };
    if let Err(e) = print(&summary, args.json) {
        return fail(e);
    }
    if summary.errors.total() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED_REQUESTS)
    }
}

fn fail(error: BenchError) -> ExitCode {
    eprintln!("kvdb bench: {error}");
    error.exit_code()
}

fn gateway_clients(address: &str, args: &BenchArgs) -> Result<Vec<GatewayClient>, BenchError> {
    (0..args.connections)
        .map(|_| {
            let client = GatewayClient::connect_with(address, credentials(args)?)
                .map_err(BenchError::Connect)?;
            Ok(client.with_timeout(args.timeout))
        })
        .collect()
}

async fn smart_clients(
    coordinators: &[String],
    args: &BenchArgs,
) -> Result<Vec<Client>, BenchError> {
    let mut clients = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        let config = ExecutorConfig {
            credentials: credentials(args)?,
            ..ExecutorConfig::default()
        };
        clients.push(
            Client::connect_with(coordinators, config)
                .await
                .map_err(BenchError::Connect)?,
        );
    }
    Ok(clients)
}

/// What every client presents: `--token`, if given, over TLS with `--tls-ca`.
fn credentials(args: &BenchArgs) -> Result<Credentials, BenchError> {
    args.tls
        .credentials(args.token.as_deref())
        .map_err(|e| BenchError::Connect(ClientError::Kv(KvError::InvalidArgument(e))))
}

/// The preload (when asked for and useful) and the measured phase, on `clients`.
async fn execute<K: Kv + Clone + 'static>(
    clients: &[K],
    args: &BenchArgs,
    setup: Setup,
) -> Result<Summary, BenchError> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let concurrency = args.concurrency as usize;
    let visible = !args.json && std::io::stdout().is_terminal();

    if setup.preload {
        let total = args.key_space;
        let phase = args.phase(
            OpMix::PUT,
            KeyOrder::Sequential,
            Budget::Requests(total),
            seed,
        );
        let counters = Arc::new(Counters::default());
        let bar = Progress::start("preload", phase.budget, counters.clone(), visible);
        let (tally, _) = driver::run(clients, concurrency, Arc::new(phase), counters).await?;
        bar.finish();
        if tally.errors.total() > 0 {
            return Err(BenchError::Preload {
                failed: tally.errors.total(),
                total,
                first: tally.first_error.unwrap_or_default(),
            });
        }
    }

    let phase = args.phase(args.mix(), KeyOrder::Random, args.budget(), seed);
    let counters = Arc::new(Counters::default());
    let bar = Progress::start(setup.op, phase.budget, counters.clone(), visible);
    let (tally, elapsed) = driver::run(clients, concurrency, Arc::new(phase), counters).await?;
    bar.finish();
    Ok(Summary::new(setup, &tally, elapsed))
}

fn print(summary: &Summary, json: bool) -> Result<(), BenchError> {
    if json {
        crate::outln!("{}", serde_json::to_string(summary)?);
    } else {
        crate::outln!("{summary}");
    }
    Ok(())
}

/// Parses a share from 0 to 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a number from 0 to 1")),
    }
}

/// Parses a duration as `--timeout` does, refusing zero.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than zero".to_owned()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests;
