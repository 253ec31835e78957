//! Best-effort leader transfer for `SetShardLeader`, built from openraft 0.9
//! primitives (0.9 has no transfer API).
//!
//! `SetShardLeader` only renames the shard's `leader` in the map; it keeps
//! `leader_term`. So when the map names node `T` for term `t` and `t` is the
//! current Raft term, the map says something Raft has not done yet, and the
//! two replicas involved act on it, each for a bounded window of
//! [`window`] (three election timeouts):
//! - the current Raft leader [hands over](handover): it stops sending
//!   heartbeats and refuses writes and strong reads with NOT_LEADER pointing
//!   at `T` (see [`crate::replica::Replica::handover_target`]), so nothing
//!   refreshes the followers' leader leases. It ends when it stops leading,
//!   or when the window is over: then it resumes, and if it still leads the
//!   replica manager reports it with its term, which the coordinator accepts
//!   (same term, other leader), so the map heals;
//! - the target [campaigns](campaign): once a lease has passed, it triggers
//!   an election, again every lease period, until it leads or the window is
//!   over. Its vote requests win once the other voters' leases expired (they
//!   refuse votes while the old leader's lease is live; openraft's lease is
//!   `election_timeout_max`) and its log is up to date.
//!
//! [`Transfers`] runs at most one such task per shard, started by the replica
//! manager's reconcile rounds, and never twice for the same epoch and role.
//!
//! A replica that lost leadership at term `t` sees a newer term, and one that
//! knows no leader does not act, so ordinary failovers (new leader, higher
//! term) never look like a transfer.
//!
//! Out of scope: guarantees. The transfer fails (and the map heals back to
//! the old leader) if the target's log lags or it cannot reach a majority in
//! time; another follower whose own election timer fires first may win
//! instead (the map then follows its report). Moves (`Moving` shards) are
//! never combined with a transfer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kvdb_core::{Epoch, NodeId, ShardId, ShardInfo, ShardState};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::replica::{Leadership, Replica};

/// What this replica has to do for a pending transfer of its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This node leads in Raft but the map names another voter for the
    /// same term: hand over.
    HandOver {
        /// The node the map names.
        target: NodeId,
        /// Its data-plane address, the hint for refused requests.
        address: String,
    },
    /// The map names this node for the current term, another node leads in
    /// Raft: campaign.
    Campaign,
}

/// The role of this node (`me`, seeing `leadership`) in a transfer of the
/// shard `info`, if one is pending. `address` resolves a node's address.
pub fn role(
    me: NodeId,
    info: &ShardInfo,
    leadership: &Leadership,
    address: impl Fn(NodeId) -> Option<String>,
) -> Option<Role> {
    let named = info.leader?;
    let settled = info.state == ShardState::Stable
        && info.leader_term == leadership.term
        && leadership.voters.contains(&named)
        && leadership.voters.contains(&me);
    if !settled {
        return None;
    }
    if leadership.is_leader && named != me {
        let address = address(named)?;
        return Some(Role::HandOver {
            target: named,
            address,
        });
    }
    let other_leads = leadership.leader.is_some_and(|l| l != me);
    (!leadership.is_leader && named == me && other_leads).then_some(Role::Campaign)
}

/// How long either side of a transfer acts: three election timeouts.
pub fn window(election_timeout_max: Duration) -> Duration {
    election_timeout_max * 3
}

/// Re-enables heartbeats and serving when the handover ends, however it
/// ends (also when its task is aborted).
struct Resume<'a>(&'a Replica);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.set_handover(None);
        self.0.raft().runtime_config().heartbeat(true);
    }
}

/// Hands `replica`'s leadership over to the replica at `address`: see the
/// module docs. `lease` is openraft's leader lease (`election_timeout_max`).
/// Returns once this node stopped leading or the window is over; the replica
/// manager then reports this node again if it still leads.
pub async fn handover(replica: Arc<Replica>, address: String, lease: Duration) {
    let shard = replica.shard();
    let started = Instant::now();
    let deadline = started + window(lease);
    tracing::info!(%shard, %address, "handing shard leadership over");
    let _resume = Resume(&replica);
    replica.set_handover(Some(address));
    replica.raft().runtime_config().heartbeat(false);
    let mut metrics = replica.raft().metrics();
    while replica.leadership().is_leader {
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let handed_over = !replica.leadership().is_leader;
    tracing::info!(%shard, handed_over, elapsed = ?started.elapsed(), "handover ended");
}

/// Campaigns for `replica`'s shard while `still_named` holds: see the module
/// docs. `lease` is openraft's leader lease (`election_timeout_max`),
/// `heartbeat` the Raft heartbeat interval.
pub async fn campaign(
    replica: Arc<Replica>,
    still_named: impl Fn() -> bool,
    lease: Duration,
    heartbeat: Duration,
) {
    let shard = replica.shard();
    let started = Instant::now();
    let deadline = started + window(lease);
    // The old leader's last heartbeat keeps the other voters' leases live.
    let mut next = started + lease + heartbeat;
    while next + heartbeat < deadline {
        tokio::time::sleep_until(next).await;
        let leadership = replica.leadership();
        if leadership.is_leader {
            tracing::info!(%shard, elapsed = ?started.elapsed(), "took over shard leadership");
            return;
        }
        if !still_named() {
            return;
        }
        tracing::info!(%shard, term = leadership.term, "campaigning for shard leadership");
        if let Err(e) = replica.raft().trigger().elect().await {
            tracing::warn!(%shard, error = %e, "cannot trigger an election");
            return;
        }
        next += lease;
    }
}

/// Whether a transfer task is running or has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Its task still runs.
    Running,
    /// Its task ended; it is not started again for the same epoch and role.
    Finished,
}

/// A transfer task with the epoch and role it serves.
type Task = (Epoch, Role, JoinHandle<()>);

/// The transfer task of each shard.
#[derive(Debug, Default)]
pub struct Transfers {
    tasks: Mutex<HashMap<ShardId, Task>>,
}

impl Transfers {
    /// Tracks the transfer of `shard` for `wanted` (an epoch and a role, or
    /// none): starts it with `start` unless a task for it exists, and forgets
    /// finished tasks of roles no longer wanted. A running task is never
    /// aborted here (it ends on its own, within its window, and must always
    /// resume the replica). Returns the wanted task's progress.
    pub fn drive(
        &self,
        shard: ShardId,
        wanted: Option<(Epoch, Role)>,
        start: impl FnOnce(&Role) -> JoinHandle<()>,
    ) -> Option<Progress> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((epoch, role, task)) = tasks.get(&shard) {
            let progress = if task.is_finished() {
                Progress::Finished
            } else {
                Progress::Running
            };
            if wanted.as_ref() == Some(&(*epoch, role.clone())) {
                return Some(progress);
            }
            if progress == Progress::Running {
                return None;
            }
            tasks.remove(&shard);
        }
        let (epoch, role) = wanted?;
        let task = start(&role);
        tasks.insert(shard, (epoch, role, task));
        Some(Progress::Running)
    }

    /// Aborts the transfer task of `shard` (its replica is being stopped).
    pub fn abort(&self, shard: ShardId) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, task)) = tasks.remove(&shard) {
            task.abort();
        }
    }

    /// Aborts every transfer task.
    pub fn abort_all(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, (_, _, task)) in tasks.drain() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::Slot;

    fn shard(leader: u64, term: u64) -> ShardInfo {
        ShardInfo {
            id: ShardId(1),
            slot_start: Slot(0),
            slot_end: Slot(100),
            replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
            leader: Some(NodeId(leader)),
            epoch: Epoch(1),
            state: ShardState::Stable,
            leader_term: term,
        }
    }

    fn seen(me: u64, leader: u64, term: u64) -> Leadership {
        Leadership {
            is_leader: me == leader,
            leader: Some(NodeId(leader)),
            leader_address: Some(format!("n{leader}")),
            term,
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        }
    }

    fn addr(n: NodeId) -> Option<String> {
        Some(format!("n{}", n.0))
    }

    #[test]
    fn the_leader_hands_over_and_the_target_campaigns_in_the_same_term() {
        let info = shard(2, 5);
        assert_eq!(
            role(NodeId(1), &info, &seen(1, 1, 5), addr),
            Some(Role::HandOver {
                target: NodeId(2),
                address: "n2".into()
            })
        );
        assert_eq!(
            role(NodeId(2), &info, &seen(2, 1, 5), addr),
            Some(Role::Campaign)
        );
        assert_eq!(role(NodeId(3), &info, &seen(3, 1, 5), addr), None);
    }

    #[test]
    fn failovers_and_settled_maps_are_not_transfers() {
        // A new leader at a newer term: it reports, it does not hand over.
        assert_eq!(role(NodeId(1), &shard(2, 5), &seen(1, 1, 6), addr), None);
        // The map's leader already leads; an unknown leader; a move.
        assert_eq!(role(NodeId(2), &shard(2, 5), &seen(2, 2, 5), addr), None);
        let mut unknown = seen(2, 1, 5);
        unknown.leader = None;
        assert_eq!(role(NodeId(2), &shard(2, 5), &unknown, addr), None);
        let mut moving = shard(2, 5);
        moving.state = ShardState::Moving {
            target: vec![NodeId(1), NodeId(2)],
        };
        assert_eq!(role(NodeId(1), &moving, &seen(1, 1, 5), addr), None);
    }
}
