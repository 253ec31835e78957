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
//!   earlier, and its data deleted as soon as no request or task holds it;
//! - on a shard this node leads: a leader the map does not know yet is
//!   reported, and a pending move is run (see [`crate::reconfigure`]).
//!
//! Rounds run when the map changes, when any replica's leader or term
//! changes, and on a timer (which retries failed reports and opens).
//!
//! Out of scope: leader transfer for `SetShardLeader` (openraft 0.9 has no
//! transfer API); data of a removed replica still in use when the node shuts
//! down, and of shards the map drops entirely (it never does today), stays
//! on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kvdb_core::cache::ShardMapCache;
use kvdb_core::epoch::LocalReplica;
use kvdb_core::{Epoch, NodeId, ShardId, ShardInfo, ShardMap, ShardState};
use tokio::task::JoinHandle;

use crate::control::ControlPlane;
use crate::reconfigure::{self, Move};
use crate::replica::{Replica, ReplicaEnv};
use crate::shutdown::Shutdown;

/// Opens, initializes, reconfigures and removes this node's shard replicas.
pub struct ReplicaManager {
    env: ReplicaEnv,
    cache: Arc<ShardMapCache>,
    control: Arc<dyn ControlPlane>,
    replicas: RwLock<HashMap<ShardId, Arc<Replica>>>,
    /// The move task per shard, with the epoch it serves.
    moves: Mutex<HashMap<ShardId, (Epoch, JoinHandle<()>)>>,
    /// The last `(epoch, term)` leadership report the coordinator answered.
    reported: Mutex<HashMap<ShardId, (Epoch, u64)>>,
    /// Stopped replicas of removed shards whose data is deleted as soon as
    /// no request or task holds them any more.
    retired: Mutex<Vec<Arc<Replica>>>,
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
            moves: Mutex::default(),
            reported: Mutex::default(),
            retired: Mutex::default(),
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
        let local = LocalReplica {
            shard,
            epoch: info.epoch,
            slot_start: info.slot_start,
            slot_end: info.slot_end,
            is_leader: leadership.is_leader,
            leader_address: leadership.leader_address,
        };
        Some((local, replica))
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

    /// Stops every replica (keeping its data) and every move task.
    pub async fn stop_all(&self) {
        for (_, (_, task)) in self
            .moves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            task.abort();
        }
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

    /// One reconcile round against the current map.
    pub async fn reconcile(&self) {
        let map = self.cache.current();
        let me = self.env.node;
        for info in map.shards.values() {
            if info.members().contains(&me) {
                self.ensure_open(&map, info).await;
            }
        }
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
            let Some(replica) = self.replica(info.id) else {
                continue;
            };
            if replica.leadership().is_leader {
                self.report_leadership(info, &replica).await;
                self.drive_move(&map, info, replica);
            }
        }
    }

    async fn ensure_open(&self, map: &ShardMap, info: &ShardInfo) {
        let replica = match self.replica(info.id) {
            Some(replica) => replica,
            None => match Replica::open(&self.env, info.id).await {
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
        let designated = info.leader.or_else(|| info.replicas.first().copied());
        if designated != Some(self.env.node) || info.leader_term != 0 {
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

    async fn remove(&self, shard: ShardId) {
        let removed = self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&shard);
        if let Some((_, task)) = self
            .moves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&shard)
        {
            task.abort();
        }
        if let Some(replica) = removed {
            replica.stop(&self.env).await;
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(replica);
        }
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
                    if let Err(e) = replica.destroy(&self.env).await {
                        tracing::error!(%shard, error = %e, "cannot delete removed replica");
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

    async fn report_leadership(&self, info: &ShardInfo, replica: &Replica) {
        let me = self.env.node;
        let term = replica.leadership().term;
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
        let mut moves = self.moves.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((epoch, task)) = moves.get(&info.id)
            && *epoch == info.epoch
            && !task.is_finished()
        {
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
        let task = tokio::spawn(async move {
            let shard = mv.shard;
            if let Err(e) = reconfigure::run(replica, control, mv).await {
                tracing::warn!(%shard, error = %e, "shard move interrupted");
            }
        });
        if let Some((_, old)) = moves.insert(info.id, (info.epoch, task)) {
            old.abort();
        }
    }
}
