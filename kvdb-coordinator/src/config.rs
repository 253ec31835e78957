//! The configuration of one coordinator member, with named defaults and a
//! `validate()` that rejects what cannot work before anything is opened.
//!
//! Out of scope: flags and environment variables, which the `kvdb` binary maps
//! onto this struct.

use kvdb_core::auth::AuthConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::CoordinatorError;
use crate::scheduler::SchedulerConfig;
use crate::state::DEFAULT_DELTA_HISTORY;

/// How one coordinator member runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorConfig {
    /// This member's Raft id (non-zero).
    pub id: u64,
    /// The gRPC address (Coordinator + Raft transport) other members and
    /// nodes reach this member at. With no `peers`, it is also the address
    /// recorded in the single-member Raft membership.
    pub listen: SocketAddr,
    /// The admin HTTP address, announced to the other members when this
    /// member leads, so followers can point clients at it.
    pub admin_listen: Option<SocketAddr>,
    /// Directory of the redb files (created if missing).
    pub data_dir: PathBuf,
    /// The tokens this member accepts, and the cluster token it presents to the other
    /// members (see `kvdb_core::auth`). Default: open.
    pub auth: AuthConfig,
    /// How many connections and streams the gRPC server takes.
    pub connections: kvdb_core::incoming::ConnectionLimits,
    /// Every member of the group, this one included: Raft id -> gRPC
    /// `host:port`. Empty for a single member.
    pub peers: BTreeMap<u64, String>,
    /// Start empty and wait to be added to a running group (`kvdb admin coordinators add`)
    /// instead of bootstrapping a group of one's own.
    pub join: bool,
    /// How often storage nodes are expected to heartbeat.
    pub heartbeat_interval: Duration,
    /// A node not heard from for this long becomes suspect.
    pub suspect_after: Duration,
    /// A node not heard from for this long becomes dead.
    pub dead_after: Duration,
    /// How often the leader checks node deadlines.
    pub liveness_check_interval: Duration,
    /// How many shard-map deltas are kept for watchers.
    pub delta_history: usize,
    /// How many deltas one watcher may fall behind before it is sent a
    /// snapshot instead.
    pub watch_buffer: usize,
    /// Raft heartbeat between coordinator members.
    pub raft_heartbeat_interval: Duration,
    /// Lower bound of the Raft election timeout (the upper bound is twice it).
    pub raft_election_timeout: Duration,
    /// A Raft snapshot is taken every this many log entries.
    pub snapshot_every: u64,
    /// How the leader repairs and balances the cluster.
    pub scheduler: SchedulerConfig,
}

impl CoordinatorConfig {
    /// Default [`heartbeat_interval`](Self::heartbeat_interval).
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
    /// Default [`suspect_after`](Self::suspect_after).
    pub const DEFAULT_SUSPECT_AFTER: Duration = Duration::from_secs(2);
    /// Default [`dead_after`](Self::dead_after).
    pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(6);
    /// Default [`liveness_check_interval`](Self::liveness_check_interval).
    pub const DEFAULT_LIVENESS_CHECK_INTERVAL: Duration = Duration::from_millis(100);
    /// Default [`delta_history`](Self::delta_history).
    pub const DEFAULT_DELTA_HISTORY: usize = DEFAULT_DELTA_HISTORY;
    /// Default [`watch_buffer`](Self::watch_buffer).
    pub const DEFAULT_WATCH_BUFFER: usize = 1024;
    /// Default [`raft_heartbeat_interval`](Self::raft_heartbeat_interval).
    pub const DEFAULT_RAFT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
    /// Default [`raft_election_timeout`](Self::raft_election_timeout).
    pub const DEFAULT_RAFT_ELECTION_TIMEOUT: Duration = Duration::from_millis(500);
    /// Default [`snapshot_every`](Self::snapshot_every).
    pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;

    /// A member with every other setting at its default.
    pub fn new(id: u64, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            listen,
            admin_listen: None,
            data_dir: data_dir.into(),
            auth: AuthConfig::default(),
            connections: kvdb_core::incoming::ConnectionLimits::default(),
            peers: BTreeMap::new(),
            join: false,
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            suspect_after: Self::DEFAULT_SUSPECT_AFTER,
            dead_after: Self::DEFAULT_DEAD_AFTER,
            liveness_check_interval: Self::DEFAULT_LIVENESS_CHECK_INTERVAL,
            delta_history: Self::DEFAULT_DELTA_HISTORY,
            watch_buffer: Self::DEFAULT_WATCH_BUFFER,
            raft_heartbeat_interval: Self::DEFAULT_RAFT_HEARTBEAT_INTERVAL,
            raft_election_timeout: Self::DEFAULT_RAFT_ELECTION_TIMEOUT,
            snapshot_every: Self::DEFAULT_SNAPSHOT_EVERY,
            scheduler: SchedulerConfig::default(),
        }
    }

    /// The group's members: `peers`, or this member alone at `listen`.
    pub fn members(&self) -> BTreeMap<u64, String> {
        if self.peers.is_empty() {
            BTreeMap::from([(self.id, self.listen.to_string())])
        } else {
            self.peers.clone()
        }
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), CoordinatorError> {
        let bad = |why: String| Err(CoordinatorError::InvalidArgument(why));
        if let Err(e) = self.auth.tokens() {
            return bad(format!("tokens: {e}"));
        }
        if self.id == 0 {
            return bad("member id must be non-zero".into());
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.id) {
            return bad(format!("peers do not include this member ({})", self.id));
        }
        if self.peers.contains_key(&0) {
            return bad("peer ids must be non-zero".into());
        }
        if self.suspect_after.is_zero() || self.dead_after <= self.suspect_after {
            return bad("need 0 < suspect_after < dead_after".into());
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.suspect_after {
            return bad("need 0 < heartbeat_interval < suspect_after".into());
        }
        if self.liveness_check_interval.is_zero() {
            return bad("liveness_check_interval must be non-zero".into());
        }
        if self.delta_history == 0 || self.watch_buffer == 0 {
            return bad("delta_history and watch_buffer must be non-zero".into());
        }
        if self.raft_heartbeat_interval.is_zero()
            || self.raft_election_timeout <= self.raft_heartbeat_interval
        {
            return bad("need 0 < raft_heartbeat_interval < raft_election_timeout".into());
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every must be non-zero".into());
        }
        if self.scheduler.interval.is_zero() {
            return bad("scheduler interval must be non-zero".into());
        }
        if self.scheduler.move_timeout.is_zero() {
            return bad("the scheduler's move timeout must be non-zero".into());
        }
        if self.scheduler.limits.max_moves == 0 {
            return bad("the scheduler's move limit must be at least 1".into());
        }
        if self.scheduler.limits.split_keys == Some(0) {
            return bad(
                "the split key threshold must be positive (None turns splits by size off)".into(),
            );
        }
        if let Some(rate) = self.scheduler.limits.split_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return bad(format!(
                "the split rate threshold must be a positive number of requests per second \
                 (None turns splits by load off), got {rate}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CoordinatorConfig {
        CoordinatorConfig::new(1, "127.0.0.1:7000".parse().unwrap(), "/tmp/x")
    }

    #[test]
    fn defaults_are_valid() {
        config().validate().unwrap();
        assert_eq!(config().members().len(), 1);
    }

    #[test]
    fn bad_settings_are_rejected() {
        let mut c = config();
        c.peers = BTreeMap::from([(2, "h:1".to_string())]);
        assert!(c.validate().is_err());
        let mut c = config();
        c.dead_after = c.suspect_after;
        assert!(c.validate().is_err());
        let mut c = config();
        c.id = 0;
        assert!(c.validate().is_err());
        let mut c = config();
        c.scheduler.limits.split_keys = Some(0);
        assert!(c.validate().is_err());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut c = config();
            c.scheduler.limits.split_rate = Some(rate);
            assert!(c.validate().is_err(), "{rate}");
        }
    }
}
