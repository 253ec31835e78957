//! [`ReplicaManager`]: makes this node's replicas follow the shard map.
//!
//! One reconcile round compares the current map with the replicas this node
//! runs and closes the gap:
//! - a shard that lists this node as a member (committed replica or move
//!   target) gets its replica opened; if this node is the shard's designated
//!   first leader (its `leader`, else its first replica) and no leader was
//!   ever reported (`leader_term == 0`), it initializes the group with the
//!   full replica set;
//! - a replica of a shard that no longer lists this node (the move was
//!   committed: epoch bumped, this node not in `replicas`) is stopped, never
//!   earlier, and its data deleted as soon as no request or task holds it; a
//!   shard given back meanwhile reopens only after that deletion, which would
//!   otherwise wipe the new replica's log;
//! - a shard being split off waits until this node's replica of its parent
//!   applied the split, which creates its state, and is never initialized
//!   empty (see [`crate::split`]);
//! - on a shard this node leads: a leader the map does not know yet is
//!   reported, a pending split is proposed, and a pending move is run (see
//!   [`crate::reconfigure`]);
//! - a `SetShardLeader` (the map names another voter for the current Raft
//!   term) is acted on, best effort: the leader hands over, the target
//!   campaigns (see [`crate::transfer`]); a leader whose handover ended
//!   without a transfer reports itself again, which heals the map.
//!
//! - a replica whose Raft group stopped by itself (openraft stops a group for good on a
//!   storage or invariant error) is closed and opened again from its stored state, once its
//!   buffered applies and queued log writes are durable.
//!
//! Rounds run when the map changes, when any replica's leader or term
//! changes, and on a timer (which retries failed reports and opens).
//!
//! Out of scope: data of a removed replica still in use when the node shuts
//! down, and of shards the map drops entirely (it never does today), stays
//! on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kvdb_core::cache::ShardMapCache;
use kvdb_core::epoch::LocalReplica;
use kvdb_core::{Epoch, NodeId, ShardId, ShardInfo, ShardMap, ShardState};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::control::ControlPlane;
use crate::reconfigure::{self, Move};
use crate::replica::{Leadership, Replica, ReplicaEnv};
use crate::shutdown::Shutdown;
use crate::split;
use crate::transfer::{self, Progress, Role, Transfers};

/// Opens, initializes, reconfigures and removes this node's shard replicas.
pub struct ReplicaManager {
    env: ReplicaEnv,
    cache: Arc<ShardMapCache>,
    control: Arc<dyn ControlPlane>,
    replicas: RwLock<HashMap<ShardId, Arc<Replica>>>,
    /// The move task per shard.
    moves: EpochTasks,
    /// The split proposal per shard.
    splits: EpochTasks,
    /// The last `(epoch, term)` leadership report the coordinator answered.
    reported: Mutex<HashMap<ShardId, (Epoch, u64)>>,
    /// The leader-transfer task per shard.
    transfers: Transfers,
    /// Stopped replicas of removed shards whose data is deleted as soon as
    /// no request or task holds them any more.
    retired: Mutex<Vec<Arc<Replica>>>,
    /// Replicas reopened after their Raft core stopped by itself.
    restarts: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("node", &self.env.node)
            .field("shards", &self.shards())
            .finish_non_exhaustive()
    }
}

impl ReplicaManager {
    /// A manager with no replicas open yet.
    pub fn new(env: ReplicaEnv, cache: Arc<ShardMapCache>, control: Arc<dyn ControlPlane>) -> Self {
        Self {
            env,
            cache,
            control,
            replicas: RwLock::default(),
            moves: EpochTasks::default(),
            splits: EpochTasks::default(),
            reported: Mutex::default(),
            transfers: Transfers::default(),
            retired: Mutex::default(),
            restarts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.env.node
    }

    /// The map this node follows.
    pub fn cache(&self) -> &Arc<ShardMapCache> {
        &self.cache
    }

    /// The open replica of `shard`, if any.
    pub fn replica(&self, shard: ShardId) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&shard)
            .cloned()
    }

    /// The shards with an open replica, in id order.
    pub fn shards(&self) -> Vec<ShardId> {
        let mut shards: Vec<ShardId> = self
            .replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        shards.sort();
        shards
    }

    /// This node's replica of `shard` as request validation sees it, with
    /// the replica itself: `None` unless `map` lists this node as a member
    /// and the replica is open.
    pub fn local(&self, map: &ShardMap, shard: ShardId) -> Option<(LocalReplica, Arc<Replica>)> {
        let info = map.shards.get(&shard)?;
        if !info.members().contains(&self.env.node) {
            return None;
        }
        let replica = self.replica(shard)?;
        let leadership = replica.leadership();
        // A leader handing over sends leader-only requests to the target.
        let (is_leader, leader_address) = match replica.handover_target() {
            Some(target) if leadership.is_leader => (false, Some(target)),
            _ => (leadership.is_leader, leadership.leader_address),
        };
        let local = LocalReplica {
            shard,
            epoch: info.epoch,
            slot_start: info.slot_start,
            slot_end: info.slot_end,
            is_leader,
            leader_address,
        };
        Some((local, replica))
    }

    /// Whether the node can serve: it has a shard map, and a replica open for every shard
    /// the map places on it.
    pub fn hosts_its_shards(&self) -> bool {
        let map = self.cache.current();
        let me = self.env.node;
        map.is_initialized()
            && map
                .shards
                .values()
                .filter(|s| s.members().contains(&me))
                .all(|s| self.replica(s.id).is_some())
    }

    /// Reconciles until `shutdown` turns true, then stops every replica.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut maps = self.cache.subscribe();
        let mut tick = tokio::time::interval(self.env.config.reconcile_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = shutdown.recv() => break,
                changed = maps.changed() => if changed.is_err() { break },
                _ = self.env.leadership_changed.notified() => {}
                _ = tick.tick() => {}
            }
        }
        self.stop_all().await;
    }

    /// Stops every replica (keeping its data) and every move and split task.
    pub async fn stop_all(&self) {
        self.transfers.abort_all();
        self.moves.abort_all();
        self.splits.abort_all();
        let replicas: Vec<Arc<Replica>> = self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, r)| r)
            .collect();
        for replica in replicas {
            replica.stop(&self.env).await;
        }
    }

    /// How many replicas were reopened after their Raft core stopped by itself.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One reconcile round against the current map.
    pub async fn reconcile(&self) {
        let map = self.cache.current();
        let me = self.env.node;
        self.restart_dead().await;
        for shard in self.shards() {
            let member = map
                .shards
                .get(&shard)
                .is_some_and(|s| s.members().contains(&me));
            if !member && map.is_initialized() {
                self.remove(shard).await;
            }
        }
        self.reap_retired().await;
        for info in map.shards.values() {
            // A shard given back to this node while its removed replica still waits to be
            // deleted opens once that is done: the deletion clears the shard's log and data,
            // and must never run under a replica that uses them.
            if info.members().contains(&me)
                && !self.is_retiring(info.id)
                && self.may_open(&map, info)
            {
                self.ensure_open(&map, info).await;
            }
        }
        let splits = split::splits_by_parent(&map);
        for info in map.shards.values() {
            let Some(replica) = self.replica(info.id) else {
                continue;
            };
            let leadership = replica.leadership();
            let handing_over = self.drive_transfer(&map, info, &replica, &leadership);
            if leadership.is_leader && handing_over != Some(Progress::Running) {
                if handing_over == Some(Progress::Finished) {
                    // Still leading after the handover: report again.
                    self.reported
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&info.id);
                }
                self.report_leadership(info, leadership.term).await;
                if handing_over.is_none() && self.step_down_if_slow(info, &replica).await {
                    continue;
                }
                self.drive_split(&splits, info, &replica);
                self.drive_move(&map, info, replica);
            }
        }
    }

    /// Whether `info`'s replica is open or may be opened now: a shard being split off this
    /// node's replica of its parent waits for the split (see [`split::may_open`]).
    fn may_open(&self, map: &ShardMap, info: &ShardInfo) -> bool {
        if self.replica(info.id).is_some() {
            return true;
        }
        let parent_serving = match info.state {
            ShardState::Splitting { from } => self.replica(from).map(|p| p.serving()),
            _ => None,
        };
        split::may_open(map, self.env.node, info, parent_serving)
    }

    async fn ensure_open(&self, map: &ShardMap, info: &ShardInfo) {
        let replica = match self.replica(info.id) {
            Some(replica) => replica,
            None => match self.open(info.id).await {
                Ok(replica) => {
                    let replica = Arc::new(replica);
                    self.replicas
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(info.id, replica.clone());
                    replica
                }
                Err(e) => {
                    tracing::error!(shard = %info.id, error = %e, "cannot open replica");
                    return;
                }
            },
        };
        // A shard being split off is created by the split, never initialized empty.
        let designated = info.leader.or_else(|| info.replicas.first().copied());
        if designated != Some(self.env.node)
            || info.leader_term != 0
            || matches!(info.state, ShardState::Splitting { .. })
        {
            return;
        }
        if replica.raft().is_initialized().await.unwrap_or(true) {
            return;
        }
        let members: Option<Vec<(NodeId, String)>> = info
            .replicas
            .iter()
            .map(|n| map.address(*n).map(|a| (*n, a.to_owned())))
            .collect();
        let Some(members) = members else {
            tracing::warn!(shard = %info.id, "a replica has no address yet; not initializing");
            return;
        };
        if let Err(e) = replica.initialize(&members).await {
            tracing::error!(shard = %info.id, error = %e, "cannot initialize shard group");
        }
    }

    /// Opens this node's replica of `shard`, claimed first so that no split writes under it.
    async fn open(&self, shard: ShardId) -> Result<Replica, crate::replica::ReplicaError> {
        self.env.nursery.claim(shard);
        let opened = Replica::open(&self.env, shard).await;
        if opened.is_err() {
            self.env.nursery.release(shard);
        }
        opened
    }

    /// Proposes the split that `info`'s map record asks of the shard this node leads, unless
    /// one is in flight for the same epoch (see [`crate::split`]).
    fn drive_split(
        &self,
        splits: &split::SplitsByParent<'_>,
        info: &ShardInfo,
        replica: &Arc<Replica>,
    ) {
        let Some(split) = split::pending_split(splits, info, replica.serving()) else {
            return;
        };
        if self.splits.running(info.id, info.epoch) {
            return;
        }
        let (replica, shard) = (replica.clone(), info.id);
        let task = tokio::spawn(
            async move {
                match replica.propose_split(split).await {
                    Ok(created) => tracing::info!(%shard, ?created, "split committed"),
                    Err(e) => tracing::warn!(%shard, error = %e, "split not committed; retrying"),
                }
            }
            .in_current_span(),
        );
        self.splits.start(info.id, info.epoch, task);
    }

    async fn remove(&self, shard: ShardId) {
        if let Some(replica) = self.close(shard).await {
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(replica);
        }
    }

    /// Takes `shard`'s replica out of the open ones, ends its move, split and transfer
    /// tasks, and stops it (its data stays). Returns it, if one was open.
    async fn close(&self, shard: ShardId) -> Option<Arc<Replica>> {
        let removed = self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&shard);
        self.moves.abort(shard);
        self.splits.abort(shard);
        self.transfers.abort(shard);
        let replica = removed?;
        replica.stop(&self.env).await;
        Some(replica)
    }

    /// Closes every replica whose Raft core stopped by itself (openraft stops a group on a
    /// storage or invariant error and never starts it again), so that this round opens it
    /// again from its stored state, as a restart of the node would. Before the reopening, what
    /// the dead group left in flight is made durable, the storage's buffered applies and the
    /// log writer's queued appends, so the new group reads them rather than races them.
    async fn restart_dead(&self) {
        for shard in self.shards() {
            let Some(replica) = self.replica(shard) else {
                continue;
            };
            let Some(error) = replica.died() else {
                continue;
            };
            tracing::error!(
                %shard,
                %error,
                "the shard's Raft group stopped on an error; reopening it from its stored \
                 state (if this repeats, the replica's data needs attention)"
            );
            let Some(replica) = self.close(shard).await else {
                continue;
            };
            let storage = replica.storage().clone();
            let synced = tokio::task::spawn_blocking(move || storage.sync()).await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::error!(
                    %shard,
                    "cannot flush the shard's storage: leaving the replica stopped (the node's \
                     storage refuses writes after a failed flush; restart the node)"
                );
                self.replicas
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(shard, replica);
                continue;
            }
            if let Err(e) = self.env.log_db.barrier().await {
                tracing::error!(%shard, error = %e, "cannot flush the Raft log before reopening");
            }
            self.restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether a removed replica of `shard` still waits for its data to be deleted.
    fn is_retiring(&self, shard: ShardId) -> bool {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|r| r.shard() == shard)
    }

    /// Deletes the data of retired replicas nothing holds any more.
    async fn reap_retired(&self) {
        let retired: Vec<Arc<Replica>> = self
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for replica in retired {
            match Arc::try_unwrap(replica) {
                Ok(replica) => {
                    let shard = replica.shard();
                    match replica.destroy(&self.env).await {
                        Ok(()) => self.env.nursery.release(shard),
                        Err(e) => {
                            tracing::error!(%shard, error = %e, "cannot delete removed replica")
                        }
                    }
                }
                Err(in_use) => self
                    .retired
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(in_use),
            }
        }
    }

    async fn report_leadership(&self, info: &ShardInfo, term: u64) {
        let me = self.env.node;
        if info.leader == Some(me) && info.leader_term == term {
            return;
        }
        let key = (info.epoch, term);
        let last = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&info.id)
            .copied();
        if last == Some(key) {
            return;
        }
        match self
            .control
            .report_shard_leader(info.id, info.epoch, me, term)
            .await
        {
            Ok(accepted) => {
                tracing::info!(shard = %info.id, term, accepted, "reported shard leader");
                self.reported
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(info.id, key);
            }
            Err(e) => tracing::warn!(shard = %info.id, error = %e, "leader report failed"),
        }
    }

    fn drive_move(&self, map: &ShardMap, info: &ShardInfo, replica: Arc<Replica>) {
        let ShardState::Moving { target } = &info.state else {
            return;
        };
        if self.moves.running(info.id, info.epoch) {
            return;
        }
        let target: Option<Vec<(NodeId, String)>> = target
            .iter()
            .map(|n| map.address(*n).map(|a| (*n, a.to_owned())))
            .collect();
        let Some(target) = target else { return };
        let mv = Move {
            shard: info.id,
            epoch: info.epoch,
            target,
        };
        let control = self.control.clone();
        let task = tokio::spawn(
            async move {
                let shard = mv.shard;
                if let Err(e) = reconfigure::run(replica, control, mv).await {
                    tracing::warn!(%shard, error = %e, "shard move interrupted");
                }
            }
            .in_current_span(),
        );
        self.moves.start(info.id, info.epoch, task);
    }

    /// Asks the coordinator to name `info`'s most caught-up follower as leader when this
    /// leader's majority has answered slowly for a while (see [`crate::slow_leader`]); the
    /// transfer then runs as an operator's would. Whether it asked.
    async fn step_down_if_slow(&self, info: &ShardInfo, replica: &Replica) -> bool {
        let Some(policy) = &self.env.config.slow_leader else {
            return false;
        };
        if info.state != ShardState::Stable {
            return false;
        }
        let quiet = (self.env.quiescer.as_ref()).is_some_and(|q| q.leads_quietly(info.id.0));
        let Some(target) = replica.slow_leader_target(policy, quiet) else {
            return false;
        };
        tracing::warn!(
            shard = %info.id,
            %target,
            "the shard's majority answers this leader slowly; asking to move leadership"
        );
        if let Err(e) = self
            .control
            .request_shard_leader(info.id, info.epoch, target)
            .await
        {
            tracing::warn!(shard = %info.id, error = %e, "cannot ask to move leadership");
        }
        true
    }

    /// Starts or tracks this node's part in a pending leader transfer of
    /// `info`'s shard. Returns the progress of a handover this node runs.
    fn drive_transfer(
        &self,
        map: &ShardMap,
        info: &ShardInfo,
        replica: &Arc<Replica>,
        leadership: &Leadership,
    ) -> Option<Progress> {
        let me = self.env.node;
        let role = transfer::role(me, info, leadership, |n| map.address(n).map(str::to_owned));
        let is_handover = matches!(role, Some(Role::HandOver { .. }));
        let lease = self.env.config.election_timeout_max;
        let heartbeat = self.env.config.heartbeat_interval;
        let progress = self
            .transfers
            .drive(info.id, role.map(|r| (info.epoch, r)), |role| {
                let replica = replica.clone();
                match role.clone() {
                    Role::HandOver { address, .. } => {
                        tokio::spawn(transfer::handover(replica, address, lease).in_current_span())
                    }
                    Role::Campaign => {
                        let (cache, shard, epoch) = (self.cache.clone(), info.id, info.epoch);
                        let still_named = move || {
                            let map = cache.current();
                            map.shards
                                .get(&shard)
                                .is_some_and(|s| s.epoch == epoch && s.leader == Some(me))
                        };
                        let campaign = transfer::campaign(replica, still_named, lease, heartbeat);
                        tokio::spawn(campaign.in_current_span())
                    }
                }
            });
        progress.filter(|_| is_handover)
    }
}

/// At most one background task per shard, each for the epoch of the map record it serves: a
/// newer epoch replaces the task, a finished one may be started again.
#[derive(Default)]
struct EpochTasks(Mutex<HashMap<ShardId, (Epoch, JoinHandle<()>)>>);

impl EpochTasks {
    /// Whether a task for `shard` at `epoch` still runs.
    fn running(&self, shard: ShardId, epoch: Epoch) -> bool {
        self.lock()
            .get(&shard)
            .is_some_and(|(e, task)| *e == epoch && !task.is_finished())
    }

    /// Records `task` as `shard`'s, aborting the one it replaces.
    fn start(&self, shard: ShardId, epoch: Epoch, task: JoinHandle<()>) {
        if let Some((_, old)) = self.lock().insert(shard, (epoch, task)) {
            old.abort();
        }
    }

    fn abort(&self, shard: ShardId) {
        if let Some((_, task)) = self.lock().remove(&shard) {
            task.abort();
        }
    }

    fn abort_all(&self) {
        for (_, (_, task)) in self.lock().drain() {
            task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShardId, (Epoch, JoinHandle<()>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
