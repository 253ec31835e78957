//! [`WriteQueue`]: coalesces a shard leader's concurrent writes into batched Raft entries.
//!
//! openraft 0.9's core appends one client write at a time and waits for that entry's fsync
//! before it takes the next, so one entry per write caps a shard at one write per fsync,
//! however many clients wait. The queue keeps at most [`MAX_IN_FLIGHT`] proposals inside
//! Raft; writes that arrive meanwhile wait here and go in together as one [`Op::Batch`] entry
//! (at most [`MAX_BATCH`] writes), so the fsync and the replication round are shared. A write
//! that finds nothing waiting beside it is proposed as itself.
//!
//! Every write still gets its own result (the machine applies a batch's commands in order,
//! each with its own version), and is answered only once its entry is committed on a majority
//! and applied here, exactly as a lone `client_write`. A failed proposal fails all its writes
//! with the same error, which for a write is always "outcome unknown or not leader", as
//! before.
//!
//! Out of scope: routing and limits (checked before a write is queued) and retries.

use openraft::BasicNode;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::raft::ClientWriteResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::command::{Command, CommandResult, Op};
use crate::raft_types::{RaftId, ShardRaft, ShardRaftConfig};

/// The most writes one Raft entry carries.
pub const MAX_BATCH: usize = 1024;
/// The most proposals of one shard inside Raft at once. One maximises batching, which on a
/// CPU-bound box beat two or four (each entry costs an fsync'd log commit and a KV apply
/// transaction on every replica); see docs/performance.md.
pub const MAX_IN_FLIGHT: usize = 1;

/// How well a node's write queues batch: Raft entries they proposed and the writes in them,
/// summed over every shard (see `crate::metrics`).
#[derive(Debug, Default)]
pub struct BatchCounts {
    /// Entries proposed.
    pub entries: AtomicU64,
    /// Client writes in them.
    pub writes: AtomicU64,
}

/// Why a queued write failed: what `client_write` reports.
pub type WriteError = RaftError<RaftId, ClientWriteError<RaftId, BasicNode>>;

type Reply = oneshot::Sender<Result<CommandResult, WriteError>>;

struct Queued {
    command: Command,
    reply: Reply,
}

/// The write path of one shard replica. Dropping it stops the batching task once the
/// proposals already taken have finished.
#[derive(Debug)]
pub struct WriteQueue {
    queue: mpsc::UnboundedSender<Queued>,
}

impl WriteQueue {
    /// A queue proposing to `raft`, and its batching task.
    pub fn spawn(raft: ShardRaft, counts: Arc<BatchCounts>) -> (Self, JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(raft, waiting, counts));
        (Self { queue }, task)
    }

    /// Proposes `command` and waits until it is committed and applied on this leader.
    pub async fn write(&self, command: Command) -> Result<CommandResult, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { command, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> WriteError {
    RaftError::Fatal(Fatal::Stopped)
}

/// Takes the waiting writes as a batch whenever a proposal slot is free.
async fn run(
    raft: ShardRaft,
    mut waiting: mpsc::UnboundedReceiver<Queued>,
    counts: Arc<BatchCounts>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Writes often arrive in bursts (a client's message of many calls, a batch of
        // replies answered at once), each in a task of its own that is ready to run: let them
        // queue before the batch is cut, rather than proposing the first alone.
        tokio::task::yield_now().await;
        // Everything that queued while we waited for the slot rides along.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        counts.entries.fetch_add(1, Ordering::Relaxed);
        counts
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

/// `Raft::client_write`, but a proposal whose caller Raft drops answers at once that its
/// outcome is unknown. Raft drops the callers of proposals that a snapshot install settled
/// (a KvDB patch, see third_party/README.md); `client_write` would first wait a second for a
/// core that is not stopping and log that as an error.
async fn client_write(
    raft: &ShardRaft,
    command: Command,
) -> Result<ClientWriteResponse<ShardRaftConfig>, WriteError> {
    let answer = raft
        .client_write_ff(command)
        .await
        .map_err(RaftError::Fatal)?;
    match answer.await {
        Ok(result) => result.map_err(RaftError::APIError),
        Err(_) => Err(stopped()),
    }
}

/// Proposes `batch` as one entry and answers each write.
async fn propose(raft: &ShardRaft, mut batch: Vec<Queued>) {
    if batch.len() == 1 {
        let Queued { command, reply } = batch.remove(0);
        let result = client_write(raft, command).await.map(|r| r.data);
        let _ = reply.send(result);
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<Reply>) = batch
        .into_iter()
        .map(|write| (write.command, write.reply))
        .unzip();
    let now_ms = commands.iter().map(|c| c.now_ms).max().unwrap_or_default();
    let entry = Command {
        now_ms,
        op: Op::Batch(commands),
    };
    match client_write(raft, entry).await {
        Ok(response) => {
            let results = match response.data {
                CommandResult::Batch(results) if results.len() == replies.len() => results,
                // Cannot happen: the machine answers a batch with one result per command.
                // `None` makes each caller report an internal error.
                _ => vec![CommandResult::None; replies.len()],
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
