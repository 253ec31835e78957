//! `etcd-bench`: drives etcd's KV gRPC API the way `kvdb bench` drives KvDB, so that
//! docs/performance.md compares the two stores and not two load tools.
//!
//! Same method as `kvdb bench`: `concurrency` closed-loop workers (each sends one request and
//! waits for its answer) share a budget of `--requests`; keys are `{prefix}{i}` drawn
//! uniformly from `--key-space` (1 = one hot key); values are `--value-size` bytes; every
//! latency (failures included) goes into per-worker HDR histograms (1 µs .. 60 s, 3
//! significant digits) merged at the end; `--json` prints the same fields as
//! `kvdb bench --json` (throughput, `latency_ms.p50/p90/p99/p999/max`, `errors` by kind).
//!
//! Gets are linearizable (etcd's default, `serializable=false`) unless `--serializable`.
//! Workers spread over `--connections` gRPC channels (HTTP/2 connections), channel `i` to
//! endpoint `i % endpoints`.
//!
//! Out of scope: other etcd operations (txn, watch, lease), TLS and auth, and client-side
//! retries (etcd's own Go client retries some failures; on a healthy local cluster there are
//! none to retry, and any failure is counted).

mod load;
mod report;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tonic::transport::{Channel, Endpoint};

use load::{KeyOrder, Phase};
use report::Summary;

/// Generated client of the KV service subset in proto/kv.proto.
mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;

/// Which requests to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// Unconditional puts.
    Put,
    /// Single-key ranges (use `--preload` so that they find values).
    Get,
}

/// Command-line flags; names and defaults follow `kvdb bench`.
#[derive(Debug, Parser)]
#[command(version, about = "Closed-loop load generator for etcd's KV API")]
struct Args {
    /// Operation to send.
    #[arg(long, value_enum, default_value = "put")]
    op: BenchOp,
    /// etcd client URLs' host:port, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Concurrent requests in flight (closed-loop workers).
    #[arg(short = 'c', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Total requests to send.
    #[arg(short = 'n', long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Distinct keys; 1 is one hot key.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    key_space: u64,
    /// Key names are this prefix followed by a number.
    #[arg(long, default_value = "bench-")]
    key_prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Serve gets from the contacted member's state instead of linearizably.
    #[arg(long)]
    serializable: bool,
    /// gRPC channels (HTTP/2 connections) the workers are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Before a get run, write every key of the key space once (not measured).
    #[arg(long)]
    preload: bool,
    /// Deadline of each request, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Seed of the key and value generators.
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

/// Why the driver could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// An endpoint address did not form a valid URI.
    #[error("bad endpoint {endpoint:?}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// An endpoint could not be connected to.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// No endpoint was given.
    #[error("no endpoints")]
    NoEndpoints,
    /// Some preload writes failed, so gets would miss.
    #[error("preload: {failed} of {total} writes failed; first error: {first}")]
    Preload {
        failed: u64,
        total: u64,
        first: String,
    },
    /// The latency histogram could not be created.
    #[error("latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::errors::CreationError),
    /// Two workers' histograms could not be merged.
    #[error("merging latencies: {0}")]
    Merge(#[from] hdrhistogram::errors::AdditionError),
    /// A worker task panicked.
    #[error("worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// The JSON report could not be encoded.
    #[error("encoding the JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(summary) if summary.errors.total() == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("etcd-bench: {e}");
            ExitCode::from(5)
        }
    }
}

async fn run(args: &Args) -> Result<Summary, DriverError> {
    let clients = connect(&args.endpoints, args.connections as usize).await?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let concurrency = args.concurrency as usize;
    let timeout = Duration::from_millis(args.timeout_ms);

    if args.preload && args.op == BenchOp::Get {
        let phase = Phase::new(
            args,
            BenchOp::Put,
            KeyOrder::Sequential,
            args.key_space,
            seed,
            timeout,
        );
        let (tally, _) = load::run(&clients, concurrency, phase).await?;
        if tally.errors.total() > 0 {
            return Err(DriverError::Preload {
                failed: tally.errors.total(),
                total: args.key_space,
                first: tally.first_error.unwrap_or_default(),
            });
        }
    }

    let phase = Phase::new(
        args,
        args.op,
        KeyOrder::Random,
        args.requests,
        seed,
        timeout,
    );
    let (tally, elapsed) = load::run(&clients, concurrency, phase).await?;
    let summary = Summary::new(report::Setup::of(args), &tally, elapsed);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(summary)
}

/// `connections` channels, channel `i` to endpoint `i % endpoints.len()`, each connected
/// before the measured phase so that connection setup is not timed.
async fn connect(
    endpoints: &[String],
    connections: usize,
) -> Result<Vec<KvClient<Channel>>, DriverError> {
    if endpoints.is_empty() {
        return Err(DriverError::NoEndpoints);
    }
    let mut clients = Vec::with_capacity(connections);
    for endpoint in endpoints.iter().cycle().take(connections) {
        let uri = format!("http://{endpoint}");
        let channel = Endpoint::from_shared(uri)
            .map_err(|source| DriverError::Endpoint {
                endpoint: endpoint.clone(),
                source,
            })?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|source| DriverError::Connect {
                endpoint: endpoint.clone(),
                source,
            })?;
        clients.push(KvClient::new(channel));
    }
    Ok(clients)
}
