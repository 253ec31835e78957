//! [`ReadQueue`]: one read-index confirmation shared by every strong read that waits for it.
//!
//! A STRONG get must learn that this replica still leads (a round of heartbeats answered by a
//! majority) and wait until the state it reads has applied the commit index of that moment.
//! openraft's `ensure_linearizable` does both, but one call per read costs one heartbeat round
//! per read. The queue takes all reads that are waiting and confirms them with one call:
//! every read in the batch arrived before the call began, so the leadership it confirms and
//! the read index it waits for are at least as recent as each read's arrival, which is all
//! linearizability asks. At most [`MAX_IN_FLIGHT`] confirmations run at once; reads that
//! arrive during a round wait for it to end and then share the next one.
//!
//! A confirmed round is not enough on its own. openraft's read index is
//! `max(first entry of the leader's term, commit index)`, and a leadership that began without
//! an entry of its own (openraft resumes one at restart from a committed vote; KvDB's log store
//! prevents that, see `GroupLogStore::read_vote`) would serve the commit index it saved before
//! the crash, which may lag the last acknowledged write. So after the round the queue also
//! waits until the applied index reaches the leadership's [`ReadFloor`]: the last log index
//! this replica held when it was first seen leading, which holds every entry committed before
//! the leadership began (see `kvdb_core::raft::read_floor` for the argument). A replica loses
//! nothing by this after an election: the no-op openraft appends there is at or past the
//! floor, and the read index already covers it. Lease reads (`Replica::holds_read_lease`)
//! check the same floor.
//!
//! Saving the commit index durably before acknowledging writes would close the same gap for
//! this restart path only, at one more synced log write per round on every leader; the floor
//! costs nothing on the write path and holds whatever the path to leadership.
//!
//! Out of scope: leader leases (`kvdb_core::raft::lease`), eventual reads (they never wait).

use std::sync::Arc;

use kvdb_core::raft::read_floor::{Observed, ReadFloor};
use openraft::error::{CheckIsLeaderError, Fatal, ForwardToLeader, RaftError};
use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::raft_types::{RaftId, ShardRaft};

/// The most read-index confirmations of one shard running at once. One lets every read that
/// arrives during a round share the next one, which measured best on a CPU-bound box.
pub const MAX_IN_FLIGHT: usize = 1;

/// Why leadership could not be confirmed: what `ensure_linearizable` reports.
pub type ReadError = RaftError<RaftId, CheckIsLeaderError<RaftId, BasicNode>>;

type Reply = oneshot::Sender<Result<(), ReadError>>;

/// The strong-read gate of one shard replica. Dropping it stops its task.
#[derive(Debug)]
pub struct ReadQueue {
    queue: mpsc::UnboundedSender<Reply>,
}

impl ReadQueue {
    /// A queue confirming reads of replica `me` with `raft`, and its task.
    pub fn spawn(raft: ShardRaft, me: RaftId, floor: Arc<ReadFloor>) -> (Self, JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(raft, me, floor, waiting));
        (Self { queue }, task)
    }

    /// Waits until this replica is confirmed leader by a round that began after the call, and
    /// its applied state has caught up with that round's read index and its leadership's floor.
    pub async fn confirm(&self) -> Result<(), ReadError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(reply).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ReadError {
    RaftError::Fatal(Fatal::Stopped)
}

async fn run(
    raft: ShardRaft,
    me: RaftId,
    floor: Arc<ReadFloor>,
    mut waiting: mpsc::UnboundedReceiver<Reply>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Taken before the confirmation starts: each of these arrived before it.
        let mut batch = vec![first];
        while let Ok(reply) = waiting.try_recv() {
            batch.push(reply);
        }
        let raft = raft.clone();
        let floor = floor.clone();
        tokio::spawn(async move {
            let mut confirmed = raft.ensure_linearizable().await.map(|_| ());
            // The floor wait sends no heartbeats: the next round need not wait for it.
            drop(slot);
            if confirmed.is_ok() {
                confirmed = reach_floor(&raft, me, &floor).await;
            }
            for reply in batch {
                let _ = reply.send(confirmed.clone());
            }
        });
    }
}

/// What `m` shows of replica `me`, for its [`ReadFloor`].
pub fn observed(me: RaftId, m: &RaftMetrics<RaftId, BasicNode>) -> Observed<'_> {
    Observed {
        me,
        vote: &m.vote,
        leading: m.state == ServerState::Leader,
        last_log_index: m.last_log_index,
    }
}

/// Waits until the applied index reaches the floor of this replica's leadership. Fails with
/// `ForwardToLeader` if the leadership ends first: the read must go to the next leader.
async fn reach_floor(raft: &ShardRaft, me: RaftId, floor: &ReadFloor) -> Result<(), ReadError> {
    let mut metrics = raft.metrics();
    let mut leadership = None;
    loop {
        {
            let m = metrics.borrow_and_update();
            let now = floor.observe(observed(me, &m));
            let Some(now) = now.filter(|n| *leadership.get_or_insert(n.leader) == n.leader) else {
                return Err(not_leader(&m));
            };
            if m.last_applied.map(|applied| applied.index) >= now.index {
                return Ok(());
            }
        }
        if metrics.changed().await.is_err() {
            return Err(stopped());
        }
    }
}

fn not_leader(m: &RaftMetrics<RaftId, BasicNode>) -> ReadError {
    let leader = m.current_leader.filter(|&id| id != m.id);
    let node = leader.and_then(|id| m.membership_config.membership().get_node(&id).cloned());
    RaftError::APIError(CheckIsLeaderError::ForwardToLeader(ForwardToLeader {
        leader_id: leader,
        leader_node: node,
    }))
}
