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
    config.auth = args.auth.config();
    config.connections = args.connections.limits();
    config.nodes = (0..DEV_NODES)
        .map(|i| SocketAddr::new(args.gateway_listen.ip(), args.node_port + i))
        .collect();
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
    print_banner(&args, &config, &cluster);
    shutdown_signal().await;
    eprintln!("stopping the dev cluster ...");
    cluster.shutdown().await;
    ExitCode::SUCCESS
}

fn print_banner(args: &DevArgs, config: &ClusterConfig, cluster: &LocalCluster) {
    println!("KvDB dev cluster running (data in {})", args.data.display());
    if let Some(gateway) = cluster.gateway_address() {
        println!("  gateway       {gateway}");
    }
    println!("  coordinator   {}", cluster.coordinator_address());
    println!("  admin API     http://{}", cluster.admin_address());
    for i in 0..cluster.node_count() {
        println!("  node-{}        {}", i + 1, cluster.node_address(i));
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
