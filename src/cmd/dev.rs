//! `kvdb dev`: a whole cluster in one process on loopback (see
//! [`kvdb::cluster`]): one coordinator with its Admin API, three storage
//! nodes and a gateway, on fixed ports. The first start bootstraps 8 shards
//! at replication factor 3; later starts reuse the data directory.

use std::net::SocketAddr;
use std::process::ExitCode;

use kvdb::cluster::{ClusterConfig, LocalCluster};

use crate::cli::DevArgs;
use crate::cmd::servers::shutdown_signal;

/// Storage nodes in the dev cluster.
pub const DEV_NODES: u16 = 3;

pub async fn run(args: DevArgs) -> ExitCode {
    let mut config = ClusterConfig::ephemeral(&args.data, usize::from(DEV_NODES));
    config.coordinator = args.coordinator_listen;
    config.admin = args.admin_listen;
    config.gateway = Some(args.gateway_listen);
    config.resp = Some(args.resp_listen);
    config.resp_allow_flush = args.resp_allow_flush;
    config.auth = args.auth.config();
    config.connections = args.connections.limits();
    config.request_metrics = args.metrics_port.is_some();
    config.nodes = (0..DEV_NODES)
        .map(|i| SocketAddr::new(args.gateway_listen.ip(), args.node_port + i))
        .collect();
    if let Some(first) = args.cluster_resp_port {
        config.node_resp = (0..DEV_NODES)
            .map(|i| SocketAddr::new(args.gateway_listen.ip(), first.saturating_add(i)))
            .collect();
    }
    if let Err(e) = std::fs::create_dir_all(&args.data) {
        eprintln!("kvdb dev: cannot create {}: {e}", args.data.display());
        return ExitCode::from(1);
    }
    if args.tls {
        let names = [
            "127.0.0.1",
            "localhost",
            &args.gateway_listen.ip().to_string(),
        ];
        match kvdb_core::tls::write_throwaway(&args.data.join("tls"), &names) {
            Ok(files) => config.auth.tls = Some(files),
            Err(e) => {
                eprintln!("kvdb dev: cannot make throwaway certificates: {e}");
                return ExitCode::from(1);
            }
        }
    }
    eprintln!("starting the dev cluster in {} ...", args.data.display());
    let cluster = match LocalCluster::start(config.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvdb dev: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics = match serve_metrics(&args, &cluster).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kvdb dev: {e}");
            cluster.shutdown().await;
            return ExitCode::from(1);
        }
    };
    print_banner(&args, &config, &cluster);
    shutdown_signal().await;
    eprintln!("stopping the dev cluster ...");
    for task in metrics {
        task.abort();
    }
    cluster.shutdown().await;
    ExitCode::SUCCESS
}

/// With `--metrics-port P`: the coordinator's metrics on P, the gateway's on P+1, node N's
/// on P+1+N, on the gateway's IP.
async fn serve_metrics(
    args: &DevArgs,
    cluster: &LocalCluster,
) -> Result<Vec<tokio::task::JoinHandle<()>>, kvdb::servers::StartError> {
    let Some(first) = args.metrics_port else {
        return Ok(Vec::new());
    };
    let ip = args.gateway_listen.ip();
    let mut registries = vec![std::sync::Arc::new(kvdb_coordinator::metrics::registry(
        cluster.coordinator().clone(),
    ))];
    registries.extend(cluster.gateway_metrics());
    registries
        .extend((0..cluster.node_count()).filter_map(|i| cluster.node(i).map(|n| n.metrics())));
    let mut tasks = Vec::new();
    for (offset, registry) in registries.into_iter().enumerate() {
        let port = first.saturating_add(offset as u16);
        let addr = SocketAddr::new(ip, port);
        if let Some(task) = kvdb::servers::serve_metrics(Some(addr), registry).await? {
            tasks.push(task);
        }
    }
    Ok(tasks)
}

fn print_banner(args: &DevArgs, config: &ClusterConfig, cluster: &LocalCluster) {
    println!("KvDB dev cluster running (data in {})", args.data.display());
    if let Some(gateway) = cluster.gateway_address() {
        println!("  gateway       {gateway}");
    }
    if let Some(resp) = cluster.resp_address() {
        println!(
            "  redis (RESP)  {resp}   redis-cli -h {} -p {}",
            resp.ip(),
            resp.port()
        );
    }
    println!("  coordinator   {}", cluster.coordinator_address());
    println!("  admin API     http://{}", cluster.admin_address());
    for i in 0..cluster.node_count() {
        println!("  node-{}        {}", i + 1, cluster.node_address(i));
    }
    if let Some(first) = cluster.node_resp_address(0) {
        println!(
            "  redis cluster {first} (and the next {} ports)   redis-cli -c -h {} -p {}",
            cluster.node_count() - 1,
            first.ip(),
            first.port()
        );
    }
    if let Some(port) = args.metrics_port {
        let ip = args.gateway_listen.ip();
        println!(
            "  metrics       http://{ip}:{port}/metrics (coordinator), :{} (gateway), :{}-:{} (nodes)",
            port.saturating_add(1),
            port.saturating_add(2),
            port.saturating_add(1 + DEV_NODES),
        );
    }
    let map = cluster.coordinator().map();
    println!(
        "  {} shards, replication factor {} (map version {})",
        map.shards.len(),
        config.replication_factor,
        map.version
    );
    println!();
    if args.auth.cluster_token.is_some() {
        println!("tokens are required: pass --token (or set KVDB_TOKEN) to client commands");
    }
    if let Some(tls) = &config.auth.tls {
        println!(
            "mutual TLS is on (throwaway CA): pass to client commands\n  \
             --tls-ca {} --tls-cert {} --tls-key {}",
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display()
        );
    }
    println!("try:  kvdb put hello world && kvdb get hello      (Ctrl-C stops the cluster)");
}
