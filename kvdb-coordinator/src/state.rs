//! The coordinator's metadata state machine, as pure synchronous logic.
//!
//! [`MetaState`] owns the [`ShardMap`], the parameters it was initialized
//! with, a bounded history of [`ShardMapDelta`]s for watchers, and the
//! addresses of coordinator members that have led. [`MetaState::apply`] is
//! deterministic: the same commands in the same order give the same state on
//! every member, and never read a clock or do I/O. A rejected command is a
//! value ([`CommandResult`]) and changes nothing; a command that would change
//! nothing (the same init again, the same report) leaves the map version alone.
//!
//! Every change goes through one funnel, `commit`, which writes full records
//! into the map, bumps the map version and records the delta.
//!
//! Out of scope: persistence (the Raft group snapshots [`MetaState::export`])
//! and time (liveness lives in [`crate::liveness`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use kvdb_core::raft::codec;
use kvdb_core::{MapVersion, NodeInfo, ShardInfo, ShardMap, ShardMapDelta};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, Outcome};
use crate::error::CoordinatorError;
use crate::placement;

mod before_resp;
mod nodes;
mod shards;
mod split;
#[cfg(test)]
mod tests;

pub(crate) use split::split_midpoint;

/// How many deltas are kept for watchers by default.
pub const DEFAULT_DELTA_HISTORY: usize = 1024;

/// The parameters the shards were initialized with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitParams {
    /// How many shards the slot space was split into.
    pub num_shards: u32,
    /// Replicas per shard at initialization.
    pub replication_factor: u32,
}

/// Where a coordinator member that has led serves its APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddress {
    /// Its gRPC address (Coordinator service and Raft transport).
    pub grpc_address: String,
    /// Its Admin API address, when it serves one.
    pub admin_address: Option<String>,
}

/// The serialized form of the whole state, for Raft snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Exported {
    map: ShardMap,
    init: Option<InitParams>,
    history: Vec<ShardMapDelta>,
    members: BTreeMap<u64, MemberAddress>,
    scheduler_paused: bool,
}

/// The cluster metadata and its recent history.
#[derive(Debug, Clone)]
pub struct MetaState {
    map: Arc<ShardMap>,
    init: Option<InitParams>,
    history: VecDeque<Arc<ShardMapDelta>>,
    history_limit: usize,
    members: BTreeMap<u64, MemberAddress>,
    scheduler_paused: bool,
}

impl Default for MetaState {
    fn default() -> Self {
        Self::new(DEFAULT_DELTA_HISTORY)
    }
}

/// The records one command changes, before they are committed.
#[derive(Debug, Default)]
struct Change {
    nodes: Vec<NodeInfo>,
    shards: Vec<ShardInfo>,
}

impl MetaState {
    /// An empty state keeping at most `history_limit` deltas (at least one).
    pub fn new(history_limit: usize) -> Self {
        Self {
            map: Arc::default(),
            init: None,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            members: BTreeMap::new(),
            scheduler_paused: false,
        }
    }

    /// The current map; cheap to clone and share with readers.
    pub fn map(&self) -> &Arc<ShardMap> {
        &self.map
    }

    /// The current map version.
    pub fn version(&self) -> MapVersion {
        self.map.version
    }

    /// The parameters of the shard initialization, if done.
    pub fn init_params(&self) -> Option<InitParams> {
        self.init
    }

    /// The recorded address of a coordinator member.
    pub fn member(&self, id: u64) -> Option<&MemberAddress> {
        self.members.get(&id)
    }

    /// Every coordinator member address recorded so far.
    pub fn members(&self) -> &BTreeMap<u64, MemberAddress> {
        &self.members
    }

    /// Whether an operator paused the scheduler.
    pub fn scheduler_paused(&self) -> bool {
        self.scheduler_paused
    }

    /// Every delta after `version`, oldest first; `None` when the history no
    /// longer reaches back to `version` (the caller needs a snapshot).
    /// Empty when `version` is current or ahead.
    pub fn deltas_after(&self, version: MapVersion) -> Option<Vec<Arc<ShardMapDelta>>> {
        if version >= self.map.version {
            return Some(Vec::new());
        }
        let oldest = self.history.front()?.version;
        if version.next() < oldest {
            return None;
        }
        let skip = (version.next().0 - oldest.0) as usize;
        Some(self.history.iter().skip(skip).cloned().collect())
    }

    /// Applies one command. Deterministic; a rejection changes nothing.
    pub fn apply(&mut self, command: Command) -> CommandResult {
        match command {
            Command::RegisterNode {
                name,
                address,
                zone,
            } => self.register_node(name, address, zone, None),
            Command::RegisterNodeResp {
                name,
                address,
                zone,
                resp_address,
            } => self.register_node(name, address, zone, Some(resp_address)),
            Command::InitShards {
                num_shards,
                replication_factor,
            } => self.init_shards(num_shards, replication_factor),
            Command::SetNodeStatus { node, status } => self.set_node_status(node, status),
            Command::SetShardReplicas {
                shard,
                epoch,
                replicas,
            } => self.set_shard_replicas(shard, epoch, replicas),
            Command::SetShardLeader { shard, epoch, node } => {
                self.set_shard_leader(shard, epoch, node)
            }
            Command::ReportShardLeader {
                shard,
                epoch,
                leader,
                term,
            } => self.report_shard_leader(shard, epoch, leader, term),
            Command::ReportShardConfig {
                shard,
                epoch,
                replicas,
            } => self.report_shard_config(shard, epoch, replicas),
            Command::AnnounceMember {
                id,
                grpc_address,
                admin_address,
            } => {
                let address = MemberAddress {
                    grpc_address,
                    admin_address,
                };
                self.members.insert(id, address);
                Ok(Outcome::Version(self.version()))
            }
            Command::SetSchedulerPaused { paused } => {
                self.scheduler_paused = paused;
                Ok(Outcome::Version(self.version()))
            }
            Command::SplitShard { shard, epoch, at } => self.split_shard(shard, epoch, at),
        }
    }

    fn init_shards(&mut self, num_shards: u32, replication_factor: u32) -> CommandResult {
        if num_shards == 0 || num_shards > u32::from(kvdb_core::SLOT_COUNT) {
            return Err(CoordinatorError::InvalidArgument(format!(
                "num_shards must be in 1..={}, got {num_shards}",
                kvdb_core::SLOT_COUNT
            )));
        }
        if replication_factor == 0 {
            return Err(CoordinatorError::InvalidArgument(
                "replication_factor must be at least 1".into(),
            ));
        }
        let requested = InitParams {
            num_shards,
            replication_factor,
        };
        if let Some(init) = self.init {
            return if init == requested {
                Ok(Outcome::Version(self.version()))
            } else {
                Err(CoordinatorError::AlreadyInitialized {
                    num_shards: init.num_shards,
                    replication_factor: init.replication_factor,
                })
            };
        }
        let alive = self.map.alive_nodes();
        if (alive.len() as u64) < u64::from(replication_factor) {
            return Err(CoordinatorError::NotEnoughNodes {
                alive: alive.len() as u32,
                replication_factor,
            });
        }
        let shards = placement::initial_shards(num_shards, replication_factor, &alive);
        self.init = Some(requested);
        let version = self.commit(Change {
            nodes: Vec::new(),
            shards,
        });
        Ok(Outcome::Version(version))
    }

    /// Writes the changed records, bumps the version and records the delta.
    fn commit(&mut self, change: Change) -> MapVersion {
        let version = self.map.version.next();
        let map = Arc::make_mut(&mut self.map);
        for node in &change.nodes {
            map.nodes.insert(node.id, node.clone());
        }
        for shard in &change.shards {
            map.shards.insert(shard.id, shard.clone());
        }
        map.version = version;
        let delta = ShardMapDelta {
            version,
            nodes: change.nodes,
            shards: change.shards,
            removed_nodes: Vec::new(),
            removed_shards: Vec::new(),
        };
        self.history.push_back(Arc::new(delta));
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        version
    }

    /// The whole state as bytes (the Raft codec), for a Raft snapshot.
    pub fn export(&self) -> Result<Vec<u8>, CoordinatorError> {
        let exported = Exported {
            map: ShardMap::clone(&self.map),
            init: self.init,
            history: self
                .history
                .iter()
                .map(|d| ShardMapDelta::clone(d))
                .collect(),
            members: self.members.clone(),
            scheduler_paused: self.scheduler_paused,
        };
        codec::encode(&exported).map_err(|e| CoordinatorError::Internal(e.to_string()))
    }

    /// Replaces the whole state with one made by [`MetaState::export`].
    pub fn import(&mut self, bytes: &[u8]) -> Result<(), CoordinatorError> {
        let exported: Exported = codec::decode_exact(bytes)
            .or_else(|e| {
                let old: before_resp::ExportedBeforeResp =
                    codec::decode_exact(bytes).map_err(|_| e)?;
                Ok(old.into())
            })
            .map_err(|e: codec::CodecError| CoordinatorError::Internal(e.to_string()))?;
        self.map = Arc::new(exported.map);
        self.init = exported.init;
        self.history = exported.history.into_iter().map(Arc::new).collect();
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        self.members = exported.members;
        self.scheduler_paused = exported.scheduler_paused;
        Ok(())
    }
}
