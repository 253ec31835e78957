//! Moving a shard to a new replica set, run by the shard's Raft leader.
//!
//! The coordinator starts a move by bumping the shard's epoch and marking it
//! `Moving { target }`. The leader then:
//! 1. adds every target node that is not a voter yet as a learner, waiting
//!    until it has caught up (by log or snapshot);
//! 2. changes the membership to exactly the target set (joint consensus
//!    inside openraft), which removes the old voters;
//! 3. reports the committed set, so the coordinator marks the shard stable.
//!
//! Each step is idempotent, so a new leader that takes over half way simply
//! runs the whole sequence again. Replicas that left the set delete their
//! data themselves once they see the stable map without them (see the
//! replica manager).
//!
//! Out of scope: choosing targets (the coordinator's scheduler, or an operator) and slot
//! range changes (splits and merges are not supported).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kvdb_core::{Epoch, NodeId, ShardId};
use openraft::BasicNode;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};

use crate::control::ControlPlane;
use crate::replica::Replica;

/// Pause between retries of a failed step.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// One move: the shard, the epoch that started it, the target set with
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The shard being moved.
    pub shard: ShardId,
    /// The epoch of the `Moving` state.
    pub epoch: Epoch,
    /// Target members and their data-plane addresses.
    pub target: Vec<(NodeId, String)>,
}

/// Why a move stopped before completing. The next leader (or the next
/// reconcile round on this one) starts it again.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// This node is no longer the shard's leader.
    #[error("shard {0}: lost leadership during the move")]
    NotLeader(ShardId),
    /// openraft refused or failed a membership step.
    #[error("shard {shard}: membership change failed: {reason}")]
    Raft {
        /// The shard.
        shard: ShardId,
        /// openraft's error, as text: it is only logged.
        reason: String,
    },
}

/// Runs `mv` to completion on `replica`, this node being its leader.
pub async fn run(
    replica: Arc<Replica>,
    control: Arc<dyn ControlPlane>,
    mv: Move,
) -> Result<(), MoveError> {
    let shard = mv.shard;
    let raft = replica.raft();
    let voters = replica.leadership().voters;
    for (node, addr) in &mv.target {
        if voters.contains(node) {
            continue;
        }
        tracing::info!(%shard, %node, "adding learner");
        raft.add_learner(node.0, BasicNode::new(addr), true)
            .await
            .map_err(|e| classify(shard, e))?;
    }
    let members: BTreeSet<u64> = mv.target.iter().map(|(n, _)| n.0).collect();
    tracing::info!(%shard, ?members, "changing membership");
    raft.change_membership(members, false)
        .await
        .map_err(|e| classify(shard, e))?;
    let replicas: Vec<NodeId> = mv.target.iter().map(|(n, _)| *n).collect();
    loop {
        match control
            .report_shard_config(shard, mv.epoch, replicas.clone())
            .await
        {
            Ok(accepted) => {
                tracing::info!(%shard, epoch = %mv.epoch, accepted, "reported new configuration");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(%shard, error = %e, "configuration report failed; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

fn classify(shard: ShardId, e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> MoveError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MoveError::NotLeader(shard),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => MoveError::Raft {
            shard,
            reason: "another membership change is in progress".into(),
        },
        other => MoveError::Raft {
            shard,
            reason: other.to_string(),
        },
    }
}
