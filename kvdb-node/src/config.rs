//! [`NodeConfig`]: everything a storage node is told at start, with named
//! defaults and a [`validate`](NodeConfig::validate) check.
//!
//! Out of scope: flags and environment variables, which the `kvdb` binary
//! maps onto this struct.

use std::path::PathBuf;
use std::time::Duration;

use kvdb_core::AddressRewrite;
use kvdb_core::auth::AuthConfig;
use kvdb_core::raft::quiesce::QuiesceConfig;
use openraft::SnapshotPolicy;

use crate::slow_leader::SlowLeaderPolicy;

/// Default cap on key size: 8 KiB.
pub const DEFAULT_MAX_KEY_BYTES: usize = 8 * 1024;
/// Default cap on value size: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default Raft heartbeat interval, tuned for a LAN or loopback.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// Default lower bound of the randomized Raft election timeout.
pub const DEFAULT_ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(300);
/// Default upper bound of the randomized Raft election timeout.
pub const DEFAULT_ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(600);
/// The default slow-leader policy: a leader whose majority has not acknowledged it for 150 ms,
/// for a whole second, hands its leadership over (at most once per 30 s). openraft 0.9 bounds
/// each AppendEntries by the heartbeat interval, so a leader behind a link slower than that
/// never hears a reply and its shard commits nothing until it steps down; see
/// docs/operations.md.
pub const DEFAULT_SLOW_LEADER: SlowLeaderPolicy = SlowLeaderPolicy {
    threshold: Duration::from_millis(150),
    sustain: Duration::from_secs(1),
    cooldown: Duration::from_secs(30),
};
/// Default memory budget of a node's page caches: 128 MiB (see [`NodeConfig::cache_bytes`]).
pub const DEFAULT_CACHE_BYTES: usize = 128 * 1024 * 1024;
/// The most of [`NodeConfig::cache_bytes`] the database beside the Raft log gets.
const SNAPSHOT_DB_CACHE_BYTES: usize = 2 * 1024 * 1024;
/// The smallest accepted [`NodeConfig::cache_bytes`].
pub const MIN_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The most `max_key_bytes + max_value_bytes` may add up to: a request at the limits must fit
/// the largest message clients accept (`kvdb_core::call_link::MAX_CLIENT_MESSAGE_BYTES`).
pub use kvdb_core::call_link::MAX_KEY_AND_VALUE_BYTES;
/// Default number of log entries after which a shard builds a snapshot.
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 10_000;
/// Default size of the log entries appended since a shard's last snapshot that makes it
/// build a new one (and purge the log behind it), whatever their number: an entry may pack
/// hundreds of writes, so the entry count alone lets a log grow to many times its shard's data.
/// A snapshot copies nothing (the shard's stored data is the snapshot), so a small bound costs
/// little: at 2 MiB a node holding 1M keys of 100 bytes kept its data directory under 3x
/// its live data.
pub const DEFAULT_SNAPSHOT_LOG_BYTES: u64 = 2 * 1024 * 1024;
/// Default number of log entries kept behind a snapshot, so that a briefly
/// lagging follower catches up from the log rather than a snapshot.
pub const DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;
/// Default interval between coordinator heartbeats.
pub const DEFAULT_COORDINATOR_HEARTBEAT: Duration = Duration::from_millis(500);
/// Default interval at which the replica manager re-checks the map even
/// without a change (retries of failed reports and moves).
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_millis(250);
/// Default interval between expiry-purge rounds on shard leaders.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of expired keys one purge command removes at most.
pub const DEFAULT_PURGE_BATCH: usize = 128;
/// Default bound on how long a write or strong read waits for Raft.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the Raft log database file in the data directory.
pub const LOG_DB_FILE: &str = "raft-log.redb";
/// Name of the key-value database file in the data directory.
pub const KV_DB_FILE: &str = "kv.redb";

/// A storage node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Unique, stable name; the coordinator maps it to the node id, so a
    /// restarted node gets its identity back.
    pub name: String,
    /// The address other nodes and clients reach this node at (`host:port`).
    /// Empty: the bound listener's address.
    pub advertise_address: String,
    /// Where Redis clients reach this node's Redis Cluster-mode listener (`host:port`),
    /// recorded with the coordinator for `MOVED` and `CLUSTER SLOTS`; empty when the node
    /// serves none. The node does not serve it itself: whoever embeds the node does
    /// (`kvdb node --resp-listen`).
    pub resp_address: String,
    /// Coordinator addresses (`host:port`); any of them will do.
    pub coordinators: Vec<String>,
    /// Directory holding the Raft log and key-value databases.
    pub data_dir: PathBuf,
    /// Failure domain, reported to the coordinator for placement.
    pub zone: String,
    /// Largest accepted key, in bytes.
    pub max_key_bytes: usize,
    /// Largest accepted value, in bytes.
    pub max_value_bytes: usize,
    /// Whether concurrent shards' log appends share one fsync.
    pub group_commit: bool,
    /// Free space, in bytes, below which the node refuses client writes on the disk of
    /// `data_dir` (see [`crate::disk`]); 0 never refuses.
    pub min_free_disk: u64,
    /// The memory, in bytes, the node's two databases may use for their page caches,
    /// together (see [`Self::cache_split`]). redb's default is 1 GiB for each, which a node
    /// fills as its files grow whatever its live data.
    pub cache_bytes: usize,
    /// Whether a shard leader holding a lease answers strong reads from its applied state
    /// without a heartbeat round (see `kvdb_core::raft::lease`). The lease lasts
    /// `election_timeout_min` from the send time of the heartbeats a majority accepted, while
    /// followers refuse other candidates for `election_timeout_max`; the difference is the
    /// margin for clock drift between nodes. Off: every strong read runs a read-index round.
    pub lease_reads: bool,
    /// Raft heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Log entries since the last snapshot that trigger a new one.
    pub snapshot_logs: u64,
    /// Log entries kept behind a snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Bytes of log entries since the last snapshot that trigger a new one, checked every
    /// second (see `crate::log_compaction`); 0 compacts by entry count only.
    pub snapshot_log_bytes: u64,
    /// Interval between heartbeats to the coordinator.
    pub coordinator_heartbeat: Duration,
    /// Interval of the replica manager's periodic re-check.
    pub reconcile_interval: Duration,
    /// Interval between expiry-purge rounds on shard leaders.
    pub purge_interval: Duration,
    /// Most expired keys removed by one purge command.
    pub purge_batch: usize,
    /// Bound on how long a write or strong read waits for Raft.
    pub request_timeout: Duration,
    /// How long a shard must see no write, term change or membership change before its
    /// leader quiesces it: no heartbeats or election timers until something happens (see
    /// `kvdb_core::raft::quiesce`). `None`: every shard ticks all the time.
    pub quiesce_after: Option<Duration>,
    /// When a shard leader whose majority answers slowly hands its leadership over (see
    /// [`crate::slow_leader`]); `None`: never.
    pub slow_leader: Option<SlowLeaderPolicy>,
    /// Rewrites a peer's address when this node first dials it for Raft
    /// traffic (fault-injection tests route links through proxies). The
    /// node still advertises its own real address. `None` in production.
    pub peer_address_rewrite: Option<AddressRewrite>,
    /// The tokens this node accepts, and the cluster token it presents to its peers and the
    /// coordinators (see `kvdb_core::auth`). Default: open.
    pub auth: AuthConfig,
    /// How many connections and streams the node's server takes.
    pub connections: kvdb_core::incoming::ConnectionLimits,
    /// Whether requests are counted and timed for [`crate::node::Node::metrics`]; the
    /// collectors read at scrape time cost nothing until scraped either way.
    pub request_metrics: bool,
    /// A deliberately broken behaviour to switch on (chaos-suite
    /// sensitivity tests only). `None` unless a test sets it or names it in
    /// `KVDB_PLANTED_BUG`.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<crate::planted::PlantedBug>,
}

impl NodeConfig {
    /// A configuration with every default, for the node `name` keeping its
    /// data in `data_dir` and registering with `coordinators`.
    pub fn new(
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        coordinators: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            advertise_address: String::new(),
            resp_address: String::new(),
            coordinators,
            data_dir: data_dir.into(),
            zone: String::new(),
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            group_commit: kvdb_core::raft::log_store::DEFAULT_GROUP_COMMIT,
            min_free_disk: crate::disk::DEFAULT_MIN_FREE_DISK,
            cache_bytes: DEFAULT_CACHE_BYTES,
            lease_reads: true,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            election_timeout_min: DEFAULT_ELECTION_TIMEOUT_MIN,
            election_timeout_max: DEFAULT_ELECTION_TIMEOUT_MAX,
            snapshot_logs: DEFAULT_SNAPSHOT_LOGS,
            logs_kept_after_snapshot: DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT,
            snapshot_log_bytes: DEFAULT_SNAPSHOT_LOG_BYTES,
            coordinator_heartbeat: DEFAULT_COORDINATOR_HEARTBEAT,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            purge_batch: DEFAULT_PURGE_BATCH,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            quiesce_after: Some(kvdb_core::raft::quiesce::DEFAULT_QUIESCE_IDLE),
            slow_leader: Some(DEFAULT_SLOW_LEADER),
            peer_address_rewrite: None,
            auth: AuthConfig::default(),
            connections: kvdb_core::incoming::ConnectionLimits::default(),
            request_metrics: true,
            #[cfg(feature = "planted-bugs")]
            planted_bug: crate::planted::PlantedBug::from_env(),
        }
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |why: &'static str| Err(ConfigError(why));
        if self.auth.tokens().is_err() {
            return fail(
                "the tokens are malformed, or client tokens are given without a cluster token",
            );
        }
        if self.name.is_empty() {
            return fail("name must not be empty");
        }
        if self.coordinators.is_empty() {
            return fail("at least one coordinator address is required");
        }
        if self.max_key_bytes == 0 {
            return fail("max_key_bytes must be at least 1");
        }
        if self.max_key_bytes.saturating_add(self.max_value_bytes) > MAX_KEY_AND_VALUE_BYTES {
            return fail("max_key_bytes + max_value_bytes must not exceed 60 MiB");
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.election_timeout_min
        {
            return fail("heartbeat_interval must be positive and below election_timeout_min");
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return fail("election_timeout_min must be below election_timeout_max");
        }
        // Followers learn the last commit index from a heartbeat after it: a group may go quiet
        // only once at least one has gone out.
        if self
            .quiesce_after
            .is_some_and(|idle| idle < self.heartbeat_interval * 2)
        {
            return fail("quiesce_after must be at least two heartbeat intervals");
        }
        if self.cache_bytes < MIN_CACHE_BYTES {
            return fail("cache_bytes must be at least 4 MiB");
        }
        if self.snapshot_logs == 0 || self.purge_batch == 0 {
            return fail("snapshot_logs and purge_batch must be at least 1");
        }
        if self.reconcile_interval.is_zero()
            || self.purge_interval.is_zero()
            || self.coordinator_heartbeat.is_zero()
            || self.request_timeout.is_zero()
        {
            return fail("intervals and timeouts must be positive");
        }
        Ok(())
    }

    /// The page caches of the database beside the Raft log and of the applied state, in
    /// bytes. The log's entries are in segment files, read through the OS page cache; its
    /// database holds only stored snapshots, which shard groups do not keep (a shard's
    /// snapshot is its applied state), so it gets a sliver and the applied state, which every
    /// read and write walks, the rest.
    pub fn cache_split(&self) -> (usize, usize) {
        let log = (self.cache_bytes / 16).min(SNAPSHOT_DB_CACHE_BYTES);
        (log, self.cache_bytes - log)
    }

    /// When shards quiesce (see [`NodeConfig::quiesce_after`]); `None` when they never do.
    pub fn quiescence(&self) -> Option<QuiesceConfig> {
        let token_ttl = self.election_timeout_min + self.election_timeout_max;
        self.quiesce_after.map(|idle| QuiesceConfig {
            idle,
            // A token outlives several messages, so that one lost or late message wakes nothing.
            interval: (token_ttl / 4).max(self.heartbeat_interval),
            token_ttl,
        })
    }

    /// The openraft configuration of one shard group.
    pub fn raft_config(&self, shard: kvdb_core::ShardId) -> Result<openraft::Config, ConfigError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: format!("kvdb-shard-{shard}"),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            // Followers serve only eventual reads, so they may learn a commit with the next
            // message; the coordinator group, whose followers answer map reads, does not.
            defer_commit_broadcast: true,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|_| ConfigError("openraft rejected the derived shard configuration"))
    }
}

/// Why a [`NodeConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node configuration: {0}")]
pub struct ConfigError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig::new("node-1", "/tmp/kvdb", vec!["127.0.0.1:7000".into()])
    }

    #[test]
    fn defaults_are_valid_and_give_a_valid_raft_config() {
        let c = config();
        c.validate().unwrap();
        let raft = c.raft_config(kvdb_core::ShardId(3)).unwrap();
        assert_eq!(raft.heartbeat_interval, 100);
        assert!(raft.defer_commit_broadcast);
        assert_eq!(raft.election_timeout_min, 300);
    }

    #[test]
    fn inconsistent_timeouts_are_refused() {
        let mut c = config();
        c.heartbeat_interval = c.election_timeout_min;
        assert!(c.validate().is_err());
        let mut c = config();
        c.election_timeout_max = c.election_timeout_min;
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_cache_budget_is_split_and_bounded_below() {
        let mut c = config();
        c.cache_bytes = 128 << 20;
        assert_eq!(c.cache_split(), (2 << 20, 126 << 20));
        c.cache_bytes = MIN_CACHE_BYTES;
        assert_eq!(c.cache_split(), (256 << 10, (4 << 20) - (256 << 10)));
        c.cache_bytes = MIN_CACHE_BYTES - 1;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cache_bytes")
        );
        c.cache_bytes = MIN_CACHE_BYTES;
        c.validate().unwrap();
    }

    #[test]
    fn a_node_needs_a_name_and_a_coordinator() {
        let mut c = config();
        c.name.clear();
        assert!(c.validate().is_err());
        let mut c = config();
        c.coordinators.clear();
        assert!(c.validate().is_err());
    }
}
