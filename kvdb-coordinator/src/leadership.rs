//! Who leads the coordinator group and how to reach them.
//!
//! The leader's id comes from this member's Raft metrics and its gRPC address
//! from the Raft membership. Its admin address is in the replicated state: a
//! member that becomes leader proposes `AnnounceMember` with its addresses
//! (once per address change), so every member can point a client at the
//! leader's admin API without asking it first.

use kvdb_core::MapVersion;
use openraft::{RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::Command;
use crate::coordinator::Coordinator;
use crate::feed::View;
use crate::state::MemberAddress;

/// Where the coordinator leader is, as far as this member knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// Raft id of the leader.
    pub id: Option<u64>,
    /// The leader's gRPC address.
    pub grpc_address: Option<String>,
    /// The leader's admin HTTP address, once it has announced it.
    pub admin_address: Option<String>,
}

/// One member of the coordinator group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's Raft id.
    pub id: u64,
    /// Its gRPC address, from the Raft membership.
    pub grpc_address: String,
    /// Known once the member has led.
    pub admin_address: Option<String>,
}

/// A summary of the coordinator group and the map, as this member sees it;
/// also the body of the Admin API's `GET /admin/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// This member's id.
    pub member_id: u64,
    /// This member's Raft role: `leader`, `follower`, `candidate`, `learner`
    /// or `shutdown`.
    pub role: String,
    /// This member's current Raft term.
    pub term: u64,
    /// The leader, as far as this member knows.
    pub leader: LeaderInfo,
    /// Every member of the current Raft membership.
    pub members: Vec<MemberInfo>,
    /// See [`Coordinator::is_ready`].
    pub ready: bool,
    /// Index of the last applied Raft log entry.
    pub last_applied: Option<u64>,
    /// Version of this member's applied map (a follower's may lag).
    pub map_version: MapVersion,
    /// Whether the shards exist (shard init has been applied).
    pub initialized: bool,
    /// Shard count given at initialization; `None` before it.
    pub num_shards: Option<u32>,
    /// Replication factor given at initialization; `None` before it.
    pub replication_factor: Option<u32>,
    /// Registered storage nodes.
    pub node_count: usize,
    /// Shards in the map.
    pub shard_count: usize,
}

/// The leader as seen in `metrics` and `view`.
pub(crate) fn leader_info(
    metrics: &RaftMetrics<u64, openraft::BasicNode>,
    view: &View,
) -> LeaderInfo {
    let Some(id) = metrics.current_leader else {
        return LeaderInfo::default();
    };
    let membership = metrics.membership_config.membership();
    LeaderInfo {
        id: Some(id),
        grpc_address: membership.get_node(&id).map(|n| n.addr.clone()),
        admin_address: view.members.get(&id).and_then(|m| m.admin_address.clone()),
    }
}

/// The summary of `metrics` and `view`.
pub(crate) fn cluster_info(
    metrics: &RaftMetrics<u64, openraft::BasicNode>,
    view: &View,
    ready: bool,
) -> ClusterInfo {
    let members = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, node)| MemberInfo {
            id: *id,
            grpc_address: node.addr.clone(),
            admin_address: view.members.get(id).and_then(|m| m.admin_address.clone()),
        })
        .collect();
    ClusterInfo {
        member_id: metrics.id,
        role: role(metrics.state).to_owned(),
        term: metrics.current_term,
        leader: leader_info(metrics, view),
        members,
        ready,
        last_applied: metrics.last_applied.map(|l| l.index),
        map_version: view.map.version,
        initialized: view.map.is_initialized(),
        num_shards: view.init.map(|i| i.num_shards),
        replication_factor: view.init.map(|i| i.replication_factor),
        node_count: view.map.nodes.len(),
        shard_count: view.map.shards.len(),
    }
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// Whether a member that applied up to `metrics.last_applied` has caught up
/// with its leader: a leader is known, and an entry of the current term (at
/// least the leader's own first entry) is applied, so everything committed
/// before this leadership is applied too.
pub(crate) fn is_ready(metrics: &RaftMetrics<u64, openraft::BasicNode>) -> bool {
    metrics.current_leader.is_some()
        && metrics
            .last_applied
            .is_some_and(|applied| applied.leader_id.term == metrics.current_term)
}

/// Announces this member's addresses whenever it leads and the replicated
/// record differs. Ends when `stop` turns true.
pub(crate) async fn announce(coordinator: Coordinator, mut stop: watch::Receiver<bool>) {
    let mut metrics = coordinator.raft_metrics();
    let config = coordinator.config();
    let id = config.id;
    let mine = MemberAddress {
        grpc_address: config.members().get(&id).cloned().unwrap_or_default(),
        admin_address: config.admin_listen.map(|a| a.to_string()),
    };
    loop {
        let leading = metrics.borrow_and_update().state == ServerState::Leader;
        if leading && coordinator.view().members.get(&id) != Some(&mine) {
            let command = Command::AnnounceMember {
                id,
                grpc_address: mine.grpc_address.clone(),
                admin_address: mine.admin_address.clone(),
            };
            if let Err(e) = coordinator.execute_local(command).await {
                tracing::debug!(error = %e, "could not announce this member's addresses");
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
