//! `etcd-bench`: drives etcd's KV gRPC API with `kvdb bench`'s own load
//! generator (`kvdb::bench::run_on`), so docs/performance.md compares two
//! stores and not two load tools: same closed loop, key choice, value sizes,
//! preload, HDR histograms and report fields.
//!
//! etcd is put behind KvDB's [`Kv`] client API: a get is a single-key
//! `Range` (linearizable; `--consistency eventual` asks for a serializable
//! one), a put is a `Put`. Workers spread over `--connections` channels,
//! channel `i` to endpoint `i % endpoints`. The `kvdb bench` target flags
//! (`--gateway`, `--smart`, `--coordinators`) are ignored.
//!
//! Out of scope: deletes and conditional writes (the benchmark sends neither),
//! other etcd operations, TLS and auth, and client-side retries.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kvdb::bench::BenchArgs;
use kvdb::client::{
    Action, ClientError, Consistency, DeleteOptions, GetOptions, Kv, PutOptions, ScanCursor,
    ScanPage, Txn, TxnReply, UpdateOptions, Updated, Value,
};
use kvdb::core::Version;
use kvdb::core::error::KvError;
use tonic::transport::{Channel, Endpoint};

/// Generated client of the KV service subset in proto/kv.proto.
mod pb {
    tonic::include_proto!("etcdserverpb");
}

/// Command-line flags: `kvdb bench`'s, plus etcd's endpoints.
#[derive(Debug, Parser)]
#[command(version, about = "kvdb bench's load generator, aimed at etcd's KV API")]
struct Args {
    /// etcd client addresses (host:port), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    #[command(flatten)]
    bench: BenchArgs,
}

/// One connection to one etcd member, seen through KvDB's client API.
#[derive(Clone)]
struct EtcdKv {
    kv: pb::kv_client::KvClient<Channel>,
}

/// Deadline of a request that names none, as KvDB's clients use.
const DEFAULT_TIMEOUT: Duration = kvdb::client::GatewayClient::DEFAULT_TIMEOUT;

fn request<T>(message: T, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout.unwrap_or(DEFAULT_TIMEOUT));
    request
}

fn failed(status: tonic::Status) -> ClientError {
    ClientError::Kv(kvdb::core::status::from_status(&status))
}

impl Kv for EtcdKv {
    async fn get_with(
        &self,
        key: &[u8],
        options: GetOptions,
    ) -> Result<Option<Value>, ClientError> {
        let range = pb::RangeRequest {
            key: key.to_vec().into(),
            serializable: options.consistency == Consistency::Eventual,
        };
        let reply = self
            .kv
            .clone()
            .range(request(range, options.timeout))
            .await
            .map_err(failed)?
            .into_inner();
        Ok(reply.kvs.into_iter().next().map(|kv| Value {
            value: kv.value.to_vec(),
            version: Version(kv.mod_revision as u64),
            ..Value::default()
        }))
    }

    async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> Result<Version, ClientError> {
        if options.if_version.is_some() || options.if_not_exists || options.ttl.is_some() {
            return Err(unsupported("conditional or expiring puts"));
        }
        let put = pb::PutRequest {
            key: key.to_vec().into(),
            value: value.to_vec().into(),
        };
        let reply = self
            .kv
            .clone()
            .put(request(put, options.timeout))
            .await
            .map_err(failed)?
            .into_inner();
        Ok(Version(reply.header.map_or(0, |h| h.revision as u64)))
    }

    async fn delete_with(&self, _key: &[u8], _options: DeleteOptions) -> Result<bool, ClientError> {
        Err(unsupported("deletes"))
    }

    async fn update_with(
        &self,
        _key: &[u8],
        _action: Action,
        _options: UpdateOptions,
    ) -> Result<Updated, ClientError> {
        Err(unsupported("read-modify-write updates"))
    }

    async fn txn_with(
        &self,
        _txn: &Txn,
        _options: UpdateOptions,
    ) -> Result<Option<Vec<TxnReply>>, ClientError> {
        Err(unsupported("transactions"))
    }

    async fn scan(&self, _cursor: &ScanCursor, _limit: u32) -> Result<ScanPage, ClientError> {
        Err(unsupported("scans"))
    }
}

fn unsupported(what: &str) -> ClientError {
    ClientError::Kv(KvError::InvalidArgument(format!(
        "etcd-bench sends no {what}"
    )))
}

/// `connections` channels, channel `i` to endpoint `i % endpoints.len()`,
/// each connected before the run so that connection set-up is not timed.
async fn connect(endpoints: &[String], connections: usize) -> Result<Vec<EtcdKv>, String> {
    if endpoints.is_empty() {
        return Err("no --endpoints".to_owned());
    }
    let mut clients = Vec::with_capacity(connections);
    for endpoint in endpoints.iter().cycle().take(connections) {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        clients.push(EtcdKv {
            kv: pb::kv_client::KvClient::new(channel),
        });
    }
    Ok(clients)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let clients = match connect(&args.endpoints, args.bench.connections as usize).await {
        Ok(clients) => clients,
        Err(e) => {
            eprintln!("etcd-bench: {e}");
            return ExitCode::from(4);
        }
    };
    let setup = args.bench.setup_for("etcd", args.endpoints.clone());
    kvdb::bench::run_on(&clients, &args.bench, setup).await
}
