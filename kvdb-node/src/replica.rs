//! [`Replica`]: this node's member of one shard's Raft group.
//!
//! A replica bundles the group's [`openraft::Raft`] handle (log in the node's
//! shared [`LogDb`], state machine [`KvMachine`] over the shard's tables in the
//! node's key-value database, network over the shared peer pool) with the
//! [`Storage`] that reads are served from, its read lease, and three small
//! background tasks (`replica_tasks`): one wakes the replica manager whenever
//! the group's leader or term changes; while this node leads, one proposes
//! purges of expired keys and one sweeps the rows of removed collections.
//!
//! Out of scope: deciding which replicas exist, initializing groups and
//! changing membership; that is the replica manager's job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvdb_core::raft::lease::LeaseClock;
use kvdb_core::raft::log_store::{LogDb, LogDbError};
use kvdb_core::raft::quiesce::Quiescer;
use kvdb_core::raft::read_floor::ReadFloor;
use kvdb_core::raft::state_machine::{SnapshotCounts, StateMachineError, StateMachineStore};
use kvdb_core::raft::transport::{GrpcNetworkFactory, PeerChannels, RaftRouter};
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::storage::{CommitDurability, RedbStorage, Storage, StorageError, WriteBuffer};
use kvdb_core::{NodeId, ShardId};
use openraft::error::{Fatal, InitializeError, RaftError};
use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinHandle};

use crate::command::{Command, CommandResult, Op, Split};
use crate::config::{ConfigError, NodeConfig};
use crate::expiry;
use crate::kv_machine::leftovers::Leftovers;
use crate::kv_machine::{KvMachine, MachineError};
use crate::raft_types::{RaftId, ShardRaft, ShardRaftConfig};
use crate::read_queue::{ReadError, ReadQueue, observed};
use crate::replica_tasks;
use crate::slow_leader::{self, SlowLeaderPolicy, SlowLeaderState};
use crate::split::{Fence, Nursery, ShardCreator, SlotRange};
use crate::write_queue::{WriteError, WriteQueue};

/// What every replica of a node shares.
#[derive(Clone)]
pub struct ReplicaEnv {
    /// This node's id, which is also its Raft node id in every group.
    pub node: NodeId,
    /// The node's configuration.
    pub config: Arc<NodeConfig>,
    /// Every group's Raft log (and snapshots).
    pub log_db: LogDb,
    /// Every shard's key-value tables, behind the buffer that flushes their writes together.
    pub kv_db: Arc<WriteBuffer>,
    /// Connections to peer nodes, shared by all groups.
    pub peers: PeerChannels,
    /// The groups the Raft transport service dispatches to.
    pub router: RaftRouter<ShardRaftConfig>,
    /// Woken whenever some replica's leader or term changes.
    pub leadership_changed: Arc<Notify>,
    /// Which shards have a replica here, and where splits create new shards' state.
    pub nursery: Arc<Nursery>,
    /// Turns idle groups' ticks off (see `kvdb_core::raft::quiesce`); `None` when off.
    pub quiescer: Option<Arc<Quiescer<ShardRaftConfig>>>,
    /// How the write queues of every shard batch, for the node's metrics.
    pub write_batches: Arc<crate::write_queue::BatchCounts>,
}

/// Why a replica could not be opened, initialized or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The shard's key-value tables failed.
    #[error("shard {shard}: storage: {source}")]
    Storage {
        /// The shard whose replica failed.
        shard: ShardId,
        /// Why the shard's tables could not be opened or cleared.
        #[source]
        source: StorageError,
    },
    /// The state machine could not be opened.
    #[error("shard {shard}: state machine: {source}")]
    Machine {
        /// The shard whose replica failed.
        shard: ShardId,
        /// Why the machine's state (metadata, sessions) could not be loaded.
        #[source]
        source: MachineError,
    },
    /// The Raft state-machine store (snapshots) failed.
    #[error("shard {shard}: raft state machine store: {source}")]
    StateMachine {
        /// The shard whose replica failed.
        shard: ShardId,
        /// Why the snapshot store could not be opened, or the snapshot removed.
        #[source]
        source: StateMachineError,
    },
    /// The Raft log database failed.
    #[error("shard {shard}: raft log: {source}")]
    Log {
        /// The shard whose replica failed.
        shard: ShardId,
        /// Why the group's log could not be read or removed.
        #[source]
        source: LogDbError,
    },
    /// The Raft group stopped with a fatal error.
    #[error("shard {shard}: raft: {source}")]
    Fatal {
        /// The shard whose replica failed.
        shard: ShardId,
        /// openraft's error from starting the group; boxed, as it would bloat every `Result`.
        #[source]
        source: Box<Fatal<RaftId>>,
    },
    /// Initializing the group failed for a reason other than "already initialized".
    #[error("shard {shard}: initialize: {source}")]
    Initialize {
        /// The shard whose replica failed.
        shard: ShardId,
        /// openraft's refusal; boxed, as it would bloat every `Result`.
        #[source]
        source: Box<RaftError<RaftId, InitializeError<RaftId, BasicNode>>>,
    },
    /// The node configuration gives no valid Raft configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A blocking storage task panicked.
    #[error("shard {shard}: storage task: {source}")]
    Task {
        /// The shard whose replica failed.
        shard: ShardId,
        /// The panic (or cancellation) of the blocking task.
        #[source]
        source: JoinError,
    },
}

/// Who leads a shard's group, as this replica's Raft sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// Whether this node is the group's leader.
    pub is_leader: bool,
    /// The leader's node id, if known.
    pub leader: Option<NodeId>,
    /// The leader's data-plane address, if known.
    pub leader_address: Option<String>,
    /// The current Raft term.
    pub term: u64,
    /// The voters of the group's effective membership.
    pub voters: Vec<NodeId>,
}

/// This node's member of one shard's Raft group.
pub struct Replica {
    shard: ShardId,
    node: NodeId,
    raft: ShardRaft,
    storage: Arc<dyn Storage>,
    writes: WriteQueue,
    reads: ReadQueue,
    /// Who acknowledged this replica's leadership, and when; `None` without lease reads.
    lease: Option<Arc<LeaseClock>>,
    /// How long an acknowledgement keeps the lease.
    lease_window: Duration,
    /// The index each leadership's strong reads wait for.
    floor: Arc<ReadFloor>,
    /// The group's Raft metrics, for the leadership and lease checks.
    metrics: watch::Receiver<RaftMetrics<RaftId, BasicNode>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// While this leader hands the shard over: the target's address.
    handover: Arc<std::sync::Mutex<Option<String>>>,
    /// Set by the first [`Replica::stop`].
    stopped: AtomicBool,
    /// The slow-leader check's memory.
    slow: std::sync::Mutex<SlowLeaderState>,
    /// The slots the state machine serves (see [`crate::split`]).
    fence: Arc<Fence>,
    /// Reads and writes answered since the replica opened, for the coordinator's rates.
    reads_total: AtomicU64,
    writes_total: AtomicU64,
    /// Leaders this replica has seen take over, counted by its leadership watcher.
    leader_changes: Arc<AtomicU64>,
    snapshots: Arc<SnapshotCounts>,
    /// Bytes appended to this replica's log since it opened (see `crate::log_compaction`).
    log_bytes: Arc<AtomicU64>,
    /// Removed collections whose member rows wait for the sweeper (`kv_machine::leftovers`).
    leftovers: Arc<Leftovers>,
}

/// One replica's Raft position and request counts (see [`Replica::raft_figures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftFigures {
    /// This replica's Raft role, as openraft names it.
    pub role: &'static str,
    /// Whether this replica leads its group.
    pub is_leader: bool,
    /// The current term.
    pub term: u64,
    /// The index of the last entry in this replica's log (0: none).
    pub last_log_index: u64,
    /// The index of the last entry applied to the state machine.
    pub applied_index: u64,
    /// The index the last snapshot covers.
    pub snapshot_index: u64,
    /// The index up to which the log was purged.
    pub purged_index: u64,
    /// On a leader: each follower and the index it is known to hold.
    pub replication: Vec<(NodeId, u64)>,
    /// Reads answered since the replica opened.
    pub reads_total: u64,
    /// Writes answered since the replica opened.
    pub writes_total: u64,
    /// Times the group's leader, as this replica knows it, changed to another node.
    pub leader_changes: u64,
    /// Snapshots this replica built from its state.
    pub snapshots_built: u64,
    /// Snapshots this replica received from a leader and installed.
    pub snapshots_installed: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("shard", &self.shard)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens (creating if needed) this node's replica of `shard`, starts its
    /// Raft group and registers it with the transport. A new replica is an
    /// uninitialized member that waits to be initialized or added.
    pub async fn open(env: &ReplicaEnv, shard: ShardId) -> Result<Self, ReplicaError> {
        let raft_config = Arc::new(env.config.raft_config(shard)?);
        let kv_db = env.kv_db.clone();
        let snapshot_db = env.log_db.database().clone();
        let nursery: Arc<dyn ShardCreator> = env.nursery.clone();
        #[cfg(feature = "planted-bugs")]
        let planted = env.config.planted_bug;
        let state_machine = tokio::task::spawn_blocking(move || {
            let storage: Arc<dyn Storage> = Arc::new(
                RedbStorage::open_in(&kv_db, shard, CommitDurability::Deferred)
                    .map_err(|source| ReplicaError::Storage { shard, source })?,
            );
            let machine = KvMachine::open(storage.clone())
                .map_err(|source| ReplicaError::Machine { shard, source })?
                .with_creator(nursery);
            #[cfg(feature = "planted-bugs")]
            let machine = machine.with_planted_bug(planted);
            let fence = machine.fence().clone();
            let leftovers = machine.leftovers().clone();
            let store = StateMachineStore::open(snapshot_db, shard.0, machine)
                .map_err(|source| ReplicaError::StateMachine { shard, source })?;
            Ok::<_, ReplicaError>((storage, store, fence, leftovers))
        })
        .await
        .map_err(|source| ReplicaError::Task { shard, source })?;
        let (storage, store, fence, leftovers) = state_machine?;
        let snapshots = store.snapshot_counts();
        let lease = env.config.lease_reads.then(Arc::<LeaseClock>::default);
        let mut log = env.log_db.group::<ShardRaftConfig>(shard.0);
        let log_bytes = log.appended_bytes();
        let vote_floor = log
            .vote_floor()
            .map_err(|source| ReplicaError::Log { shard, source })?;
        let mut network = GrpcNetworkFactory::new(shard.0, env.peers.clone());
        if let Some(lease) = &lease {
            log = log.with_lease_clock(lease.clone());
            network = network.with_lease_clock(lease.clone());
        }
        let raft = ShardRaft::new(env.node.0, raft_config, network, log, store)
            .await
            .map_err(|source| ReplicaError::Fatal {
                shard,
                source: Box::new(source),
            })?;
        env.router
            .register_with_floor(shard.0, raft.clone(), vote_floor);
        let floor = Arc::<ReadFloor>::default();
        let (writes, batcher) = WriteQueue::spawn(raft.clone(), env.write_batches.clone());
        let (reads, confirmer) = ReadQueue::spawn(raft.clone(), env.node.0, floor.clone());
        let handover = Arc::default();
        let leader_changes = Arc::<AtomicU64>::default();
        let tasks = std::sync::Mutex::new(vec![
            batcher,
            confirmer,
            tokio::spawn(replica_tasks::watch_leadership(
                raft.clone(),
                env.leadership_changed.clone(),
                floor.clone(),
                leader_changes.clone(),
            )),
            tokio::spawn(expiry::purge_expired(
                raft.clone(),
                storage.clone(),
                env.config.clone(),
                Arc::clone(&handover),
            )),
            tokio::spawn(replica_tasks::sweep_leftovers(
                raft.clone(),
                leftovers.clone(),
                env.config.purge_interval,
                Arc::clone(&handover),
            )),
        ]);
        tracing::debug!(%shard, node = %env.node, "replica opened");
        Ok(Self {
            shard,
            node: env.node,
            metrics: raft.metrics(),
            raft,
            storage,
            writes,
            reads,
            lease,
            lease_window: env.config.election_timeout_min,
            floor,
            tasks,
            handover,
            stopped: AtomicBool::new(false),
            slow: std::sync::Mutex::default(),
            fence,
            reads_total: AtomicU64::new(0),
            writes_total: AtomicU64::new(0),
            leader_changes,
            snapshots,
            log_bytes,
            leftovers,
        })
    }

    /// Bytes appended to this replica's log since it opened, and snapshots it built or
    /// installed: what log compaction by size decides on.
    pub fn log_growth(&self) -> (u64, u64) {
        (
            self.log_bytes.load(Ordering::Relaxed),
            self.snapshots.built() + self.snapshots.installed(),
        )
    }

    /// Asks the group to build a snapshot now, after which it purges the log behind it.
    pub async fn trigger_snapshot(&self) {
        if let Err(e) = self.raft.trigger().snapshot().await {
            tracing::debug!(shard = %self.shard, error = %e, "snapshot not triggered");
        }
    }

    /// The shard this replica belongs to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// While this leader hands the shard over (see [`crate::transfer`]): the
    /// target's address, which writes and strong reads are sent to instead.
    pub fn handover_target(&self) -> Option<String> {
        self.handover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Starts (`Some(target address)`) or ends (`None`) a handover.
    pub fn set_handover(&self, target: Option<String>) {
        *self
            .handover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = target;
    }

    /// The group's Raft handle.
    pub fn raft(&self) -> &ShardRaft {
        &self.raft
    }

    /// Why the group's Raft core stopped, when it stopped by itself (a storage or
    /// invariant error: openraft's `Fatal`), not through [`Replica::stop`].
    pub fn died(&self) -> Option<String> {
        if self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        match &self.metrics.borrow().running_state {
            Ok(()) => None,
            Err(fatal) => Some(fatal.to_string()),
        }
    }

    /// Proposes a client write through the replica's batching [`WriteQueue`]; answers once it
    /// is committed on a majority and applied here.
    pub async fn write(&self, command: Command) -> Result<CommandResult, WriteError> {
        let written = self.writes.write(command).await;
        if written.is_ok() {
            self.writes_total.fetch_add(1, Ordering::Relaxed);
        }
        written
    }

    /// Whether this replica still serves `key`'s slot: a split applied here may have handed
    /// it to another shard before this node's map shows it.
    pub fn serves(&self, key: &[u8]) -> bool {
        self.fence.serves(kvdb_core::slot::slot(key))
    }

    /// The slots this replica's state machine serves.
    pub fn serving(&self) -> SlotRange {
        self.fence.range()
    }

    /// Proposes `split` in the group's log and waits until it is applied here: the new
    /// shards this replica created.
    pub async fn propose_split(&self, split: Split) -> Result<Vec<ShardId>, WriteError> {
        let command = Command {
            now_ms: crate::clock::now_ms(),
            op: Op::Split(split),
        };
        let written = self.raft.client_write(command).await?;
        Ok(match written.data {
            CommandResult::Split { created } => created,
            _ => Vec::new(),
        })
    }

    /// Counts one read answered from this replica.
    pub fn note_read(&self) {
        self.reads_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The group's Raft position as its metrics see it now, for the node's metrics.
    pub fn raft_figures(&self) -> RaftFigures {
        let m = self.metrics.borrow();
        let leader = m.state == ServerState::Leader && m.current_leader == Some(self.node.0);
        let index = |id: Option<&openraft::LogId<RaftId>>| id.map_or(0, |id| id.index);
        let replication = match (&m.replication, leader) {
            (Some(followers), true) => followers
                .iter()
                .filter(|(id, _)| **id != self.node.0)
                .map(|(id, matched)| (NodeId(*id), index(matched.as_ref())))
                .collect(),
            _ => Vec::new(),
        };
        RaftFigures {
            role: match m.state {
                ServerState::Leader => "leader",
                ServerState::Candidate => "candidate",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shut down",
            },
            is_leader: leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: index(m.last_applied.as_ref()),
            snapshot_index: index(m.snapshot.as_ref()),
            purged_index: index(m.purged.as_ref()),
            replication,
            reads_total: self.reads_total.load(Ordering::Relaxed),
            writes_total: self.writes_total.load(Ordering::Relaxed),
            leader_changes: self.leader_changes.load(Ordering::Relaxed),
            snapshots_built: self.snapshots.built(),
            snapshots_installed: self.snapshots.installed(),
        }
    }

    /// This replica's figures for the coordinator. Counts the keys, so it blocks: call it
    /// off the async threads.
    pub fn stats(&self) -> Result<ShardStats, StorageError> {
        Ok(ShardStats {
            shard: self.shard,
            leader: self.leadership().is_leader,
            keys: self.storage.len()?,
            applied_index: self.metrics.borrow().last_applied.map_or(0, |id| id.index),
            reads_total: self.reads_total.load(Ordering::Relaxed),
            writes_total: self.writes_total.load(Ordering::Relaxed),
        })
    }

    /// Confirms, for a strong read, that this replica leads (by a heartbeat round that began
    /// after the call, shared with concurrent reads) and has applied that round's read index.
    pub async fn confirm_read(&self) -> Result<(), ReadError> {
        self.reads.confirm().await
    }

    /// Whether an eventual read may be answered from the applied state: the replica has applied
    /// the membership it knows, so it holds every write from before it joined the group. A
    /// replica still catching up after a move (uninitialized, or its log ahead of its state)
    /// would otherwise answer with keys missing that were written long before.
    pub fn answers_eventual_reads(&self) -> bool {
        let m = self.metrics.borrow();
        let joined = m.membership_config.log_id().map(|id| id.index);
        joined.is_some() && m.last_applied.map(|id| id.index) >= joined
    }

    /// Whether a strong read may be answered from the applied state now, without a read-index
    /// round: this leader holds a lease (a majority accepted its heartbeats within the window,
    /// so no other leader can exist yet) and has applied its leadership's read floor (so the
    /// state holds every write acknowledged before; see [`ReadFloor`]). Joint memberships
    /// never qualify.
    pub fn holds_read_lease(&self) -> bool {
        let Some(lease) = &self.lease else {
            return false;
        };
        let m = self.metrics.borrow();
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() != 1 {
            return false;
        }
        let voters = membership.voter_ids();
        let Some(vote) = lease.lease(self.node.0, voters, self.lease_window, Instant::now()) else {
            return false;
        };
        self.floor
            .observe(observed(self.node.0, &m))
            .is_some_and(|f| {
                f.leader == *vote.leader_id() && m.last_applied.map(|a| a.index) >= f.index
            })
    }

    /// Whether this leader should hand its leadership over because its majority answers
    /// slowly (see [`crate::slow_leader`]), and to whom: the most caught-up voter among its
    /// followers. Call once per reconcile round.
    /// A leader that keeps its group `quiet` sends no heartbeats, so its old acknowledgements
    /// say nothing about the network: it never counts as slow.
    pub fn slow_leader_target(&self, policy: &SlowLeaderPolicy, quiet: bool) -> Option<NodeId> {
        let m = self.metrics.borrow();
        let leads = m.state == ServerState::Leader && !quiet;
        let age = m.millis_since_quorum_ack.map(Duration::from_millis);
        let mut slow = self
            .slow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slow_leader::judge(&mut slow, policy, leads, age, tokio::time::Instant::now()) {
            return None;
        }
        let voters: Vec<RaftId> = m.membership_config.membership().voter_ids().collect();
        let matched = m.replication.as_ref()?;
        let (id, _) = matched
            .iter()
            .filter(|(id, _)| **id != self.node.0 && voters.contains(id))
            .max_by_key(|(_, log)| log.map(|l| l.index))?;
        Some(NodeId(*id))
    }

    /// The applied state, which reads are served from.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Removed collections whose member rows the leader's sweeper has yet to remove.
    pub fn collections_to_sweep(&self) -> usize {
        self.leftovers.len()
    }

    /// Who leads the group, per this replica's Raft metrics.
    pub fn leadership(&self) -> Leadership {
        let m = self.metrics.borrow();
        let membership = m.membership_config.membership();
        let leader = m.current_leader;
        Leadership {
            is_leader: m.state == ServerState::Leader && leader == Some(self.node.0),
            leader: leader.map(NodeId),
            leader_address: leader
                .and_then(|id| membership.get_node(&id))
                .map(|n| n.addr.clone()),
            term: m.current_term,
            voters: membership.voter_ids().map(NodeId).collect(),
        }
    }

    /// Initializes a new group with `members` (node id and address) as its
    /// voters. Does nothing when the group already is initialized.
    pub async fn initialize(&self, members: &[(NodeId, String)]) -> Result<(), ReplicaError> {
        let nodes: BTreeMap<RaftId, BasicNode> = members
            .iter()
            .map(|(id, addr)| (id.0, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => {
                tracing::info!(shard = %self.shard, ?members, "shard group initialized");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(source) => Err(ReplicaError::Initialize {
                shard: self.shard,
                source: Box::new(source),
            }),
        }
    }

    /// Stops the group and its tasks and unregisters it from the transport;
    /// its data stays. Returns once the replica's tasks and its Raft core have ended;
    /// openraft 0.9 does not wait for its state-machine worker, which may still finish
    /// an apply it had begun and then drops the storage.
    pub async fn stop(&self, env: &ReplicaEnv) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // Cancelled, or a panic already logged by the runtime.
            let _ = task.await;
        }
        env.router.unregister(self.shard.0);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(shard = %self.shard, error = %e, "raft shutdown failed");
        }
    }

    /// Stops the group and deletes every trace of it from this node: its
    /// key-value tables, its log and its snapshot.
    pub async fn destroy(self, env: &ReplicaEnv) -> Result<(), ReplicaError> {
        self.stop(env).await;
        let shard = self.shard;
        let storage = self.storage.clone();
        let snapshot_db = env.log_db.database().clone();
        tokio::task::spawn_blocking(move || {
            storage
                .clear()
                .map_err(|source| ReplicaError::Storage { shard, source })?;
            StateMachineStore::<ShardRaftConfig, KvMachine>::remove_snapshot(snapshot_db, shard.0)
                .map_err(|source| ReplicaError::StateMachine { shard, source })
        })
        .await
        .map_err(|source| ReplicaError::Task { shard, source })??;
        env.log_db
            .remove_group::<ShardRaftConfig>(shard.0)
            .await
            .map_err(|source| ReplicaError::Log { shard, source })?;
        tracing::info!(%shard, "replica removed and its data deleted");
        Ok(())
    }
}
