//! Client commands: get, put, del, cas. Exit codes a script can rely on:
//! 0 success, 1 key absent, 2 usage error, 3 condition failed,
//! 4 cluster unreachable or unable to route in time, 5 any other error.

use std::io::Write;
use std::process::ExitCode;

use kvdb_client::{
    Client, ClientError, Consistency, DeleteOptions, ExecutorConfig, GatewayClient, GetOptions, Kv,
    PutOptions,
};
use kvdb_core::Version;

use kvdb_core::error::KvError;

use crate::cli::{CasArgs, ConsistencyArg, DelArgs, GetArgs, PutArgs, Target};

/// Exit code: the key is absent.
pub const EXIT_ABSENT: u8 = 1;
/// Exit code: a CAS / if-not-exists condition did not hold.
pub const EXIT_CONDITION: u8 = 3;
/// Exit code: the cluster could not be reached or could not route in time.
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: any other failure (bad input, internal error).
pub const EXIT_ERROR: u8 = 5;

/// Either way into the cluster, chosen by `--smart`.
enum AnyClient {
    Gateway(GatewayClient),
    Smart(Client),
}

async fn connect(target: &Target) -> Result<AnyClient, ClientError> {
    let credentials = target
        .tls
        .credentials(target.token.as_deref())
        .map_err(|e| ClientError::Kv(KvError::InvalidArgument(e)))?;
    if target.smart {
        let config = ExecutorConfig {
            default_timeout: target.timeout,
            credentials,
            ..ExecutorConfig::default()
        };
        let client = Client::connect_with(&target.coordinators, config).await?;
        Ok(AnyClient::Smart(client))
    } else {
        let client =
            GatewayClient::connect_with(&target.gateway, credentials)?.with_timeout(target.timeout);
        Ok(AnyClient::Gateway(client))
    }
}

/// Runs `op` on whichever client the target selects.
macro_rules! with_client {
    ($target:expr, |$c:ident| $body:expr) => {
        match connect($target).await {
            Err(e) => Err(e),
            Ok(AnyClient::Gateway($c)) => $body,
            Ok(AnyClient::Smart($c)) => $body,
        }
    };
}

pub async fn get(args: GetArgs) -> ExitCode {
    let options = GetOptions {
        consistency: match args.consistency {
            ConsistencyArg::Strong => Consistency::Strong,
            ConsistencyArg::Eventual => Consistency::Eventual,
        },
        timeout: Some(args.target.timeout),
        hash_fields: None,
    };
    let key = args.key.as_bytes();
    match with_client!(&args.target, |c| c.get_with(key, options).await) {
        Ok(Some(v)) => {
            let mut out = std::io::stdout().lock();
            if args.with_version {
                let _ = write!(out, "{}\t", v.version);
            }
            match &v.hash {
                // A hash prints one `field<TAB>value` line per field, in insertion order.
                Some(pairs) => {
                    for (field, value) in pairs {
                        let _ = out.write_all(field);
                        let _ = out.write_all(b"\t");
                        let _ = out.write_all(value);
                        let _ = out.write_all(b"\n");
                    }
                }
                None => {
                    let _ = out.write_all(&v.value);
                    let _ = out.write_all(b"\n");
                }
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::from(EXIT_ABSENT),
        Err(e) => fail(&args.target, e),
    }
}

pub async fn put(args: PutArgs) -> ExitCode {
    let options = PutOptions {
        ttl: args.ttl,
        if_version: args.if_version.map(Version),
        if_not_exists: args.if_not_exists,
        timeout: Some(args.target.timeout),
    };
    let (key, value) = (args.key.as_bytes(), args.value.as_bytes());
    let result = with_client!(&args.target, |c| c.put_with(key, value, options).await);
    print_version(&args.target, result)
}

pub async fn cas(args: CasArgs) -> ExitCode {
    let (key, value) = (args.key.as_bytes(), args.value.as_bytes());
    let expected = Version(args.expected_version);
    let result = with_client!(&args.target, |c| c
        .compare_and_swap(key, expected, value)
        .await);
    print_version(&args.target, result)
}

pub async fn del(args: DelArgs) -> ExitCode {
    let options = DeleteOptions {
        if_version: args.if_version.map(Version),
        timeout: Some(args.target.timeout),
    };
    let key = args.key.as_bytes();
    match with_client!(&args.target, |c| c.delete_with(key, options).await) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_ABSENT),
        Err(e) => fail(&args.target, e),
    }
}

fn print_version(target: &Target, result: Result<Version, ClientError>) -> ExitCode {
    match result {
        Ok(version) => {
            kvdb::outln!("{version}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(target, e),
    }
}

/// One line on stderr, and the exit code for the kind of failure.
fn fail(target: &Target, error: ClientError) -> ExitCode {
    let via = if target.smart {
        format!("coordinators {}", target.coordinators.join(","))
    } else {
        format!("gateway {}", target.gateway)
    };
    match &error {
        ClientError::ConditionFailed { .. } => {
            eprintln!("kvdb: {error}");
            ExitCode::from(EXIT_CONDITION)
        }
        e if e.is_unavailable() => {
            eprintln!("kvdb: cannot reach the cluster via {via}: {error}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
        _ => {
            eprintln!("kvdb: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
