//! The rolling-restart drill: every process of a multi-process cluster stopped gracefully
//! (SIGTERM) and started again on the same address and data, one at a time, under a recorded
//! workload of smart and gateway clients: each node after its shards' leadership moved to
//! another replica, then the coordinator, then the gateway. What an operator does for an
//! upgrade; it must cost no acknowledged write and keep the history linearizable.

use std::path::Path;
use std::time::Duration;

use kvdb::core::ShardMap;
use kvdb_client::{Client, GatewayClient, Kv};
use kvdb_testkit::{Recorder, wait_until_async};
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::RunReport;
use super::process::{ProcessCluster, ProcessRun, finish_run};
use super::verify::{probe_keys, time_to_writable};
use super::workload::{DEFAULT_KEYS, Workload};

/// Nodes and shards of the drill's cluster.
const NODES: usize = 3;
const SHARDS: u32 = 4;
/// How often a leadership transfer that has not happened yet is asked for again.
const TRANSFER_RETRY: Duration = Duration::from_secs(2);

/// Runs the drill on processes of `bin`; `seed` seeds the workload.
pub async fn run_rolling_restart(bin: &Path, seed: u64) -> RunReport {
    println!("--- rolling-restart: KVDB_CHAOS_SEED={seed}");
    let mut cluster = ProcessCluster::start(bin, NODES, SHARDS).await;
    let (_, gateway) = cluster.start_gateway();
    let checker = cluster.client().await;
    let probes = probe_keys(&checker.cache().current());
    let writable = |checker: &Client| {
        let (checker, probes) = (checker.clone(), probes.clone());
        async move {
            time_to_writable(&checker, &probes)
                .await
                .unwrap_or_else(|failed| panic!("not writable: {failed:?}"))
        }
    };
    writable(&checker).await;

    let recorder = Recorder::new();
    let mut workload = Workload::new(&recorder, seed, DEFAULT_KEYS);
    for _ in 0..2 {
        workload.spawn(cluster.client().await);
    }
    workload.spawn(GatewayClient::connect(&gateway).expect("gateway address"));

    let mut steps = 0;
    let mut recovery = Vec::new();
    for i in 0..NODES {
        let moved = move_leadership_off(&cluster, &checker, i).await;
        let started = Instant::now();
        cluster.terminate_node(i).await;
        cluster.restart(i);
        let address = cluster.node_address(i).to_owned();
        wait_until_async(&format!("node-{} to serve again", i + 1), || {
            serving(&address)
        })
        .await;
        writable(&checker).await;
        let took = started.elapsed();
        println!(
            "    node-{}: {moved} leaderships moved away, back after {took:?}",
            i + 1
        );
        recovery.push(took);
        steps += 1;
    }

    let started = Instant::now();
    cluster.restart_coordinator().await;
    wait_until_async("the coordinator to serve a new client", || async {
        let connect = cluster.client();
        tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .is_ok()
    })
    .await;
    println!("    coordinator: back after {:?}", started.elapsed());
    steps += 1;

    let started = Instant::now();
    cluster.restart_gateway(0).await;
    let via_gateway = GatewayClient::connect(&gateway).expect("gateway address");
    wait_until_async("the gateway to take a write", || async {
        via_gateway
            .put(b"rolling-gateway-probe", b"x")
            .await
            .is_ok()
    })
    .await;
    println!("    gateway: back after {:?}", started.elapsed());
    steps += 1;

    let run = ProcessRun {
        schedule: "rolling-restart",
        seed,
        faults: steps,
        recovery,
        shards: SHARDS as usize,
    };
    finish_run(run, workload, &checker, &recorder).await
}

/// Whether the node at `address` reports SERVING on gRPC health: registered and hosting
/// its shards.
async fn serving(address: &str) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{address}")) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let reply = HealthClient::new(channel).check(request).await;
    reply.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
}

/// Asks for every shard node `i` leads to be led by another of its replicas, until none is;
/// returns how many shards it led.
async fn move_leadership_off(cluster: &ProcessCluster, checker: &Client, i: usize) -> usize {
    let led = |map: &ShardMap| {
        let id = map
            .nodes
            .values()
            .find(|n| n.name == format!("node-{}", i + 1))
            .map(|n| n.id);
        map.shards
            .values()
            .filter(|s| s.leader.is_some() && s.leader == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let count = led(&checker.cache().current()).len();
    let mut asked = Instant::now() - TRANSFER_RETRY;
    wait_until_async(&format!("node-{}'s leaderships to move", i + 1), || {
        let map = checker.cache().current();
        let still = led(&map);
        if !still.is_empty() && asked.elapsed() >= TRANSFER_RETRY {
            asked = Instant::now();
            for shard in &still {
                let target = shard
                    .replicas
                    .iter()
                    .filter_map(|r| map.nodes.get(r))
                    .filter_map(|n| n.name.strip_prefix("node-")?.parse::<usize>().ok())
                    .map(|n| n - 1)
                    .find(|&j| j != i);
                if let Some(j) = target {
                    cluster.transfer_leader(shard.id, shard.epoch.0, j);
                }
            }
        }
        async move { still.is_empty() }
    })
    .await;
    count
}
