//! `kvdb dev`: a whole cluster in one process on loopback: one coordinator
//! with its Admin API, three storage nodes and a gateway. The first start
//! bootstraps 8 shards at replication factor 3; later starts reuse the data
//! directory and its shards.

use std::process::ExitCode;
use std::time::Duration;

use kvdb_client::ExecutorConfig;
use kvdb_coordinator::CoordinatorConfig;
use kvdb_coordinator::admin::AdminConfig;
use kvdb_gateway::Gateway;
use kvdb_node::config::NodeConfig;
use kvdb_node::node::Node;

use crate::cli::DevArgs;
use crate::cmd::servers::{RunningCoordinator, bind, shutdown_signal};

/// Shards created on the first start.
pub const DEV_SHARDS: u32 = 8;
/// Replication factor of the dev cluster.
pub const DEV_REPLICATION: u32 = 3;
/// Storage nodes in the dev cluster.
pub const DEV_NODES: u16 = 3;
/// How long start-up may take before `kvdb dev` gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: DevArgs) -> ExitCode {
    match start(&args).await {
        Ok(cluster) => {
            print_banner(&args);
            shutdown_signal().await;
            eprintln!("stopping the dev cluster...");
            cluster.shutdown().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvdb dev: {e}");
            ExitCode::from(1)
        }
    }
}

struct DevCluster {
    coordinator: RunningCoordinator,
    nodes: Vec<Node>,
    gateway_stop: tokio::sync::oneshot::Sender<()>,
    gateway: tokio::task::JoinHandle<()>,
}

impl DevCluster {
    async fn shutdown(self) {
        let _ = self.gateway_stop.send(());
        let _ = self.gateway.await;
        for node in self.nodes {
            node.shutdown().await;
        }
        self.coordinator.shutdown().await;
    }
}

async fn start(args: &DevArgs) -> Result<DevCluster, String> {
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
    let coordinator_addr = args.coordinator_listen.to_string();
    let config = CoordinatorConfig::new(1, args.coordinator_listen, args.data.join("coordinator"));
    let grpc = bind("coordinator", args.coordinator_listen).await?;
    let admin = bind("Admin API", args.admin_listen).await?;
    let coordinator = RunningCoordinator::start(config, grpc, admin, AdminConfig::default()).await?;

    let mut nodes = Vec::new();
    for i in 1..=DEV_NODES {
        let addr = std::net::SocketAddr::new(args.node_port_ip(), args.node_port + i - 1);
        let listener = bind(&format!("node-{i}"), addr).await?;
        let config = NodeConfig::new(
            format!("node-{i}"),
            args.data.join(format!("node-{i}")),
            vec![coordinator_addr.clone()],
        );
        let node = Node::start(config, listener)
            .await
            .map_err(|e| format!("node-{i}: {e}"))?;
        nodes.push(node);
    }

    bootstrap(&coordinator).await?;

    let gateway = Gateway::connect(&[coordinator_addr], ExecutorConfig::default())
        .map_err(|e| e.to_string())?;
    let listener = bind("gateway", args.gateway_listen).await?;
    let (gateway_stop, stop) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(async move {
        let stop = async {
            let _ = stop.await;
        };
        if let Err(e) = kvdb_gateway::serve(&gateway, listener, stop).await {
            tracing::error!(error = %e, "gateway failed");
        }
    });
    Ok(DevCluster {
        coordinator,
        nodes,
        gateway_stop,
        gateway,
    })
}

/// Initializes the shards on the first start, once all nodes registered.
async fn bootstrap(running: &RunningCoordinator) -> Result<(), String> {
    let coordinator = &running.coordinator;
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let mut changes = coordinator.subscribe_map();
    loop {
        let map = coordinator.map();
        if map.is_initialized() {
            return Ok(());
        }
        if coordinator.is_leader() && map.nodes.len() >= usize::from(DEV_NODES) {
            break;
        }
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Err("storage nodes did not register in time".into());
        }
    }
    coordinator
        .init_shards(DEV_SHARDS, DEV_REPLICATION)
        .await
        .map_err(|e| format!("cannot initialize shards: {e}"))?;
    Ok(())
}

fn print_banner(args: &DevArgs) {
    println!("KvDB dev cluster running (data in {})", args.data.display());
    println!("  gateway      {}", args.gateway_listen);
    println!("  coordinator  {}", args.coordinator_listen);
    println!("  admin API    http://{}", args.admin_listen);
    for i in 0..DEV_NODES {
        println!("  node-{}       {}:{}", i + 1, args.node_port_ip(), args.node_port + i);
    }
    println!("  {DEV_SHARDS} shards, replication factor {DEV_REPLICATION}");
    println!();
    println!("try:  kvdb put hello world && kvdb get hello      (Ctrl-C stops the cluster)");
}
