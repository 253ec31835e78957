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
//! Out of scope: leader leases (openraft 0.9 offers none), eventual reads (they never wait).

use std::sync::Arc;

use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, Fatal, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::raft_types::{NodeId, ShardRaft};

/// The most read-index confirmations of one shard running at once. One lets every read that
/// arrives during a round share the next one, which measured best on a CPU-bound box.
pub const MAX_IN_FLIGHT: usize = 1;

/// Why leadership could not be confirmed: what `ensure_linearizable` reports.
pub type ReadError = RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>;

type Reply = oneshot::Sender<Result<(), ReadError>>;

/// The strong-read gate of one shard replica. Dropping it stops its task.
#[derive(Debug)]
pub struct ReadQueue {
    queue: mpsc::UnboundedSender<Reply>,
}

impl ReadQueue {
    /// A queue confirming reads with `raft`, and its task.
    pub fn spawn(raft: ShardRaft) -> (Self, JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(raft, waiting));
        (Self { queue }, task)
    }

    /// Waits until this replica is confirmed leader by a round that began after the call, and
    /// its applied state has caught up with that round's read index.
    pub async fn confirm(&self) -> Result<(), ReadError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(reply).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ReadError {
    RaftError::Fatal(Fatal::Stopped)
}

async fn run(raft: ShardRaft, mut waiting: mpsc::UnboundedReceiver<Reply>) {
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
        tokio::spawn(async move {
            let confirmed = raft.ensure_linearizable().await.map(|_| ());
            for reply in batch {
                let _ = reply.send(confirmed.clone());
            }
            drop(slot);
        });
    }
}
