//! The serving side: one gRPC service per process that hands each incoming
//! Raft message to the group it names.

use std::sync::Arc;

use openraft::Raft;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest, VoteResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, Streaming};

use super::error::DispatchError;
use super::router::RaftRouter;
use super::{MAX_MESSAGE_SIZE, TransportTypeConfig};
use crate::call_stream::{self, Closing, ReplyBatch, ReplyStream};
use crate::proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use crate::proto::v1::{
    QuiesceReply, QuiesceRequest, RaftCall, RaftCallReplies, RaftCallReply, RaftCalls, RaftReply,
    RaftRequest,
};
use crate::raft::codec;
use crate::raft::quiesce::{self, QuiesceTokens};

/// The `RaftTransport` gRPC service: decodes the message, finds the group in
/// its [`RaftRouter`], calls that group's [`Raft`] and encodes the outcome.
///
/// A message for a group the router does not know is refused with
/// `NOT_FOUND`; the sender backs off and retries, which covers a replica that
/// has not been created yet on this node.
#[derive(Debug, Clone)]
pub struct RaftTransportService<C: TransportTypeConfig> {
    router: RaftRouter<C>,
    closing: Closing,
    /// Whether `ClientWrite` is served (see [`Self::with_forwarded_writes`]).
    forwarded_writes: bool,
    /// Where `Quiesce` messages leave their tokens; `None`: not served.
    quiesce: Option<Arc<QuiesceTokens>>,
}

impl<C: TransportTypeConfig> RaftTransportService<C> {
    /// A service dispatching to the groups in `router`.
    pub fn new(router: RaftRouter<C>) -> Self {
        Self {
            router,
            closing: Closing::never(),
            forwarded_writes: false,
            quiesce: None,
        }
    }

    /// Serves `ClientWrite`: other members may hand this process's groups a client write
    /// when they are not the leader (see [`super::forward`]). Only for groups whose every
    /// command is safe to take from a peer as it is: the coordinator's. Storage nodes leave it
    /// off, so their groups take writes only through the KV service and its checks.
    pub fn with_forwarded_writes(mut self) -> Self {
        self.forwarded_writes = true;
        self
    }

    /// Serves `Quiesce`, leaving the tokens in `tokens` for this process's
    /// [`Quiescer`](crate::raft::quiesce::Quiescer).
    pub fn with_quiescence(mut self, tokens: Arc<QuiesceTokens>) -> Self {
        self.quiesce = Some(tokens);
        self
    }

    /// Ends the service's AppendEntries streams when `closing` closes. A server that shuts
    /// down gracefully needs this: its peers keep their streams open as long as they run.
    pub fn with_closing(mut self, closing: Closing) -> Self {
        self.closing = closing;
        self
    }

    /// The tonic server for this service, accepting messages up to
    /// [`MAX_MESSAGE_SIZE`] so that snapshot chunks and large batches fit.
    pub fn into_server(self) -> RaftTransportServer<Self> {
        RaftTransportServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The target group's Raft and the decoded message.
    fn open<T: DeserializeOwned>(
        &self,
        request: RaftRequest,
    ) -> Result<(u64, Raft<C>, T), DispatchError> {
        let RaftRequest { group, payload } = request;
        let raft = self.router.get(group).ok_or_else(|| {
            tracing::debug!(group, "raft message for a group this node does not host");
            DispatchError::UnknownGroup { group }
        })?;
        let message = codec::decode(&payload)
            .map_err(|source| DispatchError::BadRequest { group, source })?;
        Ok((group, raft, message))
    }

    /// Hands one AppendEntries to its group.
    async fn append(&self, request: RaftRequest) -> Result<RaftReply, DispatchError> {
        let (group, raft, rpc) = self.open::<AppendEntriesRequest<C>>(request)?;
        reply(group, raft.append_entries(rpc).await)
    }

    /// Answers one call of an AppendEntries stream.
    async fn answer(&self, call: RaftCall) -> RaftCallReply {
        let outcome = match call.request {
            Some(request) => self.append(request).await.map_err(Status::from),
            None => Err(Status::invalid_argument("a raft call without a request")),
        };
        match outcome {
            Ok(reply) => RaftCallReply {
                id: call.id,
                reply: Some(reply),
                ..Default::default()
            },
            Err(status) => RaftCallReply {
                id: call.id,
                reply: None,
                code: status.code() as i32,
                message: status.message().to_owned(),
            },
        }
    }
}

impl ReplyBatch for RaftCallReplies {
    type Reply = RaftCallReply;

    fn of(replies: Vec<RaftCallReply>) -> Self {
        RaftCallReplies { replies }
    }

    fn size(reply: &RaftCallReply) -> usize {
        prost::Message::encoded_len(reply)
    }
}

/// Encodes what the group's Raft returned: the response, or its error.
fn reply<T: Serialize, E: Serialize>(
    group: u64,
    outcome: Result<T, E>,
) -> Result<RaftReply, DispatchError> {
    let encoded = match &outcome {
        Ok(response) => codec::encode(response).map(|payload| RaftReply {
            payload: payload.into(),
            error: Default::default(),
        }),
        Err(error) => codec::encode(error).map(|error| RaftReply {
            payload: Default::default(),
            error: error.into(),
        }),
    };
    encoded.map_err(|source| DispatchError::BadReply { group, source })
}

#[tonic::async_trait]
impl<C: TransportTypeConfig> RaftTransport for RaftTransportService<C> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        Ok(Response::new(self.append(request.into_inner()).await?))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        // A group not open here yet (the node is still opening its replicas at start-up, or
        // learns of the group from the map after its peers) refuses the vote rather than
        // failing the call: a candidate asking early is an ordinary part of a start, not an
        // error, and refusing is what a replica with no say would answer anyway.
        if self.router.get(request.group).is_none() {
            let group = request.group;
            let rpc: VoteRequest<u64> = codec::decode(&request.payload)
                .map_err(|source| DispatchError::BadRequest { group, source })?;
            let refused: Result<VoteResponse<u64>, RaftError<u64>> =
                Ok(VoteResponse::new(rpc.vote, None, false));
            return Ok(Response::new(reply(group, refused)?));
        }
        let (group, raft, rpc) = self.open::<VoteRequest<u64>>(request)?;
        // A replica given back to this node after its removal starts with an empty log; it
        // still refuses candidates older than the log it had (see `LogDb::remove_group`).
        if let Some(floor) = self.router.vote_floor(group)
            && rpc.last_log_id < Some(floor)
        {
            let vote = raft.metrics().borrow().vote;
            let refused: Result<VoteResponse<u64>, RaftError<u64>> =
                Ok(VoteResponse::new(vote, Some(floor), false));
            return Ok(Response::new(reply(group, refused)?));
        }
        Ok(Response::new(reply(group, raft.vote(rpc).await)?))
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let (group, raft, rpc) = self.open::<InstallSnapshotRequest<C>>(request.into_inner())?;
        Ok(Response::new(reply(
            group,
            raft.install_snapshot(rpc).await,
        )?))
    }

    async fn client_write(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        if !self.forwarded_writes {
            return Err(Status::permission_denied(
                "this server takes no forwarded client writes",
            ));
        }
        let (group, raft, data) = self.open::<C::D>(request.into_inner())?;
        Ok(Response::new(reply(group, raft.client_write(data).await)?))
    }

    async fn quiesce(
        &self,
        request: Request<QuiesceRequest>,
    ) -> Result<Response<QuiesceReply>, Status> {
        let Some(tokens) = &self.quiesce else {
            return Err(Status::unimplemented("this server does not quiesce groups"));
        };
        let now = tokio::time::Instant::now();
        Ok(Response::new(quiesce::receive(
            &self.router,
            tokens,
            request.into_inner(),
            now,
        )))
    }

    type AppendEntriesStreamStream = ReplyStream<RaftCallReplies>;

    async fn append_entries_stream(
        &self,
        request: Request<Streaming<RaftCalls>>,
    ) -> Result<Response<Self::AppendEntriesStreamStream>, Status> {
        let service = self.clone();
        Ok(Response::new(call_stream::serve(
            request.into_inner(),
            |message: RaftCalls| message.calls,
            move |call| {
                let service = service.clone();
                async move { service.answer(call).await }
            },
            self.closing.clone(),
        )))
    }
}
