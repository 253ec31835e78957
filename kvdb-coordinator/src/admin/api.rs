//! The Admin API's wire types: request bodies, response bodies and the error
//! body, defined once and shared by the server ([`super::router`]) and the
//! client ([`super::AdminClient`]).
//!
//! JSON is snake_case and compatible with the Java original's request bodies
//! (`node_id` is the node's *name* in `POST /admin/nodes`). Request bodies
//! reject unknown fields so a typo is a 400, not a silently ignored option.
//! Node statuses travel as lowercase strings (`"alive"`, `"suspect"`,
//! `"dead"`, `"draining"`).

use std::fmt;

use kvdb_core::{
    Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo, ShardMap, ShardState,
};
use serde::{Deserialize, Serialize};

use crate::scheduler::{Load, StartedOperation};
use crate::shard_stats::{ShardLoad, ShardStatsBook};

/// Zone given to a node registered without one.
pub const DEFAULT_ZONE: &str = "default";

/// `POST /admin/nodes`: register a storage node, or update its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterNodeRequest {
    /// The node's unique name, e.g. `node-1` (the Java original's `node_id`).
    pub node_id: String,
    /// Data-plane address, `host:port`.
    pub address: String,
    /// Failure zone; [`DEFAULT_ZONE`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `POST /admin/config/shard-init`: create the shards, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardInitRequest {
    /// How many shards to split the slot space into.
    pub num_shards: u32,
    /// Replicas per shard; at least this many nodes must be alive.
    pub replication_factor: u32,
}

/// `POST /admin/nodes/{id}/status`: set a node's status by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStatusRequest {
    /// The new status, by its lowercase name.
    #[serde(with = "status_name")]
    pub status: NodeStatus,
}

/// `POST /admin/shards/{id}/replicas`: move a shard to a new replica set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardReplicasRequest {
    /// The target replica set, each by id or name.
    pub replicas: Vec<NodeSelector>,
    /// The epoch the caller saw; the change is refused if it moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
}

/// `POST /admin/shards/{id}/leader`: ask the shard to transfer leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardLeaderRequest {
    /// The replica that should lead, by id or name (`node_id` as in the
    /// Java original).
    pub node_id: NodeSelector,
    /// The shard's current epoch; the change is refused if it moved on.
    pub epoch: Epoch,
}

/// `POST /admin/shards/{id}/split`: split a shard in two. Every field is
/// optional, and so is the body (no body is `{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSplitRequest {
    /// The new shard's first slot, in `slot_start + 1..=slot_end`; the middle of the
    /// range when absent. Wider than a slot so that an out-of-range number is refused
    /// with the shard's range in the message, not as a malformed body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u32>,
    /// The epoch the caller saw; the split is refused if it moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
}

/// The answer to a split: both halves, as written in map version `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSplitResponse {
    /// The shard that was split, with its narrowed range and next epoch.
    pub parent: ShardView,
    /// The new shard: `"splitting"` (with `split_from`) until its first leader reports.
    pub child: ShardView,
    /// The map version that holds both.
    pub version: MapVersion,
}

/// A node named in a request: its numeric id or its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeSelector {
    /// A numeric id (a JSON number).
    Id(NodeId),
    /// A name (a JSON string); a numeric one is tried as an id first.
    Name(String),
}

impl NodeSelector {
    /// The node this selector names in `map`: an id that exists in the map
    /// wins, then a name (so a node literally named `"7"` is still found).
    pub fn resolve(&self, map: &ShardMap) -> Option<NodeId> {
        match self {
            Self::Id(id) => map.nodes.contains_key(id).then_some(*id),
            Self::Name(name) => name
                .parse()
                .ok()
                .map(NodeId)
                .filter(|id| map.nodes.contains_key(id))
                .or_else(|| map.nodes.values().find(|n| &n.name == name).map(|n| n.id)),
        }
    }
}

impl fmt::Display for NodeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(name) => name.fmt(f),
        }
    }
}

impl From<NodeId> for NodeSelector {
    fn from(id: NodeId) -> Self {
        Self::Id(id)
    }
}

impl From<&str> for NodeSelector {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

/// A storage node as the Admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Numeric id, assigned at registration.
    pub id: NodeId,
    /// Unique name.
    pub name: String,
    /// Data-plane address, `host:port`.
    pub address: String,
    /// Failure zone.
    pub zone: String,
    /// Status, by its lowercase name.
    #[serde(with = "status_name")]
    pub status: NodeStatus,
    /// Replicas the node holds or is receiving: a moving shard counts at its
    /// current replicas and at its targets, so a drained node reaches 0 only
    /// once every move off it has finished.
    #[serde(default)]
    pub replicas: usize,
    /// Shards the map names this node as leader of.
    #[serde(default)]
    pub leaders: usize,
    /// Where the node serves Redis Cluster mode, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp_address: Option<String>,
}

impl NodeView {
    /// The view of `node`, with its replica and leader counts from `map`.
    pub fn new(map: &ShardMap, node: &NodeInfo) -> Self {
        Self::with_load(map, node, &Load::of(map))
    }

    /// Views of every node of `map`, by id.
    pub fn all(map: &ShardMap) -> Vec<Self> {
        let load = Load::of(map);
        map.nodes
            .values()
            .map(|node| Self::with_load(map, node, &load))
            .collect()
    }

    fn with_load(map: &ShardMap, node: &NodeInfo, load: &Load) -> Self {
        // Not the scheduler's load, which counts a moving shard only where it is headed: a
        // node a move is leaving still holds the replica until the move is done.
        let held = map
            .shards
            .values()
            .filter(|shard| shard.members().contains(&node.id))
            .count();
        Self {
            id: node.id,
            name: node.name.clone(),
            address: node.address.clone(),
            zone: node.zone.clone(),
            status: node.status,
            replicas: held,
            leaders: load.leaders.get(&node.id).copied().unwrap_or(0),
            resp_address: (!node.resp_address.is_empty()).then(|| node.resp_address.clone()),
        }
    }
}

/// A node referenced by a shard, with its address when the map knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    /// The node's id.
    pub id: NodeId,
    /// Its data-plane address; `None` when the map has no such node.
    pub address: Option<String>,
}

impl NodeRef {
    fn new(map: &ShardMap, id: NodeId) -> Self {
        Self {
            id,
            address: map.address(id).map(str::to_owned),
        }
    }
}

/// A shard as the Admin API shows it: slots, replicas with addresses, leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardView {
    /// The shard's id.
    pub id: kvdb_core::ShardId,
    /// First slot served (inclusive).
    pub slot_start: u16,
    /// Last slot served (inclusive).
    pub slot_end: u16,
    /// Bumped by every replica move; leader changes keep it.
    pub epoch: Epoch,
    /// `"stable"`, `"moving"` while `target` is being committed, or `"splitting"` while
    /// the shard's group is being created from `split_from`'s state.
    pub state: String,
    /// While splitting: the shard this one is carved out of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_from: Option<ShardId>,
    /// The committed replica set, which serves (during a move too).
    pub replicas: Vec<NodeRef>,
    /// The replica set being moved to; empty when stable.
    pub target: Vec<NodeRef>,
    /// The leader the map names, if any.
    pub leader: Option<NodeRef>,
    /// Raft term of the last reported leader.
    pub leader_term: u64,
    /// Keys and request rates from the leader's last report, when the member that answered
    /// leads and has one.
    #[serde(default)]
    pub load: Option<ShardLoad>,
}

impl ShardView {
    /// The view of `shard`, taking node addresses from `map`.
    pub fn new(map: &ShardMap, shard: &ShardInfo) -> Self {
        let refs = |ids: &[NodeId]| ids.iter().map(|&id| NodeRef::new(map, id)).collect();
        let (state, target, split_from) = match &shard.state {
            ShardState::Stable => ("stable", Vec::new(), None),
            ShardState::Moving { target } => ("moving", refs(target), None),
            ShardState::Splitting { from } => ("splitting", Vec::new(), Some(*from)),
        };
        Self {
            id: shard.id,
            slot_start: shard.slot_start.0,
            slot_end: shard.slot_end.0,
            epoch: shard.epoch,
            state: state.to_owned(),
            split_from,
            replicas: refs(&shard.replicas),
            target,
            leader: shard.leader.map(|id| NodeRef::new(map, id)),
            leader_term: shard.leader_term,
            load: None,
        }
    }

    /// The view with the shard's figures from `book`.
    pub fn with_load(mut self, book: &ShardStatsBook) -> Self {
        self.load = book.load(self.id, tokio::time::Instant::now());
        self
    }
}

/// `GET /admin/cluster`: the coordinator's own summary, served as is so that
/// a field added to it reaches the API without a second copy.
pub use crate::leadership::{
    ClusterInfo as ClusterView, LeaderInfo as LeaderView, MemberInfo as MemberView,
};

/// `GET /admin/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList {
    /// The version of the map the list was read from.
    pub map_version: MapVersion,
    /// Every registered node, by id.
    pub nodes: Vec<NodeView>,
}

/// `GET /admin/shards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardList {
    /// The version of the map the list was read from.
    pub map_version: MapVersion,
    /// Every shard, by id.
    pub shards: Vec<ShardView>,
}

/// `GET /admin/operations`: what the scheduler is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationsView {
    /// The version of the map the view was read from.
    pub map_version: MapVersion,
    /// Whether an operator paused the scheduler.
    pub paused: bool,
    /// Whether the member that answered leads; only the leader schedules,
    /// and `recent` is its memory.
    pub leader: bool,
    /// Shards in progress now, whoever started them: moving (`state` `"moving"`) or
    /// being split off another shard (`"splitting"`, with `split_from`).
    pub moving: Vec<ShardView>,
    /// Operations this member's scheduler started, newest first.
    pub recent: Vec<StartedOperation>,
}

/// `POST /admin/coordinators`: add a member (started with `--join`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorMemberRequest {
    /// The new member's Raft id (its `--id`).
    pub id: u64,
    /// Its gRPC address, as the other members and clients reach it.
    pub address: String,
}

/// The coordinator group's members, as `GET`, `POST` and `DELETE /admin/coordinators`
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorMembers {
    /// The leader's id, as the answering member knows it.
    pub leader: Option<u64>,
    /// Every member.
    pub members: Vec<MemberView>,
}

/// `POST /admin/scheduler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerRequest {
    /// True to pause, false to resume.
    pub paused: bool,
}

/// The answer to a mutation that returns no record: the map version that
/// includes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationResponse {
    /// The map version after the mutation (unchanged for a no-op).
    pub map_version: MapVersion,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `EPOCH_MISMATCH`.
    pub error: String,
    /// Human-readable detail; never parse it.
    pub message: String,
    /// On 503: the admin address (`host:port`) of the coordinator leader,
    /// when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// Lowercase names for [`NodeStatus`], used in JSON and on the command line.
pub mod status_name {
    use kvdb_core::NodeStatus;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// The lowercase name of `status`.
    pub fn name(status: NodeStatus) -> &'static str {
        match status {
            NodeStatus::Alive => "alive",
            NodeStatus::Suspect => "suspect",
            NodeStatus::Dead => "dead",
            NodeStatus::Draining => "draining",
        }
    }

    /// The status called `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<NodeStatus> {
        [
            NodeStatus::Alive,
            NodeStatus::Suspect,
            NodeStatus::Dead,
            NodeStatus::Draining,
        ]
        .into_iter()
        .find(|s| self::name(*s).eq_ignore_ascii_case(name))
    }

    /// Serializes a status as its lowercase name.
    pub fn serialize<S: Serializer>(status: &NodeStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*status))
    }

    /// Deserializes a status from its name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeStatus, D::Error> {
        let raw = String::deserialize(d)?;
        parse(&raw).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown status {raw:?}, expected alive, suspect, dead or draining"
            ))
        })
    }
}
