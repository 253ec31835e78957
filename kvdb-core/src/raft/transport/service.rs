//! The serving side: one gRPC service per process that hands each incoming
//! Raft message to the group it names.

use openraft::Raft;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::error::DispatchError;
use super::router::RaftRouter;
use super::{MAX_MESSAGE_SIZE, TransportTypeConfig};
use crate::proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use crate::proto::v1::{RaftReply, RaftRequest};
use crate::raft::codec;

/// The `RaftTransport` gRPC service: decodes the message, finds the group in
/// its [`RaftRouter`], calls that group's [`Raft`] and encodes the outcome.
///
/// A message for a group the router does not know is refused with
/// `NOT_FOUND`; the sender backs off and retries, which covers a replica that
/// has not been created yet on this node.
#[derive(Debug, Clone)]
pub struct RaftTransportService<C: TransportTypeConfig> {
    router: RaftRouter<C>,
}

impl<C: TransportTypeConfig> RaftTransportService<C> {
    /// A service dispatching to the groups in `router`.
    pub fn new(router: RaftRouter<C>) -> Self {
        Self { router }
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
        request: Request<RaftRequest>,
    ) -> Result<(u64, Raft<C>, T), DispatchError> {
        let RaftRequest { group, payload } = request.into_inner();
        let raft = self.router.get(group).ok_or_else(|| {
            tracing::debug!(group, "raft message for a group this node does not host");
            DispatchError::UnknownGroup { group }
        })?;
        let message = codec::decode(&payload)
            .map_err(|source| DispatchError::BadRequest { group, source })?;
        Ok((group, raft, message))
    }
}

/// Encodes what the group's Raft returned: the response, or its error.
fn reply<T: Serialize, E: Serialize>(
    group: u64,
    outcome: Result<T, E>,
) -> Result<Response<RaftReply>, Status> {
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
    let reply = encoded.map_err(|source| DispatchError::BadReply { group, source })?;
    Ok(Response::new(reply))
}

#[tonic::async_trait]
impl<C: TransportTypeConfig> RaftTransport for RaftTransportService<C> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let (group, raft, rpc) = self.open::<AppendEntriesRequest<C>>(request)?;
        reply(group, raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (group, raft, rpc) = self.open::<VoteRequest<u64>>(request)?;
        reply(group, raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let (group, raft, rpc) = self.open::<InstallSnapshotRequest<C>>(request)?;
        reply(group, raft.install_snapshot(rpc).await)
    }
}
