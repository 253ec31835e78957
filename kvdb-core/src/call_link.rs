//! The client half of a call stream: one long-lived gRPC stream to a server, shared by every
//! call a process sends there. Clients use it toward nodes and gateways
//! (`kvdb_client::call_link`), and nodes use it toward each other for Raft's AppendEntries
//! ([`crate::raft::transport`]).
//!
//! Calls queue on a channel. One task per link keeps a stream open, writes everything queued
//! as one message each time it runs, and hands each reply to its waiting call by id. Every
//! call skips the setup of an HTTP/2 stream of its own, and under load many share a message;
//! an idle link sends a call alone at once.
//!
//! When the stream fails, every call waiting on it fails with the stream's status, which
//! callers treat as the transport failure it is; the next call opens a new stream. A call
//! whose caller stopped waiting (its deadline passed) is dropped when its reply comes. The
//! serving half is [`crate::call_stream`].

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Status, Streaming};

/// The most calls one message carries.
pub const MAX_CALLS_PER_MESSAGE: usize = 256;

/// A message of calls or replies takes no more once it holds this many bytes; its first one
/// goes whatever its size. So a message never exceeds [`max_message_bytes`] of its largest
/// call, however many calls wait.
pub const MESSAGE_BUDGET_BYTES: usize = 1 << 20;

/// The largest message a call stream can carry when no single call (or reply) exceeds
/// `max_item_bytes`: a budget's worth, one more item, and framing. Servers and clients size
/// their gRPC message limits with it.
pub const fn max_message_bytes(max_item_bytes: usize) -> usize {
    MESSAGE_BUDGET_BYTES + max_item_bytes + 64 * 1024
}

/// The most a node's key and value limits may add up to (a node refuses more).
pub const MAX_KEY_AND_VALUE_BYTES: usize = 60 << 20;

/// The largest message a client-facing server (gateway, node) accepts and a client receives:
/// room for one request or reply at [`MAX_KEY_AND_VALUE_BYTES`].
pub const MAX_CLIENT_MESSAGE_BYTES: usize = max_message_bytes(MAX_KEY_AND_VALUE_BYTES);
/// Past this many calls waiting on one stream, those whose callers gave up are dropped.
const PRUNE_WAITING_ABOVE: usize = 4096;

/// A service with a call stream: how to open it, pack a message of calls and unpack one of
/// replies.
pub trait CallService: Clone + Send + 'static {
    /// One call.
    type Call: Send + 'static;
    /// A message of calls.
    type Calls: Send + 'static;
    /// One reply.
    type Reply: Send + 'static;
    /// A message of replies.
    type Replies: Send + 'static;

    /// Packs calls tagged with their ids.
    fn message(calls: Vec<(u64, Self::Call)>) -> Self::Calls;

    /// A call's encoded size in bytes, roughly: what it adds to a message.
    fn size(call: &Self::Call) -> usize;

    /// Unpacks replies, each with the id of its call.
    fn replies(message: Self::Replies) -> impl Iterator<Item = (u64, Self::Reply)>;

    /// Opens a stream that sends the messages `calls` yields.
    fn open(
        &mut self,
        calls: UnboundedReceiverStream<Self::Calls>,
    ) -> impl Future<Output = Result<Streaming<Self::Replies>, Status>> + Send;
}

type Waiter<R> = oneshot::Sender<Result<R, Status>>;

struct Job<S: CallService> {
    call: S::Call,
    reply: Waiter<S::Reply>,
}

/// The handle of one call stream; cheap to clone.
pub struct CallLink<S: CallService> {
    jobs: mpsc::UnboundedSender<Job<S>>,
}

impl<S: CallService> Clone for CallLink<S> {
    fn clone(&self) -> Self {
        CallLink {
            jobs: self.jobs.clone(),
        }
    }
}

impl<S: CallService> std::fmt::Debug for CallLink<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLink")
            .field("open", &!self.jobs.is_closed())
            .finish()
    }
}

impl<S: CallService> CallLink<S> {
    /// Starts the link's task over `service`; the stream opens with the first call. The task
    /// ends when the last handle is dropped. Must run inside a Tokio runtime.
    pub fn open(service: S) -> CallLink<S> {
        let (jobs, queued) = mpsc::unbounded_channel();
        tokio::spawn(drive(service, queued));
        CallLink { jobs }
    }

    /// Sends `call` and waits for its reply, or for the status the stream failed with.
    pub async fn call(&self, call: S::Call) -> Result<S::Reply, Status> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Status::unavailable("the call stream's task has stopped");
        self.jobs.send(Job { call, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The link's task: one stream at a time, opened when a call comes.
async fn drive<S: CallService>(service: S, mut queued: mpsc::UnboundedReceiver<Job<S>>) {
    let mut next_id = 0u64;
    while let Some(first) = queued.recv().await {
        let mut waiting = HashMap::new();
        let (outbound, calls) = mpsc::unbounded_channel();
        // Goes out with the stream's opening.
        let _ = outbound.send(take_batch(first, &mut queued, &mut waiting, &mut next_id));
        let mut service = service.clone();
        let mut inbound = match service.open(UnboundedReceiverStream::new(calls)).await {
            Ok(inbound) => inbound,
            Err(status) => {
                fail_all(&mut waiting, &status);
                continue;
            }
        };
        let failure = loop {
            tokio::select! {
                job = queued.recv() => {
                    let Some(job) = job else { return };
                    let batch = take_batch(job, &mut queued, &mut waiting, &mut next_id);
                    if outbound.send(batch).is_err() {
                        break Status::unavailable("the call stream closed");
                    }
                    if waiting.len() > PRUNE_WAITING_ABOVE {
                        waiting.retain(|_, waiter| !waiter.is_closed());
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        for (id, reply) in S::replies(message) {
                            if let Some(waiter) = waiting.remove(&id) {
                                let _ = waiter.send(Ok(reply));
                            }
                        }
                    }
                    Ok(None) => break Status::unavailable("the server closed the call stream"),
                    Err(status) => break status,
                },
            }
        };
        tracing::debug!(%failure, waiting = waiting.len(), "call stream ended");
        fail_all(&mut waiting, &failure);
    }
}

/// `first` and whatever else is queued, up to a message's worth, registered as waiting.
fn take_batch<S: CallService>(
    first: Job<S>,
    queued: &mut mpsc::UnboundedReceiver<Job<S>>,
    waiting: &mut HashMap<u64, Waiter<S::Reply>>,
    next_id: &mut u64,
) -> S::Calls {
    let mut calls = Vec::new();
    let mut bytes = 0;
    let mut job = Some(first);
    while let Some(Job { call, reply }) = job.take() {
        *next_id += 1;
        waiting.insert(*next_id, reply);
        bytes += S::size(&call);
        calls.push((*next_id, call));
        if calls.len() < MAX_CALLS_PER_MESSAGE && bytes < MESSAGE_BUDGET_BYTES {
            job = queued.try_recv().ok();
        }
    }
    S::message(calls)
}

fn fail_all<R>(waiting: &mut HashMap<u64, Waiter<R>>, status: &Status) {
    for (_, waiter) in waiting.drain() {
        let _ = waiter.send(Err(status.clone()));
    }
}
