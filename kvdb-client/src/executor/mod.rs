//! The request executor: routes a request, sends it to a node, and reacts to
//! routing errors from their typed form until it succeeds, fails for good, or
//! the caller's deadline passes.
//!
//! Reactions (see `kvdb_core::error::RetryAction`):
//! - NOT_LEADER with a hint: retry once, at once, at the hinted leader, and
//!   remember it as the shard's leader in the cache.
//! - SHARD_MOVED: forced map refresh, then retry.
//! - STALE_EPOCH / NOT_LEADER without a usable hint: throttled refresh,
//!   waited for at most `refresh_patience`, retry.
//! - Transport errors, and an attempt that outlives `attempt_timeout`: mark
//!   the node failed for a cool-down, start a throttled refresh without
//!   waiting for it, back off with jitter, retry.
//!   A failed leader is passed over for a healthy replica, which answers
//!   NOT_LEADER with the new leader once one is elected, so failover does
//!   not wait for the map (nor for a coordinator that is down).
//!
//! Refreshes run in tasks of their own: a request that stops waiting does
//! not cancel the fetch, and a slow coordinator never eats a deadline.
//!
//! Writes carry a (client id, sequence) assigned once per logical write, so a
//! retry of a write whose first attempt was applied returns the first result.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kvdb_core::AddressRewrite;
use kvdb_core::Slot;
use kvdb_core::auth::Credentials;
use kvdb_core::backoff::Backoff;
use kvdb_core::cache::{Refresh, ShardMapCache};
use kvdb_core::coordinator_client::CoordinatorClientConfig;
use kvdb_core::epoch::Access;
use kvdb_core::error::{KvError, RetryAction};
use kvdb_core::local_node::LocalNodeLink;
use kvdb_core::metrics::{Registry, RequestMetrics, RetryMetrics};
use kvdb_core::proto::v1 as pb;
use kvdb_core::router::Route;
use kvdb_core::slot::{common_slot, slot, slot_from_wire};
use tokio::time::Instant;

use crate::call_link::NodeLink;
use crate::pool::NodePool;

/// The shortest an attempt is given before it may be abandoned for another node.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// Tuning of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Deadline of a request that names none.
    pub default_timeout: Duration,
    /// How long one attempt at one node may take before the request moves on, within its
    /// deadline (and at most half of the time the request has left): a node that hangs
    /// (paused, or cut off without a reset) then costs about this plus an election, not the
    /// whole deadline. The node is avoided for `node_cool_down` and a retry keeps its write
    /// id, so it is applied at most once.
    pub attempt_timeout: Duration,
    /// Wait between retries after transport errors.
    pub backoff: Backoff,
    /// How long a node that failed is avoided when there is a choice.
    pub node_cool_down: Duration,
    /// How long a retry waits for a throttled map refresh (after
    /// STALE_EPOCH or NOT_LEADER without a hint) before going on with the
    /// cached map. The refresh itself runs on, so a slow or unreachable
    /// coordinator never eats a request's deadline.
    pub refresh_patience: Duration,
    /// Rewrites a node's address when the pool first dials it
    /// (fault-injection tests route links through proxies). `None` in
    /// production.
    pub node_address_rewrite: Option<AddressRewrite>,
    /// What the client presents to nodes and coordinators: a token of the cluster's (see
    /// `kvdb_core::auth`), or nothing.
    pub credentials: Credentials,
    /// Counts the attempts this client retries, by reason, for an application's metrics
    /// (see `kvdb_core::metrics`). `None`: not counted.
    pub retries: Option<RetryMetrics>,
    /// Counts and times this client's requests, by operation and outcome. Off by default.
    pub requests: RequestMetrics,
    /// A storage node of this process, called directly rather than over the network (a
    /// node's Redis Cluster port). `None` for applications.
    pub local_node: Option<LocalNodeLink>,
}

impl ExecutorConfig {
    /// Default request deadline.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default bound on one attempt: well above a healthy write's latency under load (tens
    /// of milliseconds) and an election (under a second).
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default cool-down of a failed node.
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);
    /// Default wait for a throttled refresh.
    pub const DEFAULT_REFRESH_PATIENCE: Duration = Duration::from_millis(250);
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            default_timeout: Self::DEFAULT_TIMEOUT,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            backoff: Backoff::DEFAULT,
            node_cool_down: Self::DEFAULT_COOL_DOWN,
            refresh_patience: Self::DEFAULT_REFRESH_PATIENCE,
            node_address_rewrite: None,
            credentials: Credentials::default(),
            retries: None,
            requests: RequestMetrics::off(),
            local_node: None,
        }
    }
}

/// Executes KV requests against storage nodes using a shard-map cache.
#[derive(Clone)]
pub struct Executor {
    cache: Arc<ShardMapCache>,
    pool: NodePool,
    config: ExecutorConfig,
}

impl Executor {
    /// An executor routing with `cache`.
    pub fn new(cache: Arc<ShardMapCache>, config: ExecutorConfig) -> Executor {
        Executor {
            pool: NodePool::with_rewrite(
                config.node_cool_down,
                config.node_address_rewrite.clone(),
            )
            .with_credentials(config.credentials.clone())
            .with_local(config.local_node.clone()),
            cache,
            config,
        }
    }

    /// The shard-map cache requests are routed with.
    pub fn cache(&self) -> &Arc<ShardMapCache> {
        &self.cache
    }

    /// Registers `kvdb_<scope>_requests_total`, `kvdb_<scope>_request_duration_seconds`,
    /// `kvdb_<scope>_retries_total` and the map cache's `kvdb_<scope>_shard_map_*` in
    /// `registry`, and records into them from now on.
    pub fn register_metrics(&mut self, registry: &mut Registry, scope: &str) {
        self.config.requests = RequestMetrics::register(registry, scope);
        self.config.retries = Some(RetryMetrics::register(registry, scope));
        self.cache.register_metrics(registry, scope);
    }

    /// The node connection pool.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &NodePool {
        &self.pool
    }

    /// The deadline for a request with an optional timeout.
    pub fn deadline(&self, timeout: Option<Duration>) -> Instant {
        Instant::now() + timeout.unwrap_or(self.config.default_timeout)
    }

    /// Reads a key.
    pub async fn get(
        &self,
        req: pb::GetRequest,
        deadline: Instant,
    ) -> Result<pb::GetResponse, KvError> {
        let access = Access::for_read(req.consistency)?;
        let key = req.key.clone();
        self.config
            .requests
            .measure(
                "get",
                self.run(slot(&key), access, deadline, |link, target| {
                    let request = pb::NodeGetRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.get(request).await }
                }),
            )
            .await
    }

    /// Writes a key. The request's write id must be set by the caller (see
    /// [`WriteIds`](crate::write_id::WriteIds)).
    pub async fn put(
        &self,
        req: pb::PutRequest,
        deadline: Instant,
    ) -> Result<pb::PutResponse, KvError> {
        let key = req.key.clone();
        self.config
            .requests
            .measure(
                "put",
                self.run(slot(&key), Access::Write, deadline, |link, target| {
                    let request = pb::NodePutRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.put(request).await }
                }),
            )
            .await
    }

    /// Deletes a key.
    pub async fn delete(
        &self,
        req: pb::DeleteRequest,
        deadline: Instant,
    ) -> Result<pb::DeleteResponse, KvError> {
        let key = req.key.clone();
        self.config
            .requests
            .measure(
                "delete",
                self.run(slot(&key), Access::Write, deadline, |link, target| {
                    let request = pb::NodeDeleteRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.delete(request).await }
                }),
            )
            .await
    }

    /// Updates a key (read-modify-write at the shard); retried as a put, with the write id
    /// the caller set, so a retry applies it once.
    pub async fn update(
        &self,
        req: pb::UpdateRequest,
        deadline: Instant,
    ) -> Result<pb::UpdateResponse, KvError> {
        let key = req.key.clone();
        self.config
            .requests
            .measure(
                "update",
                self.run(slot(&key), Access::Write, deadline, |link, target| {
                    let request = pb::NodeUpdateRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.update(request).await }
                }),
            )
            .await
    }

    /// Runs a transaction at the shard of its keys' one slot (keys in several slots, or none,
    /// are refused before anything is sent); retried as a put, with the caller's write id.
    pub async fn txn(
        &self,
        req: pb::TxnRequest,
        deadline: Instant,
    ) -> Result<pb::TxnResponse, KvError> {
        let slot = common_slot(txn_keys(&req))?;
        self.config
            .requests
            .measure(
                "txn",
                self.run(slot, Access::Write, deadline, |link, target| {
                    let request = pb::NodeTxnRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.txn(request).await }
                }),
            )
            .await
    }

    /// One page of the keys of the shard that owns `slot_start`, in its slots up to
    /// `slot_end`, after `after`; a strong read at the shard's leader.
    pub async fn scan(
        &self,
        req: pb::ScanRequest,
        deadline: Instant,
    ) -> Result<pb::ScanResponse, KvError> {
        let first = slot_from_wire(req.slot_start)?;
        self.config
            .requests
            .measure(
                "scan",
                self.run(first, Access::StrongRead, deadline, |link, target| {
                    let request = pb::NodeScanRequest {
                        target: Some(target),
                        request: Some(req.clone()),
                    };
                    async move { link.scan(request).await }
                }),
            )
            .await
    }

    /// The retry loop shared by every operation.
    async fn run<T, F, Fut>(
        &self,
        slot: Slot,
        access: Access,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, KvError>
    where
        F: FnMut(NodeLink, pb::ShardTarget) -> Fut,
        Fut: Future<Output = Result<T, KvError>>,
    {
        let mut attempt = 0u32;
        let mut hint: Option<String> = None;
        let mut hint_used = false;
        let mut last = KvError::DeadlineExceeded;
        loop {
            if Instant::now() >= deadline {
                tracing::debug!(error = %last, "request deadline passed while retrying");
                // With no map at all, the cause is known and is not the deadline: the
                // coordinators are unreachable, or the cluster is not initialized.
                return Err(match last {
                    KvError::NoShardMap => KvError::NoShardMap,
                    _ => KvError::DeadlineExceeded,
                });
            }
            let route = match self.cache.router().route_slot(slot) {
                Ok(route) => route,
                Err(e) => {
                    last = e;
                    self.refresh(Refresh::Forced, deadline, deadline).await;
                    self.pause(attempt, deadline).await;
                    attempt += 1;
                    continue;
                }
            };
            let Some(address) = hint.take().or_else(|| self.pick(&route, access)) else {
                last =
                    KvError::Unavailable(format!("shard {} has no reachable replica", route.shard));
                self.refresh(Refresh::Throttled, self.patience(), deadline)
                    .await;
                self.pause(attempt, deadline).await;
                attempt += 1;
                continue;
            };
            let target = pb::ShardTarget {
                shard_id: route.shard.0,
                epoch: route.epoch.0,
            };
            let link = self.pool.link(&address)?;
            let attempt_deadline = self.attempt_deadline(deadline);
            let error = match tokio::time::timeout_at(attempt_deadline, call(link, target)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(error)) => error,
                // A node that does not answer in time is treated as down: avoided for its
                // cool-down (by the next requests, and by this one's retry, whose Backoff arm
                // below marks it), so they go to a replica that knows the current leader.
                Err(_) if attempt_deadline >= deadline => {
                    self.pool.mark_failed(&address);
                    return Err(KvError::DeadlineExceeded);
                }
                Err(_) => KvError::Unavailable(format!("{address} did not answer in time")),
            };
            tracing::debug!(%address, %error, attempt, "request failed");
            let action = error.retry_action();
            if let (Some(retries), false) = (&self.config.retries, action == RetryAction::Fail) {
                retries.record(&error);
            }
            match action {
                RetryAction::Fail => return Err(error),
                RetryAction::RetryAt(leader) if !hint_used && leader != address => {
                    hint_used = true;
                    self.note_leader(&route, &leader);
                    hint = Some(leader);
                }
                action @ (RetryAction::RetryAt(_)
                | RetryAction::RefreshThenRetry { force: false }) => {
                    // A hint already followed once this request: no second retry at once (two
                    // nodes hinting at each other would loop), but the newest hint is still
                    // the best guess. The first may have named a leader that died just after;
                    // without noting the later one, picks would keep to the stale one.
                    if let RetryAction::RetryAt(leader) = action
                        && leader != address
                    {
                        self.note_leader(&route, &leader);
                    }
                    self.refresh(Refresh::Throttled, self.patience(), deadline)
                        .await;
                    self.pause(attempt, deadline).await;
                }
                RetryAction::RefreshThenRetry { force: true } => {
                    self.refresh(Refresh::Forced, deadline, deadline).await;
                    // The first retry after a move goes at once. Later ones pause: a map that
                    // still routes to a node which disagrees with it (say, one restarting
                    // without its replicas yet) would otherwise be retried in a tight loop.
                    if attempt > 0 {
                        self.pause(attempt, deadline).await;
                    }
                }
                RetryAction::Backoff => {
                    // Not waiting for the map: the node, not the map, is the
                    // likely problem, and the cool-down must outlast the wait
                    // for the retry to try another replica.
                    self.pool.mark_failed(&address);
                    self.refresh(Refresh::Throttled, Instant::now(), deadline)
                        .await;
                    self.pause(attempt, deadline).await;
                }
            }
            last = error;
            attempt += 1;
        }
    }

    /// The node to send to. For writes and strong reads: the leader (or the
    /// first replica when no leader is known), unless it failed recently;
    /// then a replica that has not, which knows a newly elected leader
    /// before the map does and answers NOT_LEADER with a hint. For eventual
    /// reads: a random replica that has not failed recently.
    fn pick(&self, route: &Route, access: Access) -> Option<String> {
        let healthy = |addr: &&str| !self.pool.is_failed(addr);
        match access {
            Access::EventualRead => {
                let live: Vec<&str> = route
                    .replicas
                    .iter()
                    .map(|r| r.address.as_str())
                    .filter(healthy)
                    .collect();
                if live.is_empty() {
                    return route.replicas.first().map(|r| r.address.clone());
                }
                let i = rand::random_range(0..live.len());
                Some(live[i].to_owned())
            }
            _ => {
                let leader = route.leader.as_ref().or(route.replicas.first())?;
                if !self.pool.is_failed(&leader.address) {
                    return Some(leader.address.clone());
                }
                let other = route.replicas.iter().find(|r| healthy(&r.address.as_str()));
                Some(other.unwrap_or(leader).address.clone())
            }
        }
    }

    /// Remembers `leader` (an address) as the shard's leader in the cache.
    fn note_leader(&self, route: &Route, leader: &str) {
        if let Some(r) = route.replicas.iter().find(|r| r.address == leader) {
            self.cache.note_leader(route.shard, r.node);
        }
    }

    /// When the next attempt gives up on its node: after `attempt_timeout`, or half of what
    /// is left of the request's time, whichever is sooner (so a short request still has
    /// time for a second attempt elsewhere), but never sooner than [`MIN_ATTEMPT`] and never
    /// after the request's `deadline`.
    fn attempt_deadline(&self, deadline: Instant) -> Instant {
        let now = Instant::now();
        let half_left = deadline.saturating_duration_since(now) / 2;
        let bound = self.config.attempt_timeout.min(half_left).max(MIN_ATTEMPT);
        (now + bound).min(deadline)
    }

    /// When a throttled refresh stops being worth waiting for.
    fn patience(&self) -> Instant {
        Instant::now() + self.config.refresh_patience
    }

    /// Refreshes the map in a task of its own, so the fetch completes (and
    /// later requests benefit) even when this request stops waiting for it
    /// at `until` or its `deadline`, whichever comes first.
    async fn refresh(&self, refresh: Refresh, until: Instant, deadline: Instant) {
        let cache = Arc::clone(&self.cache);
        let fetch = tokio::spawn(async move { cache.refresh(refresh).await });
        match tokio::time::timeout_at(until.min(deadline), fetch).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => tracing::debug!(error = %e, "shard-map refresh failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "shard-map refresh task failed"),
            Err(_) => {
                tracing::debug!("shard-map refresh still running; going on with the cached map")
            }
        }
    }

    async fn pause(&self, attempt: u32, deadline: Instant) {
        let wake = (Instant::now() + self.config.backoff.delay(attempt)).min(deadline);
        tokio::time::sleep_until(wake).await;
    }
}

/// Every key a transaction names, guards first.
fn txn_keys(req: &pb::TxnRequest) -> impl Iterator<Item = &[u8]> {
    use pb::txn_op::Op;
    let ops = req.ops.iter().flat_map(|op| match &op.op {
        Some(Op::Get(get)) => [Some(&get.key), None],
        Some(Op::Put(put)) => [Some(&put.key), None],
        Some(Op::Delete(delete)) => [Some(&delete.key), None],
        Some(Op::Update(update)) => [Some(&update.key), None],
        Some(Op::Rename(rename)) => [Some(&rename.key), Some(&rename.to)],
        None => [None, None],
    });
    req.guards
        .iter()
        .map(|g| &g.key)
        .chain(ops.flatten())
        .map(|key| key.as_ref())
}

#[cfg(test)]
mod tests;

impl ExecutorConfig {
    /// The coordinator client settings that go with these: the same credentials.
    pub fn coordinator_client(&self) -> CoordinatorClientConfig {
        CoordinatorClientConfig {
            credentials: self.credentials.clone(),
            ..CoordinatorClientConfig::default()
        }
    }
}
