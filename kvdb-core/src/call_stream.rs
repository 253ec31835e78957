//! The serving half of a call stream (`KvNode.Calls`, `KvGateway.Calls`, and
//! `RaftTransport.AppendEntriesStream` between nodes): any number of operations over one
//! long-lived gRPC stream.
//!
//! One task reads the client's messages and runs each operation as a task of its own, so a
//! read never waits behind a slow write that arrived with it. Finished operations queue their
//! replies, and every poll of the response stream sends all that are queued in one message:
//! operations that finish together share the cost of a write to the connection.
//!
//! Each operation is answered as its unary RPC would be, errors included
//! ([`crate::status::to_call_error`]). The client half is [`crate::call_link`].
//!
//! A server that stops must end its call streams itself ([`Closing`]): tonic's graceful
//! shutdown waits for open streams, and a call stream stays open as long as its client lives.
//! Calls still running then go unanswered, and their client fails them as unavailable, as it
//! would on a lost connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

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
}

impl ReplyBatch for pb::Replies {
    type Reply = pb::Reply;

    fn of(replies: Vec<pb::Reply>) -> Self {
        pb::Replies { replies }
    }
}

/// The most replies one message carries.
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
    let (replies, queued) = mpsc::unbounded_channel::<B::Reply>();
    let mut reader_closing = closing.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = inbound.message() => message,
                () = reader_closing.wait() => return,
            };
            // A read error means the client or its connection is gone: nobody is left to
            // answer.
            let Ok(Some(message)) = message else { return };
            for call in calls_of(message) {
                let answer = answer.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    // Fails only when the response stream is gone with its client.
                    let _ = replies.send(answer(call).await);
                });
            }
        }
    });
    let state = (queued, closing);
    Box::pin(futures::stream::unfold(
        state,
        |(mut queued, mut closing)| async move {
            let first = tokio::select! {
                reply = queued.recv() => reply?,
                () = closing.wait() => return None,
            };
            let mut replies = vec![first];
            while replies.len() < MAX_REPLIES_PER_MESSAGE {
                match queued.try_recv() {
                    Ok(reply) => replies.push(reply),
                    Err(_) => break,
                }
            }
            Some((Ok(B::of(replies)), (queued, closing)))
        },
    ))
}

/// Packs the outcome of the call `id`.
pub fn reply(id: u64, outcome: Result<pb::reply::Result, KvError>) -> pb::Reply {
    pb::Reply {
        id,
        result: Some(outcome.unwrap_or_else(|e| pb::reply::Result::Error(to_call_error(e)))),
    }
}
