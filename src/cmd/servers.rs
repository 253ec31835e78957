//! Server subcommands: each binds its listeners, starts its library
//! component, and runs until Ctrl-C or SIGTERM, then shuts down cleanly.

use std::collections::BTreeMap;
use std::process::ExitCode;

use std::sync::Arc;

use kvdb::servers::{RunningCoordinator, RunningResp, bind, serve_metrics};
use kvdb_client::ExecutorConfig;
use kvdb_coordinator::CoordinatorConfig;
use kvdb_coordinator::admin::AdminConfig;
use kvdb_gateway::Gateway;
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;
use tokio::task::JoinHandle;

use crate::cli::{CoordinatorArgs, GatewayArgs, NodeArgs};

/// Exit code of a server that could not start.
const EXIT_START: u8 = 1;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn start_failed(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("kvdb: {error}");
    ExitCode::from(EXIT_START)
}

pub async fn coordinator(args: CoordinatorArgs) -> ExitCode {
    let mut config = CoordinatorConfig::new(args.id, args.listen, args.data);
    config.heartbeat_interval = args.heartbeat_interval;
    config.suspect_after = args.suspect_after;
    config.dead_after = args.dead_after;
    config.scheduler.repair_after = args.repair_after;
    config.scheduler.move_timeout = args.move_timeout;
    config.scheduler.limits.max_moves = usize::from(args.max_moves);
    config.scheduler.limits.max_leader_transfers = usize::from(args.max_leader_transfers);
    // 0 turns a threshold off; anything else invalid is refused by `validate` below.
    config.scheduler.limits.split_keys = (args.split_keys != 0).then_some(args.split_keys);
    config.scheduler.limits.split_rate = (args.split_rate != 0.0).then_some(args.split_rate);
    config.auth = args.auth.config();
    config.connections = args.connections.limits();
    match parse_peers(&args.peers) {
        Ok(peers) => config.peers = peers,
        Err(e) => return start_failed(e),
    }
    config.join = args.join;
    if let Err(e) = config.validate() {
        return start_failed(e);
    }
    let tokens = match config.auth.tokens() {
        Ok(tokens) => tokens,
        Err(e) => return start_failed(format!("tokens: {e}")),
    };
    let admin_config = AdminConfig {
        token: args.admin_token,
        tokens,
        ..AdminConfig::default()
    };
    let grpc = match bind("coordinator", args.listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    let admin_listener = match bind("Admin API", args.admin_listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    let running = match RunningCoordinator::start(config, grpc, admin_listener, admin_config).await
    {
        Ok(r) => r,
        Err(e) => return start_failed(e),
    };
    let registry = kvdb_coordinator::metrics::registry(running.coordinator.clone());
    let metrics = match serve_metrics(args.metrics.metrics_listen, Arc::new(registry)).await {
        Ok(m) => m,
        Err(e) => return start_failed(e),
    };
    tracing::info!(grpc = %args.listen, admin = %args.admin_listen, "coordinator running");
    shutdown_signal().await;
    tracing::info!("shutting down");
    metrics.inspect(JoinHandle::abort);
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Binds the Redis protocol listener when an address is given.
async fn bind_resp(
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, kvdb::servers::StartError> {
    match addr {
        Some(addr) => bind("Redis protocol listener", addr).await.map(Some),
        None => Ok(None),
    }
}

/// Parses `ID=HOST:PORT` entries.
fn parse_peers(peers: &[String]) -> Result<BTreeMap<u64, String>, String> {
    peers
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .ok_or_else(|| format!("peer {p:?} is not ID=HOST:PORT"))?;
            let id = id
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("peer {p:?}: id must be a number"))?;
            Ok((id, addr.trim().to_owned()))
        })
        .collect()
}

pub async fn node(args: NodeArgs) -> ExitCode {
    let mut config = NodeConfig::new(args.name, args.data, args.coordinators);
    config.zone = args.zone;
    config.advertise_address = args.advertise.unwrap_or_default();
    config.max_key_bytes = args.max_key_bytes;
    config.max_value_bytes = args.max_value_bytes;
    config.group_commit = !args.no_group_commit;
    config.cache_bytes = args.cache_mib.saturating_mul(1024 * 1024);
    config.min_free_disk = args.min_free_disk_mib.saturating_mul(1024 * 1024);
    config.snapshot_log_bytes = args.snapshot_log_mib.saturating_mul(1024 * 1024);
    config.lease_reads = !args.no_lease_reads;
    if args.no_slow_leader_hand_over {
        config.slow_leader = None;
    }
    if args.no_quiesce {
        config.quiesce_after = None;
    }
    config.auth = args.auth.config();
    config.connections = args.connections.limits();
    config.request_metrics = args.metrics.metrics_listen.is_some();
    let listener = match bind("storage node", args.listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    let resp = match bind_resp(args.resp_listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    if let Some(listener) = &resp {
        config.resp_address = match &args.resp_advertise {
            Some(advertised) => advertised.clone(),
            None => match kvdb::servers::local_addr("Redis protocol listener", listener) {
                Ok(addr) => addr.to_string(),
                Err(e) => return start_failed(e),
            },
        };
    }
    let (tokens, credentials) = match (config.auth.tokens(), config.auth.credentials()) {
        (Ok(tokens), Ok(credentials)) => (tokens, credentials),
        (Err(e), _) | (_, Err(e)) => return start_failed(format!("tokens or TLS: {e}")),
    };
    let node = match Node::start(config, listener).await {
        Ok(n) => n,
        Err(e) => return start_failed(e),
    };
    let resp = match resp {
        Some(listener) => {
            let options = kvdb_resp::RespOptions {
                tokens,
                idle_timeout: args.resp_idle_timeout,
                ..kvdb_resp::RespOptions::default()
            };
            match RunningResp::for_node(&node, listener, credentials, options) {
                Ok(resp) => {
                    tracing::info!(listen = %resp.address, "Redis Cluster-mode listener running");
                    Some(resp)
                }
                Err(e) => return start_failed(e),
            }
        }
        None => None,
    };
    let metrics = match serve_metrics(args.metrics.metrics_listen, node.metrics()).await {
        Ok(m) => m,
        Err(e) => return start_failed(e),
    };
    tracing::info!(id = %node.id(), address = node.address(), "storage node running");
    shutdown_signal().await;
    tracing::info!("shutting down");
    metrics.inspect(JoinHandle::abort);
    if let Some(resp) = resp {
        resp.stop().await;
    }
    node.shutdown().await;
    ExitCode::SUCCESS
}

pub async fn gateway(args: GatewayArgs) -> ExitCode {
    let auth = args.auth.config();
    let tokens = match auth.tokens() {
        Ok(tokens) => tokens,
        Err(e) => return start_failed(format!("tokens: {e}")),
    };
    let listening = auth.listening(args.connections.limits());
    let (listening, credentials) = match (listening, auth.credentials()) {
        (Ok(listening), Ok(credentials)) => (listening, credentials),
        (Err(e), _) | (_, Err(e)) => return start_failed(format!("tokens or TLS: {e}")),
    };
    let executor = ExecutorConfig {
        credentials,
        ..ExecutorConfig::default()
    };
    let gateway = match Gateway::connect(&args.coordinators, executor) {
        Ok(g) => g.record_requests(args.metrics.metrics_listen.is_some()),
        Err(e) => return start_failed(e),
    };
    let listener = match bind("gateway", args.listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    let resp = match bind_resp(args.resp_listen).await {
        Ok(l) => l,
        Err(e) => return start_failed(e),
    };
    let metrics = match serve_metrics(args.metrics.metrics_listen, gateway.metrics()).await {
        Ok(m) => m,
        Err(e) => return start_failed(e),
    };
    let resp = match resp {
        Some(listener) => {
            let options = kvdb_resp::RespOptions {
                tokens,
                idle_timeout: args.resp_idle_timeout,
                allow_flush: args.resp_allow_flush,
                ..kvdb_resp::RespOptions::default()
            };
            match RunningResp::start(listener, gateway.executor().clone(), options) {
                Ok(resp) => {
                    tracing::info!(listen = %resp.address, "Redis protocol listener running");
                    Some(resp)
                }
                Err(e) => return start_failed(e),
            }
        }
        None => None,
    };
    tracing::info!(listen = %args.listen, "gateway running");
    let served = kvdb_gateway::serve(&gateway, listener, listening, shutdown_signal()).await;
    if let Some(resp) = resp {
        resp.stop().await;
    }
    metrics.inspect(JoinHandle::abort);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => start_failed(format!("gateway server failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse() {
        let peers = parse_peers(&["1=127.0.0.1:1".into(), "2=h:2".into()]).unwrap();
        assert_eq!(peers[&2], "h:2");
        assert!(parse_peers(&["x=h:1".into()]).is_err());
        assert!(parse_peers(&["h:1".into()]).is_err());
    }
}
