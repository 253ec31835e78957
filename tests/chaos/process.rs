//! The multi-process schedule: a coordinator and three `kvdb node`
//! processes of the built binary, hit with real signals: SIGKILL then a
//! restart on the same address and data, or SIGSTOP then SIGCONT (a process
//! that freezes, as in a long GC pause or a VM stall, keeps its sockets open).
//!
//! The workload uses smart clients only: a gateway process would add no
//! fault the in-process schedules lack. Child processes are killed when the
//! cluster is dropped, so a failing test leaves none behind. Ports are picked
//! by binding port 0 and releasing it, since a restarted node must come back
//! on the same address.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kvdb::core::ShardId;
use kvdb_client::{Client, ExecutorConfig};
use kvdb_node::planted::PlantedBug;
use kvdb_testkit::Recorder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tempfile::TempDir;
use tokio::time::Instant;

use super::cluster::CALL_TIMEOUT;
use super::verify::{check_run, probe_keys, time_to_writable};
use super::workload::{DEFAULT_KEYS, Workload, keys};
use super::{RunReport, Settings, wait_until};

/// A gateway process with what restarts it.
struct GatewayProcess {
    child: Child,
    args: Vec<String>,
    /// Where it serves its metrics; empty without.
    metrics: String,
}

/// Fresh starts of a [`ProcessCluster`] whose servers exited during start-up.
const START_ATTEMPTS: usize = 3;

/// A free loopback port, released for a child process to bind.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").to_string()
}

/// A cluster of `kvdb` processes.
pub struct ProcessCluster {
    dir: TempDir,
    bin: PathBuf,
    coordinator: Child,
    coordinator_args: Vec<String>,
    coordinator_address: String,
    admin_address: String,
    /// Where the coordinator serves its metrics.
    coordinator_metrics: String,
    nodes: Vec<(Vec<String>, Option<Child>)>,
    /// Gateways started with [`Self::start_gateway`].
    gateways: Vec<GatewayProcess>,
    /// The planted bug every node process runs with, by name.
    bug: Option<PlantedBug>,
}

impl ProcessCluster {
    /// Starts a coordinator and `nodes` nodes of `bin`, and initializes
    /// `shards` shards at replication factor 3.
    pub async fn start(bin: &Path, nodes: usize, shards: u32) -> ProcessCluster {
        Self::start_with(bin, nodes, shards, None).await
    }

    /// [`Self::start`] with every server (and every gateway started later) serving its
    /// metrics on a port of its own. Only the tests that scrape ask for it: each such port is
    /// one more that a restarted server could find taken.
    pub async fn start_serving_metrics(bin: &Path, nodes: usize, shards: u32) -> ProcessCluster {
        Self::start_inner(bin, nodes, shards, None, true).await
    }

    /// [`Self::start`] with nodes that run the planted `bug` (named to them in
    /// `KVDB_PLANTED_BUG`; the test build of the binary has the feature).
    ///
    /// A port picked free can be taken before the child binds it (by another test's outgoing
    /// connection, say); a server that exits during start-up therefore makes a fresh start
    /// on new ports, up to [`START_ATTEMPTS`] times.
    pub async fn start_with(
        bin: &Path,
        nodes: usize,
        shards: u32,
        bug: Option<PlantedBug>,
    ) -> ProcessCluster {
        Self::start_inner(bin, nodes, shards, bug, false).await
    }

    async fn start_inner(
        bin: &Path,
        nodes: usize,
        shards: u32,
        bug: Option<PlantedBug>,
        metrics: bool,
    ) -> ProcessCluster {
        let mut exits = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(bin, nodes, shards, bug, metrics).await {
                Ok(cluster) => return cluster,
                Err(exit) => exits.push(exit),
            }
        }
        panic!("the process cluster never started:\n{}", exits.join("\n"));
    }

    /// One start; `Err` with the server's name and log when one exited during start-up.
    async fn try_start(
        bin: &Path,
        nodes: usize,
        shards: u32,
        bug: Option<PlantedBug>,
        metrics: bool,
    ) -> Result<ProcessCluster, String> {
        let serving = |mut args: Vec<String>| {
            if metrics {
                args.extend(["--metrics-listen".to_owned(), free_address()]);
            }
            args
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let coordinator_address = free_address();
        let admin = free_address();
        let root = dir.path().to_owned();
        let data = |name: &str| root.join(name).display().to_string();
        let coordinator_args: Vec<String> = [
            "coordinator",
            "--id",
            "1",
            "--listen",
            &coordinator_address,
            "--admin-listen",
            &admin,
            "--data",
            &data("coordinator"),
        ]
        .map(str::to_owned)
        .to_vec();
        let coordinator_args = serving(coordinator_args);
        let coordinator_metrics = metrics_address(&coordinator_args);
        let coordinator = spawn(bin, dir.path(), "coordinator", &coordinator_args, None);
        let mut cluster = ProcessCluster {
            bin: bin.to_owned(),
            coordinator,
            coordinator_args,
            coordinator_address: coordinator_address.clone(),
            admin_address: admin.clone(),
            coordinator_metrics,
            nodes: Vec::new(),
            gateways: Vec::new(),
            dir,
            bug,
        };
        for i in 0..nodes {
            let name = format!("node-{}", i + 1);
            let args: Vec<String> = [
                "node",
                "--name",
                &name,
                "--listen",
                &free_address(),
                "--coordinators",
                &coordinator_address,
                "--data",
                &data(&name),
            ]
            .map(str::to_owned)
            .to_vec();
            let args = serving(args);
            let child = spawn(bin, cluster.dir.path(), &name, &args, bug);
            cluster.nodes.push((args, Some(child)));
        }
        let init = [
            "admin",
            "--admin",
            &admin,
            "shard-init",
            "--num-shards",
            &shards.to_string(),
            "--replication-factor",
            "3",
        ];
        let deadline = Instant::now() + super::DEADLINE;
        // Refused until the coordinator runs and every node registered.
        while !cluster.admin_nodes_registered(&admin, nodes) || !cluster.run_ok(&init) {
            if let Some(exited) = cluster.exited_server() {
                return Err(exited);
            }
            assert!(
                Instant::now() < deadline,
                "the process cluster never initialized; node logs:\n{}",
                (0..nodes)
                    .map(|i| cluster.node_log(i))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }

    /// The name and log of a server that has exited, if any.
    fn exited_server(&mut self) -> Option<String> {
        let dir = self.dir.path().to_owned();
        let log = |name: &str| {
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        };
        if matches!(self.coordinator.try_wait(), Ok(Some(_))) {
            return Some(format!("coordinator exited: {}", log("coordinator")));
        }
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                let name = format!("node-{}", i + 1);
                return Some(format!("{name} exited: {}", log(&name)));
            }
        }
        None
    }

    fn run_ok(&self, args: &[&str]) -> bool {
        let output = Command::new(&self.bin)
            .args(args)
            .stderr(Stdio::null())
            .output();
        output.is_ok_and(|o| o.status.success())
    }

    fn admin_nodes_registered(&self, admin: &str, nodes: usize) -> bool {
        let args = ["admin", "--admin", admin, "--json", "nodes"];
        let Ok(output) = Command::new(&self.bin).args(args).output() else {
            return false;
        };
        String::from_utf8_lossy(&output.stdout)
            .matches("\"address\"")
            .count()
            >= nodes
    }

    /// A smart client of the cluster.
    pub async fn client(&self) -> Client {
        let config = ExecutorConfig {
            default_timeout: CALL_TIMEOUT,
            ..ExecutorConfig::default()
        };
        Client::connect_with(std::slice::from_ref(&self.coordinator_address), config)
            .await
            .expect("smart client connects")
    }

    /// Sends SIGKILL to node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGKILL to every node before reaping any: a crash of the whole cluster at once.
    pub fn kill_all(&mut self) {
        let mut killed: Vec<Child> = self.nodes.iter_mut().filter_map(|n| n.1.take()).collect();
        for child in &mut killed {
            let _ = child.kill();
        }
        for mut child in killed {
            let _ = child.wait();
        }
    }

    /// Restarts a killed node `i` with its old arguments (address, data).
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].1.is_none() {
            let name = format!("node-{}", i + 1);
            let child = spawn(
                &self.bin,
                self.dir.path(),
                &name,
                &self.nodes[i].0,
                self.bug,
            );
            self.nodes[i].1 = Some(child);
        }
    }

    /// Whether node `i` runs: started, not killed, and not exited on its own.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .1
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Node `i`'s data-plane address.
    pub fn node_address(&self, i: usize) -> &str {
        let args = &self.nodes[i].0;
        let at = args.iter().position(|a| a == "--listen").expect("--listen");
        &args[at + 1]
    }

    /// The index of the node registered at `address`, if any.
    pub fn index_of_address(&self, address: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.node_address(i) == address)
    }

    /// Starts a gateway process of the cluster; returns its process id and address.
    pub fn start_gateway(&mut self) -> (u32, String) {
        let address = free_address();
        let mut args: Vec<String> = [
            "gateway",
            "--listen",
            &address,
            "--coordinators",
            &self.coordinator_address,
        ]
        .map(str::to_owned)
        .to_vec();
        if !self.coordinator_metrics.is_empty() {
            args.extend(["--metrics-listen".to_owned(), free_address()]);
        }
        let metrics = metrics_address(&args);
        let name = format!("gateway-{}", self.gateways.len() + 1);
        let child = spawn(&self.bin, self.dir.path(), &name, &args, None);
        let pid = child.id();
        self.gateways.push(GatewayProcess {
            child,
            args,
            metrics,
        });
        (pid, address)
    }

    /// Asks the coordinator to make node `to` the leader of `shard` (at `epoch`), as an
    /// operator's `kvdb admin transfer-leader` does; whether the request was accepted.
    pub fn transfer_leader(&self, shard: ShardId, epoch: u64, to: usize) -> bool {
        let (shard, epoch) = (shard.0.to_string(), epoch.to_string());
        let node = format!("node-{}", to + 1);
        let admin = &self.admin_address;
        self.run_ok(&[
            "admin",
            "--admin",
            admin,
            "transfer-leader",
            &shard,
            &node,
            "--epoch",
            &epoch,
        ])
    }

    /// Stops node `i` with SIGTERM (a graceful stop) and waits for it to exit; panics unless
    /// it exits cleanly.
    pub async fn terminate_node(&mut self, i: usize) {
        let name = format!("node-{}", i + 1);
        if let Some(mut child) = self.nodes[i].1.take() {
            terminate(&mut child, &name).await;
        }
    }

    /// Stops the coordinator with SIGTERM, waits for a clean exit, and starts it again on the
    /// same address and data.
    pub async fn restart_coordinator(&mut self) {
        terminate(&mut self.coordinator, "coordinator").await;
        let args = &self.coordinator_args;
        self.coordinator = spawn(&self.bin, self.dir.path(), "coordinator", args, None);
    }

    /// Stops gateway `g` with SIGTERM, waits for a clean exit, and starts it again on the
    /// same address.
    pub async fn restart_gateway(&mut self, g: usize) {
        let name = format!("gateway-{}", g + 1);
        let gateway = &mut self.gateways[g];
        terminate(&mut gateway.child, &name).await;
        gateway.child = spawn(&self.bin, self.dir.path(), &name, &gateway.args, None);
    }

    /// Where node `i` serves its metrics (see [`Self::start_serving_metrics`]).
    pub fn node_metrics_address(&self, i: usize) -> String {
        let address = metrics_address(&self.nodes[i].0);
        assert!(!address.is_empty(), "started without metrics");
        address
    }

    /// Where the coordinator serves its metrics.
    pub fn coordinator_metrics_address(&self) -> &str {
        &self.coordinator_metrics
    }

    /// Where gateway `g` (in start order) serves its metrics.
    pub fn gateway_metrics_address(&self, g: usize) -> &str {
        &self.gateways[g].metrics
    }

    /// The process ids of the coordinator and every running node.
    pub fn server_pids(&self) -> Vec<u32> {
        let nodes = self.nodes.iter().filter_map(|(_, c)| c.as_ref());
        std::iter::once(&self.coordinator)
            .chain(nodes)
            .map(Child::id)
            .collect()
    }

    /// The coordinator's Admin API address.
    pub fn admin_address(&self) -> &str {
        &self.admin_address
    }

    /// The node log of node `i` so far, for a failing test's message.
    pub fn node_log(&self, i: usize) -> String {
        let path = self.dir.path().join(format!("node-{}.log", i + 1));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        if let Some(child) = &self.nodes[i].1 {
            let status = Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        let nodes = self.nodes.iter_mut().filter_map(|(_, c)| c.as_mut());
        let gateways = self.gateways.iter_mut().map(|g| &mut g.child);
        for child in nodes.chain(gateways) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
    }
}

/// The `--metrics-listen` address in a server's arguments; empty without one.
fn metrics_address(args: &[String]) -> String {
    args.iter()
        .position(|a| a == "--metrics-listen")
        .map_or_else(String::new, |flag| args[flag + 1].clone())
}

fn spawn(bin: &Path, dir: &Path, name: &str, args: &[String], bug: Option<PlantedBug>) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("log file");
    let err = log.try_clone().expect("log file");
    let mut command = Command::new(bin);
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(log)
        .stderr(err);
    match bug {
        Some(bug) => command.env(PlantedBug::ENV, format!("{bug:?}")),
        None => command.env_remove(PlantedBug::ENV),
    };
    command.spawn().expect("spawn kvdb")
}

/// Sends SIGTERM to `child` and waits for it to exit; panics unless it exits cleanly.
async fn terminate(child: &mut Child, name: &str) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill -TERM {name} failed"
    );
    let mut exit = None;
    wait_until(&format!("{name} to exit after SIGTERM"), || {
        exit = child.try_wait().expect("wait for a child");
        exit.is_some()
    })
    .await;
    let exit = exit.expect("exited");
    assert!(exit.success(), "{name} exited with {exit} after SIGTERM");
}

/// Runs the signal schedule on processes of `bin`.
pub async fn run_signals(bin: &Path, settings: Settings) -> RunReport {
    println!(
        "--- kill-stop-processes: {:?} of faults, KVDB_CHAOS_SEED={}",
        settings.duration, settings.seed
    );
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut cluster = ProcessCluster::start(bin, 3, 4).await;
    let checker = cluster.client().await;
    let probes = probe_keys(&checker.cache().current());
    let first = time_to_writable(&checker, &probes)
        .await
        .unwrap_or_else(|failed| panic!("not writable after the heal: {failed:?}"));
    println!("    cluster writable after {first:?}");
    let recorder = Recorder::new();
    let mut workload = Workload::new(&recorder, settings.seed, DEFAULT_KEYS);
    for _ in 0..3 {
        workload.spawn(cluster.client().await);
    }

    let end = Instant::now() + settings.duration;
    let (mut faults, mut recovery) = (0usize, Vec::new());
    while Instant::now() < end {
        let node = rng.random_range(0..3);
        let held = Duration::from_millis(rng.random_range(2_000..4_000));
        let what = if faults.is_multiple_of(2) {
            cluster.kill(node);
            tokio::time::sleep(held).await;
            cluster.restart(node);
            "SIGKILL + restart"
        } else {
            cluster.signal(node, "STOP");
            tokio::time::sleep(held).await;
            cluster.signal(node, "CONT");
            "SIGSTOP + SIGCONT"
        };
        faults += 1;
        let took = time_to_writable(&checker, &probes)
            .await
            .unwrap_or_else(|failed| panic!("not writable after the heal: {failed:?}"));
        println!("    fault {faults}: {what} node {node} for {held:?}; writable after {took:?}");
        recovery.push(took);
    }

    let run = ProcessRun {
        schedule: "kill-stop-processes",
        seed: settings.seed,
        faults,
        recovery,
        shards: 0,
    };
    finish_run(run, workload, &checker, &recorder).await
}

/// What a schedule over processes did, for [`finish_run`].
pub struct ProcessRun {
    pub schedule: &'static str,
    pub seed: u64,
    pub faults: usize,
    pub recovery: Vec<Duration>,
    /// Shards of the cluster, for the report (0: not counted).
    pub shards: usize,
}

/// Operations the workload must complete after a process schedule's last fault.
const RECOVERY_WINDOW_OPS: u64 = 100;

/// Ends a schedule over processes: lets the workload complete [`RECOVERY_WINDOW_OPS`] more
/// operations, stops it, reads every key through `checker`, checks the history recorded in
/// `recorder`, and prints the report.
pub async fn finish_run(
    run: ProcessRun,
    workload: Workload,
    checker: &Client,
    recorder: &Recorder,
) -> RunReport {
    let issued = workload.issued.clone();
    let target = issued.load(std::sync::atomic::Ordering::Relaxed) + RECOVERY_WINDOW_OPS;
    wait_until("the recovery window", || {
        issued.load(std::sync::atomic::Ordering::Relaxed) >= target
    })
    .await;
    workload.stop().await;
    let found = check_run(checker, &keys(DEFAULT_KEYS), recorder).await;
    let report = RunReport {
        schedule: run.schedule,
        seed: run.seed,
        bug: None,
        faults: run.faults,
        ops: found.ops,
        violations: found.violations,
        inconclusive: found.inconclusive,
        lost_writes: found.lost_writes,
        epoch_served: 0,
        recovery: run.recovery,
        shards: run.shards,
        // Processes: their replicas' figures are not at hand.
        compacted: (0, 0),
        details: found.details,
    };
    println!("{report}");
    report
}
