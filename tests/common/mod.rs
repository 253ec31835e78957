//! Shared support for the end-to-end tests: starting a cluster in a temporary
//! directory, waiting on conditions with deadlines, finding keys and leaders,
//! and a shard-map source whose watch a test can cut or freeze.
//!
//! Every helper waits on a condition with a deadline; none sleeps to
//! synchronise. Out of scope: network faults between servers (the tests here
//! stop and restart whole servers instead).

#![allow(dead_code, unused_imports)] // Each test binary uses a different subset.

pub mod resp;
pub mod source;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kvdb::cluster::{ClusterConfig, LocalCluster};
use kvdb::core::cache::{CacheConfig, ShardMapCache};
use kvdb::core::coordinator_client::CoordinatorClient;
use kvdb::core::{MapVersion, ShardId, ShardInfo, ShardMap, ShardState, slot};
use kvdb_client::wire::Executor;
use kvdb_client::{Client, ExecutorConfig};
use tempfile::TempDir;
use tokio::time::Instant;

pub use kvdb_testkit::{init_tracing, wait_until, wait_until_async};

/// Runs the built `kvdb` binary with `args` (off the async runtime), without the caller's
/// `RUST_LOG`, so that its output is what a user sees.
pub async fn kvdb(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kvdb"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run the kvdb binary")
    })
    .await
    .unwrap()
}
pub use source::{ControlledSource, WatchGate};

/// How long a condition in these tests may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often a polled condition is re-checked.
const POLL: Duration = Duration::from_millis(25);

/// A running cluster and the directory its data lives in (removed on drop,
/// after the cluster is shut down).
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub dir: TempDir,
}

impl TestCluster {
    /// Starts `nodes` storage nodes, a coordinator and a gateway on
    /// ephemeral loopback ports, 8 shards at RF min(3, nodes).
    pub async fn start(nodes: usize) -> TestCluster {
        Self::start_with(nodes, |_| {}).await
    }

    /// [`TestCluster::start`] with the scheduler paused, for tests that move
    /// replicas by hand and must not see the scheduler move them again.
    pub async fn start_paused(nodes: usize) -> TestCluster {
        let test = Self::start(nodes).await;
        test.cluster
            .coordinator()
            .set_scheduler_paused(true)
            .await
            .expect("scheduler paused");
        test
    }

    /// [`TestCluster::start`] with `tune` applied to the cluster's configuration first.
    pub async fn start_with(nodes: usize, tune: impl FnOnce(&mut ClusterConfig)) -> TestCluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = ClusterConfig::ephemeral(dir.path(), nodes);
        tune(&mut config);
        let cluster = LocalCluster::start(config).await.expect("cluster starts");
        TestCluster { cluster, dir }
    }

    /// Stops every server, then removes the data.
    pub async fn stop(self) {
        self.cluster.shutdown().await;
        drop(self.dir);
    }
}

/// The shard of `map` that owns `key`.
pub fn shard_of(map: &ShardMap, key: &[u8]) -> ShardId {
    let slot = slot::slot(key);
    map.shards
        .values()
        .find(|s| s.contains(slot))
        .map(|s| s.id)
        .expect("the map covers every slot")
}

/// `count` distinct keys `{prefix}-{i}` owned by `shard` in `map`.
pub fn keys_in_shard(map: &ShardMap, shard: ShardId, prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .filter(|k| shard_of(map, k) == shard)
        .take(count)
        .collect()
}

/// Index (0-based, as in [`LocalCluster::stop_node`]) of the running node
/// with `id`.
pub fn node_index(cluster: &LocalCluster, id: kvdb::core::NodeId) -> Option<usize> {
    (0..cluster.node_count()).find(|&i| cluster.node(i).is_some_and(|n| n.id() == id))
}

/// The coordinator's record of `shard`.
pub fn shard_info(cluster: &LocalCluster, shard: ShardId) -> ShardInfo {
    cluster.coordinator().map().shards[&shard].clone()
}

/// Waits until `shard` is stable and led, and returns its record.
pub async fn wait_stable(cluster: &LocalCluster, shard: ShardId) -> ShardInfo {
    wait_until(&format!("shard {shard} to be stable with a leader"), || {
        let info = shard_info(cluster, shard);
        info.state == ShardState::Stable && info.leader.is_some()
    })
    .await;
    shard_info(cluster, shard)
}

/// Waits until `cache` holds `version` or newer.
pub async fn wait_for_version(cache: &ShardMapCache, version: MapVersion) {
    let reached = tokio::time::timeout(DEADLINE, cache.wait_for_version(version)).await;
    assert!(
        reached.is_ok(),
        "client map stuck at version {} (wanted {version})",
        cache.version()
    );
}

/// A cache tuned for tests: polls and retries its watch quickly.
pub fn fast_cache_config() -> CacheConfig {
    CacheConfig {
        poll_interval: Duration::from_millis(200),
        watch_retry_min: Duration::from_millis(50),
        watch_retry_max: Duration::from_millis(500),
        ..CacheConfig::default()
    }
}

/// A smart client whose map comes through a [`ControlledSource`] over the
/// cluster's coordinator, with its driver running. Returns once the client
/// holds the coordinator's current map.
pub async fn controlled_client(
    cluster: &LocalCluster,
    config: CacheConfig,
) -> (Client, Arc<ControlledSource>) {
    let coordinator =
        CoordinatorClient::new(&[cluster.coordinator_address()]).expect("coordinator address");
    let source = Arc::new(ControlledSource::new(coordinator));
    let (cache, _driver) = ShardMapCache::spawn(source.clone(), config).expect("cache config");
    wait_for_version(&cache, cluster.coordinator().map().version).await;
    let client = Client::from_executor(Executor::new(cache, ExecutorConfig::default()));
    (client, source)
}
