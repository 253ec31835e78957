//! In-process coordinator groups on loopback, with fault hooks (stop and
//! restart a member on the same address and data directory), and waiting
//! helpers that poll a condition until a deadline.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kvdb_coordinator::{Coordinator, CoordinatorConfig, serve};
use kvdb_core::proto::v1::coordinator_client::CoordinatorClient;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use kvdb_testkit::{init_tracing, wait_until};

/// How long any test condition may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Fast Raft timings for tests. Node deadlines are far away, so that maps
/// only change when a test changes them; see [`fast_liveness`].
pub fn test_config(id: u64, listen: SocketAddr, dir: PathBuf) -> CoordinatorConfig {
    let mut config = CoordinatorConfig::new(id, listen, dir);
    config.raft_heartbeat_interval = Duration::from_millis(50);
    config.raft_election_timeout = Duration::from_millis(300);
    config.heartbeat_interval = Duration::from_secs(60);
    config.suspect_after = Duration::from_secs(120);
    config.dead_after = Duration::from_secs(240);
    config
}

/// Node deadlines short enough for a test to watch them pass.
pub fn fast_liveness(config: &mut CoordinatorConfig) {
    config.heartbeat_interval = Duration::from_millis(100);
    config.suspect_after = Duration::from_millis(400);
    config.dead_after = Duration::from_millis(800);
    config.liveness_check_interval = Duration::from_millis(50);
}

/// Retries `attempt` until it returns `Some`, panicking with `what` at [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One running member: its handle and its gRPC server.
pub struct Running {
    pub coordinator: Coordinator,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// A coordinator group of in-process members sharing one temp directory.
pub struct TestCluster {
    pub dir: TempDir,
    pub addrs: BTreeMap<u64, SocketAddr>,
    pub members: BTreeMap<u64, Running>,
    configure: fn(&mut CoordinatorConfig),
}

impl TestCluster {
    /// Starts `n` members (1, 3 or 5) with the test timings.
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` members, letting `configure` adjust each config.
    pub async fn start_with(n: u64, configure: fn(&mut CoordinatorConfig)) -> Self {
        init_tracing();
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, listener);
        }
        let addrs = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let mut cluster = TestCluster {
            dir: tempfile::tempdir().unwrap(),
            addrs,
            members: BTreeMap::new(),
            configure,
        };
        for (id, listener) in listeners {
            cluster.launch(id, listener).await;
        }
        cluster
    }

    fn config(&self, id: u64) -> CoordinatorConfig {
        let dir = self.dir.path().join(format!("member-{id}"));
        let mut config = test_config(id, self.addrs[&id], dir);
        if self.addrs.len() > 1 {
            config.peers = self
                .addrs
                .iter()
                .map(|(id, a)| (*id, a.to_string()))
                .collect();
        }
        (self.configure)(&mut config);
        config
    }

    async fn launch(&mut self, id: u64, listener: TcpListener) {
        let coordinator = Coordinator::start(self.config(id)).await.unwrap();
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let coordinator = coordinator.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                serve(coordinator, listener, shutdown).await.unwrap();
            }
        });
        let running = Running {
            coordinator,
            stop_server,
            server,
        };
        self.members.insert(id, running);
    }

    /// Stops member `id`: its server, then its Raft group.
    pub async fn stop(&mut self, id: u64) {
        let running = self.members.remove(&id).expect("member is running");
        let _ = running.stop_server.send(());
        running.server.await.unwrap();
        running.coordinator.shutdown().await;
    }

    /// Restarts a stopped member on its old address and data directory.
    pub async fn restart(&mut self, id: u64) {
        let listener = TcpListener::bind(self.addrs[&id]).await.unwrap();
        self.launch(id, listener).await;
    }

    /// The handle of running member `id`.
    pub fn member(&self, id: u64) -> &Coordinator {
        &self.members[&id].coordinator
    }

    /// Waits until every running member agrees on a leader among them.
    pub async fn leader(&self) -> u64 {
        let mut agreed = None;
        wait_until("an agreed leader", || {
            let leaders: Vec<Option<u64>> = self
                .members
                .values()
                .map(|m| m.coordinator.leader().id)
                .collect();
            agreed = leaders[0]
                .filter(|l| self.members.contains_key(l) && leaders.iter().all(|x| *x == Some(*l)));
            agreed.is_some() && self.members[&agreed.unwrap_or(0)].coordinator.is_ready()
        })
        .await;
        agreed.unwrap_or_default()
    }

    /// A running member other than `id`.
    pub fn other_than(&self, id: u64) -> u64 {
        *self
            .members
            .keys()
            .find(|m| **m != id)
            .expect("another member")
    }

    /// A gRPC client of member `id`.
    pub async fn client(&self, id: u64) -> CoordinatorClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addrs[&id]))
            .unwrap()
            .connect()
            .await
            .unwrap();
        CoordinatorClient::new(channel)
    }

    /// Stops every running member.
    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Registers `node-1..=node-n` through `coordinator`.
pub async fn register_nodes(coordinator: &Coordinator, n: u16) {
    for i in 1..=n {
        coordinator
            .register_node(
                format!("node-{i}"),
                format!("127.0.0.1:{}", 7000 + i),
                "z1".into(),
            )
            .await
            .unwrap();
    }
}
