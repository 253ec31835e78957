//! The serving half of a call stream (`KvNode.Calls`, `KvGateway.Calls`, and
//! `RaftTransport.AppendEntriesStream` between nodes): any number of operations over one
//! long-lived gRPC stream.
//!
//! One task reads the client's messages and polls each operation once as it reads it. One
//! that is done at once (a lease read, usually) queues its reply right there; the others wait
//! in the same task, each polled only when woken, so a read never waits behind a slow write
//! that arrived with it. A task per operation cost a node about a fifth more CPU per read
//! served through the gateway, most of it waking another worker thread for each new task.
//! Finished operations queue their replies, and every poll of the response stream sends all
//! that are queued in one message: operations that finish together share the cost of a write
//! to the connection.
//!
//! Each operation is answered as its unary RPC would be, errors included
//! ([`crate::status::to_call_error`]). The client half is [`crate::call_link`].
//!
//! A stream has at most [`MAX_CALLS_IN_FLIGHT`] calls running or waiting to send their
//! replies; past that it stops reading the client's messages until replies go out.
//!
//! A client message that cannot be read (not protobuf, or over the size limit) ends the
//! response stream with `INVALID_ARGUMENT` after the replies already queued, never with `OK`:
//! the client must learn that the calls it sent from there on will get no answer.
//!
//! A server that stops must end its call streams itself ([`Closing`]): tonic's graceful
//! shutdown waits for open streams, and a call stream stays open as long as its client lives.
//! Calls still running then go unanswered, and their client fails them as unavailable, as it
//! would on a lost connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::Stream;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tonic::{Status, Streaming};

use crate::call_link::MESSAGE_BUDGET_BYTES;
use crate::error::KvError;
use crate::proto::v1 as pb;
use crate::status::to_call_error;

/// The response stream of one call stream whose messages are `B`.
pub type ReplyStream<B> = Pin<Box<dyn Stream<Item = Result<B, Status>> + Send>>;

/// The response stream of `KvNode.Calls` and `KvGateway.Calls`.
pub type RepliesStream = ReplyStream<pb::Replies>;

/// A message of replies.
pub trait ReplyBatch: Send + 'static {
    /// One reply.
    type Reply: Send + 'static;

    /// Packs replies into one message.
    fn of(replies: Vec<Self::Reply>) -> Self;

    /// A reply's encoded size in bytes, roughly: what it adds to a message.
    fn size(reply: &Self::Reply) -> usize;
}

impl ReplyBatch for pb::Replies {
    type Reply = pb::Reply;

    fn of(replies: Vec<pb::Reply>) -> Self {
        pb::Replies { replies }
    }

    fn size(reply: &pb::Reply) -> usize {
        prost::Message::encoded_len(reply)
    }
}

/// The most calls of one stream that may be running or waiting to send their reply. Past it
/// the stream reads no more calls until replies go out: a client that sends without reading
/// its replies is held back by HTTP/2 flow control instead of growing the server's memory.
pub const MAX_CALLS_IN_FLIGHT: usize = 1024;

/// The most replies one message carries (and no more than [`MESSAGE_BUDGET_BYTES`] of them,
/// but for the first).
const MAX_REPLIES_PER_MESSAGE: usize = 256;

/// Ends a server's call streams when its shutdown begins.
#[derive(Debug, Clone, Default)]
pub struct Closing(Option<watch::Receiver<bool>>);

impl Closing {
    /// Closes when `stop` turns true or its sender is dropped.
    pub fn on(stop: watch::Receiver<bool>) -> Closing {
        Closing(Some(stop))
    }

    /// Never closes (a service whose server does not shut down gracefully).
    pub fn never() -> Closing {
        Closing(None)
    }

    async fn wait(&mut self) {
        match &mut self.0 {
            // An error means the sender is gone, which is a shutdown too.
            Some(stop) => drop(stop.wait_for(|stop| *stop).await),
            None => std::future::pending().await,
        }
    }
}

/// Starts serving one call stream: `calls_of` splits each client message into its calls, and
/// `answer` runs one. The response stream ends once the client has closed its side and every
/// call it sent has been answered, or when `closing` closes.
pub fn serve<M, C, B, F, Fut>(
    mut inbound: Streaming<M>,
    calls_of: fn(M) -> Vec<C>,
    answer: F,
    closing: Closing,
) -> ReplyStream<B>
where
    M: Send + 'static,
    C: Send + 'static,
    B: ReplyBatch,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = B::Reply> + Send + 'static,
{
    let answer = Arc::new(answer);
    let (replies, queued) = mpsc::unbounded_channel::<Result<Answered<B::Reply>, Status>>();
    let in_flight = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
    let mut reader_closing = closing.clone();
    tokio::spawn(async move {
        // The calls still waiting, polled here as they are woken: a batch of writes that
        // commit together wakes this one task once, not a task per write.
        let mut running = FuturesUnordered::new();
        'read: loop {
            let message = tokio::select! {
                biased;
                Some(answered) = running.next(), if !running.is_empty() => {
                    // Fails only when the response stream is gone with its client.
                    let _ = replies.send(Ok(answered));
                    continue;
                }
                message = inbound.message() => message,
                () = reader_closing.wait() => break,
            };
            let message = match message {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    // The calls already read are answered first; the client must then hear
                    // why the rest go unanswered (if it is gone, nobody reads this).
                    while let Some(answered) = running.next().await {
                        let _ = replies.send(Ok(answered));
                    }
                    let _ = replies.send(Err(unreadable(&status)));
                    return;
                }
            };
            for call in calls_of(message) {
                // Backpressure: at the limit, stop reading until replies are sent, so that
                // HTTP/2 flow control holds the client back. Waiting calls still finish.
                let permit = loop {
                    tokio::select! {
                        biased;
                        Some(answered) = running.next(), if !running.is_empty() => {
                            let _ = replies.send(Ok(answered));
                        }
                        permit = in_flight.clone().acquire_owned() => break permit,
                        () = reader_closing.wait() => break 'read,
                    }
                };
                let Ok(permit) = permit else { break 'read };
                // Most reads answer at their first poll: answered here, they cost no task
                // and no wake-up of another worker thread.
                let mut running_call = Box::pin(answer(call));
                let mut first_poll = Context::from_waker(Waker::noop());
                if let Poll::Ready(reply) = running_call.as_mut().poll(&mut first_poll) {
                    let _ = replies.send(Ok((reply, permit)));
                    continue;
                }
                running.push(async move { (running_call.await, permit) });
            }
        }
        // The client's side is released now, so that a server's graceful shutdown never
        // waits on it. Calls already read finish even once nobody reads their replies: a
        // write that was submitted runs to its end, as it would had the connection dropped.
        drop(inbound);
        while let Some(answered) = running.next().await {
            let _ = replies.send(Ok(answered));
        }
    });
    let state = Outbound {
        queued,
        closing,
        error: None,
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut out| async move {
        if out.ended {
            return None;
        }
        let first = match out.error.take() {
            Some(status) => Err(status),
            None => tokio::select! {
                reply = out.queued.recv() => reply?,
                () = out.closing.wait() => return None,
            },
        };
        // A reply's permit is released once the reply is in a message handed to the transport.
        let mut replies = match first {
            Ok((reply, _permit)) => vec![reply],
            Err(status) => {
                out.ended = true;
                return Some((Err(status), out));
            }
        };
        let mut bytes = B::size(&replies[0]);
        while replies.len() < MAX_REPLIES_PER_MESSAGE && bytes < MESSAGE_BUDGET_BYTES {
            match out.queued.try_recv() {
                Ok(Ok((reply, _permit))) => {
                    bytes += B::size(&reply);
                    replies.push(reply);
                }
                // Ends the stream at the next poll, after these replies.
                Ok(Err(status)) => {
                    out.error = Some(status);
                    break;
                }
                Err(_) => break,
            }
        }
        Some((Ok(B::of(replies)), out))
    }))
}

/// A finished call's reply, holding its place among the stream's calls in flight.
type Answered<R> = (R, OwnedSemaphorePermit);

/// The response side of one call stream.
struct Outbound<R> {
    queued: mpsc::UnboundedReceiver<Result<Answered<R>, Status>>,
    closing: Closing,
    /// Why the stream ends, once the replies queued before it are sent.
    error: Option<Status>,
    ended: bool,
}

/// The status that ends a call stream whose next client message could not be read.
fn unreadable(status: &Status) -> Status {
    Status::from(KvError::InvalidArgument(format!(
        "call stream message could not be read, so it and every later call go unanswered: {}",
        status.message()
    )))
}

/// Packs the outcome of the call `id`.
pub fn reply(id: u64, outcome: Result<pb::reply::Result, KvError>) -> pb::Reply {
    pb::Reply {
        id,
        result: Some(outcome.unwrap_or_else(|e| pb::reply::Result::Error(to_call_error(e)))),
    }
}

#[cfg(test)]
mod tests;
