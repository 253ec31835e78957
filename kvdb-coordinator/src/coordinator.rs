//! [`Coordinator`]: the handle to one running coordinator member, used by the
//! gRPC service, the admin API and tests.
//!
//! Reads ([`Coordinator::map`], [`Coordinator::leader`], watches) are served
//! from this member's applied state. Mutations become Raft commands; on a
//! follower they are forwarded to the leader, and while no leader is known
//! they wait (bounded) for one to be elected before failing with
//! [`CoordinatorError::NotLeader`].
//!
//! Out of scope: network servers (see [`crate::server`] and the admin API),
//! which take a handle and are started and stopped by the caller.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kvdb_core::raft::transport::forward::{self, ForwardError};
use kvdb_core::raft::transport::{PeerChannels, RaftRouter};
use kvdb_core::{MapVersion, NodeId, NodeStatus, ShardMap};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::{RwLock, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::{Command, CommandResult};
use crate::config::CoordinatorConfig;
use crate::error::CoordinatorError;
use crate::feed::{Feed, View};
use crate::forward::FORWARD_TIMEOUT;
use crate::leadership::{self, ClusterInfo, LeaderInfo};
use crate::liveness::{self, LivenessTracker};
use crate::machine::MetaMachine;
use crate::raft_group::{self, GROUP_ID, MetaRaft, TypeConfig};
use crate::scheduler::{self, SchedulerMemory, StartedOperation};
use crate::shard_stats::ShardStatsBook;
use crate::watch::Watcher;

mod api;

/// How many times a mutation is tried before giving up with `NotLeader`.
const MAX_ATTEMPTS: u32 = 4;

pub(crate) use api::split_point;
pub use api::{Report, ShardSplit};

/// A running coordinator member. Cheap to clone; clones share the member.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
    /// Whether mutations are forwarded to the leader (false for requests
    /// that were themselves forwarded).
    forward: bool,
}

/// Counts of node status changes by the new status's name.
pub(crate) type StatusCounts = kvdb_core::metrics::client::metrics::family::Family<
    [(&'static str, &'static str); 1],
    kvdb_core::metrics::client::metrics::counter::Counter,
>;

/// See [`Coordinator::counts`].
pub(crate) struct Counts<'a> {
    pub(crate) liveness_changes: &'a StatusCounts,
    pub(crate) operations: &'a crate::scheduler::OperationCounts,
    pub(crate) feed: &'a Feed,
}

struct Inner {
    config: CoordinatorConfig,
    raft: MetaRaft,
    machine: Arc<RwLock<MetaMachine>>,
    router: RaftRouter<TypeConfig>,
    peers: PeerChannels,
    feed: Arc<Feed>,
    liveness: Mutex<LivenessTracker>,
    /// Node status changes this member proposed (failure detection), by new status.
    liveness_changes: StatusCounts,
    scheduler: SchedulerMemory,
    shard_stats: ShardStatsBook,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("id", &self.inner.config.id)
            .field("forward", &self.forward)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Validates `config`, opens the member's storage and starts its Raft
    /// group, failure detector and leader announcements. Servers are not
    /// started: pass the handle to [`crate::serve`] (and the admin router).
    pub async fn start(config: CoordinatorConfig) -> Result<Coordinator, CoordinatorError> {
        config.validate()?;
        let (stop, _) = watch::channel(false);
        let (feed, distributor) = Feed::new(config.watch_buffer);
        let feed = Arc::new(feed);
        // Runs before the group opens, which may already apply entries; ends
        // when `stop` turns true or is dropped (a failed start).
        let mut distributor_stop = stop.subscribe();
        let distributor = tokio::spawn(distributor.run(async move {
            let _ = distributor_stop.wait_for(|stopped| *stopped).await;
        }));
        let group = raft_group::open(&config, feed.clone()).await?;
        let tracker = LivenessTracker::new(config.suspect_after, config.dead_after, Instant::now());
        let coordinator = Coordinator {
            inner: Arc::new(Inner {
                config,
                raft: group.raft,
                machine: group.machine,
                router: group.router,
                peers: group.peers,
                feed,
                liveness: Mutex::new(tracker),
                liveness_changes: StatusCounts::default(),
                scheduler: SchedulerMemory::default(),
                shard_stats: ShardStatsBook::default(),
                stop,
                tasks: Mutex::default(),
            }),
            forward: true,
        };
        let interval = coordinator.inner.config.liveness_check_interval;
        let tasks = vec![
            distributor,
            tokio::spawn(liveness::run(
                coordinator.clone(),
                interval,
                coordinator.stopped(),
            )),
            tokio::spawn(scheduler::run(
                coordinator.clone(),
                coordinator.inner.config.scheduler,
                coordinator.stopped(),
            )),
            tokio::spawn(leadership::announce(
                coordinator.clone(),
                coordinator.stopped(),
            )),
        ];
        *coordinator.lock_tasks() = tasks;
        tracing::info!(
            id = coordinator.inner.config.id,
            "coordinator member started"
        );
        Ok(coordinator)
    }

    /// Stops the background tasks and the Raft group and ends every watch.
    /// The storage files close shortly after, once openraft's workers have
    /// dropped them; a member restarted on the same directory waits for that.
    pub async fn shutdown(self) {
        let _ = self.inner.stop.send(true);
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for task in &tasks {
            task.abort();
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "coordinator raft did not shut down cleanly");
        }
        self.inner.router.unregister(GROUP_ID);
        for task in tasks {
            let _ = task.await;
        }
    }

    /// This member's configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// This member's applied shard map. Lock-free.
    pub fn map(&self) -> Arc<ShardMap> {
        self.inner.feed.view().map.clone()
    }

    /// Where the leader is, as far as this member knows.
    pub fn leader(&self) -> LeaderInfo {
        leadership::leader_info(&self.inner.raft.metrics().borrow(), &self.view())
    }

    /// A summary of the group and the map.
    pub fn cluster(&self) -> ClusterInfo {
        let metrics = self.raft_metrics().borrow().clone();
        let ready = leadership::is_ready(&metrics);
        leadership::cluster_info(&metrics, &self.view(), ready)
    }

    /// Whether this member knows a leader and has applied everything
    /// committed before that leader's term: its reads are then current as
    /// of its leader's election.
    pub fn is_ready(&self) -> bool {
        leadership::is_ready(&self.raft_metrics().borrow())
    }

    /// Whether this member is the leader right now.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft_metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id)
    }

    /// Whether an operator paused the scheduler, as this member applied it.
    pub fn scheduler_paused(&self) -> bool {
        self.inner.feed.view().scheduler_paused
    }

    /// The operations this member's scheduler started while it led, newest
    /// first (kept in memory; a new leader starts an empty list).
    pub fn recent_operations(&self) -> Vec<StartedOperation> {
        self.inner.scheduler.recent()
    }

    /// A watcher of every map change after `from`; see [`Watcher`].
    pub async fn subscribe(&self, from: MapVersion) -> Watcher {
        Watcher::start(
            self.inner.feed.clone(),
            &self.inner.machine,
            from,
            self.stopped(),
        )
        .await
    }

    /// Applies `command` through Raft (forwarding it to the leader from a
    /// follower) and returns its outcome. The typed methods wrap this.
    pub async fn execute(&self, command: Command) -> CommandResult {
        let deadline = Instant::now() + self.leader_wait();
        for attempt in 0..MAX_ATTEMPTS {
            let error = match self.inner.raft.client_write(command.clone()).await {
                Ok(response) => return response.data,
                Err(error) => error,
            };
            let forward_to = match error {
                RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => to,
                RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                    return Err(CoordinatorError::Internal(e.to_string()));
                }
                RaftError::Fatal(e) => {
                    return Err(CoordinatorError::Unavailable(format!(
                        "coordinator stopped: {e}"
                    )));
                }
            };
            if let Some(node) = forward_to.leader_node
                && forward_to.leader_id != Some(self.inner.config.id)
            {
                if !self.forward {
                    return Err(self.not_leader());
                }
                return self.forward_write(&node, command).await;
            }
            // No leader known (an election), or a stale view of ourselves.
            if !self.wait_for_leader(deadline, attempt > 0).await {
                break;
            }
        }
        Err(self.not_leader())
    }

    /// Like [`Coordinator::execute`], but never forwarded: for the leader's
    /// own proposals and for requests another member forwarded.
    pub(crate) async fn execute_local(&self, command: Command) -> CommandResult {
        self.local_only().execute(command).await
    }

    /// A handle that answers `NotLeader` instead of forwarding.
    pub(crate) fn local_only(&self) -> Coordinator {
        Coordinator {
            inner: self.inner.clone(),
            forward: false,
        }
    }

    /// Whether this handle forwards mutations to the leader.
    pub(crate) fn forwards(&self) -> bool {
        self.forward
    }

    /// The error for a mutation this member cannot take.
    pub(crate) fn not_leader(&self) -> CoordinatorError {
        let leader = self.leader();
        CoordinatorError::NotLeader {
            leader_id: leader.id,
            leader_grpc: leader.grpc_address,
            leader_admin: leader.admin_address,
        }
    }

    /// Has the leader at `node` apply `command`, over the Raft transport's forwarded write
    /// (the one forwarding path for commands), and returns its outcome. The leader never
    /// forwards it again: if it lost the leadership on the way, this member answers
    /// `NotLeader` with what it knows.
    async fn forward_write(&self, node: &BasicNode, command: Command) -> CommandResult {
        let channel = self.channel(node)?;
        let written =
            forward::client_write::<TypeConfig>(channel, GROUP_ID, &command, FORWARD_TIMEOUT).await;
        let refused = match written {
            Ok(response) => return response.data,
            Err(ForwardError::Refused(refused)) => *refused,
            Err(e @ (ForwardError::Call(_) | ForwardError::Codec(_))) => {
                return Err(CoordinatorError::Unavailable(format!(
                    "leader {}: {e}",
                    node.addr
                )));
            }
        };
        Err(match refused {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => self.not_leader(),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                CoordinatorError::Internal(e.to_string())
            }
            RaftError::Fatal(e) => {
                CoordinatorError::Unavailable(format!("leader {} stopped: {e}", node.addr))
            }
        })
    }

    /// A channel to another member's gRPC address.
    pub(crate) fn channel(
        &self,
        node: &BasicNode,
    ) -> Result<kvdb_core::auth::AuthChannel, CoordinatorError> {
        self.inner
            .peers
            .channel(&node.addr)
            .map_err(|e| CoordinatorError::Unavailable(format!("leader {}: {e}", node.addr)))
    }

    /// How long a mutation waits for a leader to be elected.
    fn leader_wait(&self) -> Duration {
        self.inner.config.raft_election_timeout * 4
    }

    /// Waits until some leader is known (after the next Raft state change,
    /// when `changed` is set), or `deadline`. True if one is.
    async fn wait_for_leader(&self, deadline: Instant, changed: bool) -> bool {
        let mut metrics = self.raft_metrics();
        metrics.borrow_and_update();
        if changed
            && tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
        {
            return false;
        }
        let known = metrics.wait_for(|m| m.current_leader.is_some());
        matches!(tokio::time::timeout_at(deadline, known).await, Ok(Ok(_)))
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.inner.feed.view()
    }

    pub(crate) fn raft(&self) -> &crate::raft_group::MetaRaft {
        &self.inner.raft
    }

    pub(crate) fn raft_metrics(&self) -> watch::Receiver<RaftMetrics<u64, BasicNode>> {
        self.inner.raft.metrics()
    }

    pub(crate) fn router(&self) -> RaftRouter<TypeConfig> {
        self.inner.router.clone()
    }

    /// A receiver that turns true when the member shuts down.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    /// What this member counted for its metrics: node status changes it proposed, operations
    /// its scheduler started, and what its watchers follow and were sent.
    pub(crate) fn counts(&self) -> Counts<'_> {
        Counts {
            liveness_changes: &self.inner.liveness_changes,
            operations: &self.inner.scheduler.started_total,
            feed: &self.inner.feed,
        }
    }

    /// The status changes due at `now`, for the liveness loop of a leader.
    pub(crate) fn liveness_due(&self, now: Instant) -> Vec<(NodeId, NodeStatus)> {
        let term = self.raft_metrics().borrow().current_term;
        let map = self.map();
        let mut tracker = self.lock_liveness();
        tracker.lead(term, now);
        tracker.due(&map, now)
    }

    /// The replicas' figures nodes sent with their heartbeats (kept while this member
    /// leads; a follower relays heartbeats and keeps none).
    pub fn shard_stats(&self) -> &ShardStatsBook {
        &self.inner.shard_stats
    }

    pub(crate) fn scheduler_memory(&self) -> &SchedulerMemory {
        &self.inner.scheduler
    }

    /// Records a heartbeat in the leader's clocks.
    pub(crate) fn record_heartbeat(&self, node: NodeId, now: Instant) {
        let term = self.raft_metrics().borrow().current_term;
        let mut tracker = self.lock_liveness();
        tracker.lead(term, now);
        tracker.record(node, now);
    }

    fn lock_liveness(&self) -> std::sync::MutexGuard<'_, LivenessTracker> {
        self.inner
            .liveness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
