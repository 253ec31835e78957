//! The client half of a call stream: one long-lived `Calls` stream to a node or a gateway,
//! shared by every request a client sends there.
//!
//! Requests queue on a channel. One task per link keeps a stream open, writes everything
//! queued as one message each time it runs, and hands each reply to its waiting request by
//! id. Every request skips the setup of an HTTP/2 stream of its own, and under load many
//! share a message; an idle link sends a request alone at once.
//!
//! When the stream fails, every request waiting on it fails with the stream's status, which
//! callers treat as the transport failure it is; the next request opens a new stream. A
//! request whose caller stopped waiting (its deadline passed) is dropped when its reply comes.
//! The serving half is `kvdb_core::call_stream`.

use std::collections::HashMap;
use std::future::Future;

use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_gateway_client::KvGatewayClient;
use kvdb_core::proto::v1::kv_node_client::KvNodeClient;
use kvdb_core::status::{from_call_error, from_status};
use pb::reply::Result as Outcome;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// The most requests one message carries.
const MAX_CALLS_PER_MESSAGE: usize = 256;
/// Past this many requests waiting on one stream, those whose callers gave up are dropped.
const PRUNE_WAITING_ABOVE: usize = 4096;

/// A service with a call stream: how to open it and how to pack a message of calls.
pub trait CallService: Clone + Send + 'static {
    /// One call's operation.
    type Call: Send + 'static;
    /// A message of calls.
    type Calls: Send + 'static;

    fn message(calls: Vec<(u64, Self::Call)>) -> Self::Calls;

    fn open(
        &mut self,
        calls: UnboundedReceiverStream<Self::Calls>,
    ) -> impl Future<Output = Result<Streaming<pb::Replies>, Status>> + Send;
}

impl CallService for KvNodeClient<Channel> {
    type Call = pb::node_call::Op;
    type Calls = pb::NodeCalls;

    fn message(calls: Vec<(u64, Self::Call)>) -> pb::NodeCalls {
        let calls = calls
            .into_iter()
            .map(|(id, op)| pb::NodeCall { id, op: Some(op) })
            .collect();
        pb::NodeCalls { calls }
    }

    async fn open(
        &mut self,
        calls: UnboundedReceiverStream<pb::NodeCalls>,
    ) -> Result<Streaming<pb::Replies>, Status> {
        Ok(self.calls(calls).await?.into_inner())
    }
}

/// A gateway call: the operation and its timeout in milliseconds (0: the gateway's default).
pub type GatewayCall = (pb::call::Op, u64);

impl CallService for KvGatewayClient<Channel> {
    type Call = GatewayCall;
    type Calls = pb::Calls;

    fn message(calls: Vec<(u64, GatewayCall)>) -> pb::Calls {
        let calls = calls
            .into_iter()
            .map(|(id, (op, timeout_ms))| pb::Call {
                id,
                op: Some(op),
                timeout_ms,
            })
            .collect();
        pb::Calls { calls }
    }

    async fn open(
        &mut self,
        calls: UnboundedReceiverStream<pb::Calls>,
    ) -> Result<Streaming<pb::Replies>, Status> {
        Ok(self.calls(calls).await?.into_inner())
    }
}

type Waiter = oneshot::Sender<Result<Outcome, Status>>;

struct Job<C> {
    call: C,
    reply: Waiter,
}

/// The handle of one call stream; cheap to clone.
pub struct CallLink<S: CallService> {
    jobs: mpsc::UnboundedSender<Job<S::Call>>,
}

impl<S: CallService> Clone for CallLink<S> {
    fn clone(&self) -> Self {
        CallLink {
            jobs: self.jobs.clone(),
        }
    }
}

/// The call stream to one storage node.
pub type NodeLink = CallLink<KvNodeClient<Channel>>;
/// The call stream to a gateway.
pub type GatewayLink = CallLink<KvGatewayClient<Channel>>;

impl<S: CallService> CallLink<S> {
    /// Starts the link's task over `service`; the stream opens with the first request. The
    /// task ends when the last handle is dropped.
    pub fn open(service: S) -> CallLink<S> {
        let (jobs, queued) = mpsc::unbounded_channel();
        tokio::spawn(drive(service, queued));
        CallLink { jobs }
    }

    /// Sends `call` and waits for its outcome; an error reply becomes the error it encodes.
    pub async fn call(&self, call: S::Call) -> Result<Outcome, KvError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { call, reply })
            .map_err(|_| KvError::Unavailable("the call stream's task has stopped".into()))?;
        match answer.await {
            Ok(Ok(Outcome::Error(err))) => Err(from_call_error(&err)),
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(status)) => Err(from_status(&status)),
            Err(_) => Err(KvError::Unavailable(
                "the call stream's task has stopped".into(),
            )),
        }
    }
}

impl NodeLink {
    pub async fn get(&self, req: pb::NodeGetRequest) -> Result<pb::GetResponse, KvError> {
        get_reply(self.call(pb::node_call::Op::Get(req)).await?)
    }

    pub async fn put(&self, req: pb::NodePutRequest) -> Result<pb::PutResponse, KvError> {
        put_reply(self.call(pb::node_call::Op::Put(req)).await?)
    }

    pub async fn delete(&self, req: pb::NodeDeleteRequest) -> Result<pb::DeleteResponse, KvError> {
        delete_reply(self.call(pb::node_call::Op::Delete(req)).await?)
    }
}

impl GatewayLink {
    pub async fn get(
        &self,
        req: pb::GetRequest,
        timeout_ms: u64,
    ) -> Result<pb::GetResponse, KvError> {
        get_reply(self.call((pb::call::Op::Get(req), timeout_ms)).await?)
    }

    pub async fn put(
        &self,
        req: pb::PutRequest,
        timeout_ms: u64,
    ) -> Result<pb::PutResponse, KvError> {
        put_reply(self.call((pb::call::Op::Put(req), timeout_ms)).await?)
    }

    pub async fn delete(
        &self,
        req: pb::DeleteRequest,
        timeout_ms: u64,
    ) -> Result<pb::DeleteResponse, KvError> {
        delete_reply(self.call((pb::call::Op::Delete(req), timeout_ms)).await?)
    }
}

fn get_reply(outcome: Outcome) -> Result<pb::GetResponse, KvError> {
    match outcome {
        Outcome::Get(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

fn put_reply(outcome: Outcome) -> Result<pb::PutResponse, KvError> {
    match outcome {
        Outcome::Put(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

fn delete_reply(outcome: Outcome) -> Result<pb::DeleteResponse, KvError> {
    match outcome {
        Outcome::Delete(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

/// A reply of the wrong kind means a broken server.
fn mismatch() -> KvError {
    KvError::Internal("the server answered a call with a reply of another kind".into())
}

/// The link's task: one stream at a time, opened when a request comes.
async fn drive<S: CallService>(service: S, mut queued: mpsc::UnboundedReceiver<Job<S::Call>>) {
    let mut next_id = 0u64;
    while let Some(first) = queued.recv().await {
        let mut waiting = HashMap::new();
        let (outbound, calls) = mpsc::unbounded_channel();
        // Goes out with the stream's opening.
        let _ = outbound.send(take_batch::<S>(
            first,
            &mut queued,
            &mut waiting,
            &mut next_id,
        ));
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
                    let batch = take_batch::<S>(job, &mut queued, &mut waiting, &mut next_id);
                    if outbound.send(batch).is_err() {
                        break Status::unavailable("the call stream closed");
                    }
                    if waiting.len() > PRUNE_WAITING_ABOVE {
                        waiting.retain(|_, waiter: &mut Waiter| !waiter.is_closed());
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        for reply in message.replies {
                            if let Some(waiter) = waiting.remove(&reply.id) {
                                let outcome = reply.result.ok_or_else(|| {
                                    Status::internal("the server sent a reply without a result")
                                });
                                let _ = waiter.send(outcome);
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
    first: Job<S::Call>,
    queued: &mut mpsc::UnboundedReceiver<Job<S::Call>>,
    waiting: &mut HashMap<u64, Waiter>,
    next_id: &mut u64,
) -> S::Calls {
    let mut calls = Vec::new();
    let mut job = Some(first);
    while let Some(Job { call, reply }) = job.take() {
        *next_id += 1;
        waiting.insert(*next_id, reply);
        calls.push((*next_id, call));
        if calls.len() < MAX_CALLS_PER_MESSAGE {
            job = queued.try_recv().ok();
        }
    }
    S::message(calls)
}

fn fail_all(waiting: &mut HashMap<u64, Waiter>, status: &Status) {
    for (_, waiter) in waiting.drain() {
        let _ = waiter.send(Err(status.clone()));
    }
}

#[cfg(test)]
#[path = "call_link_tests.rs"]
mod tests;
