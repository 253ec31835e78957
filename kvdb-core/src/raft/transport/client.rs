//! The sending side: openraft's network for one group, over the shared
//! [`PeerChannels`] pool.
//!
//! AppendEntries travel on the peer's call stream, which every group shares,
//! unless the encoded request exceeds [`STREAM_CALL_MAX_BYTES`]: such large
//! catch-up batches, votes and snapshot chunks are unary calls.
//!
//! Each call is bounded by the `hard_ttl` openraft passes in [`RPCOption`];
//! on unary calls the deadline also travels as the gRPC timeout so the peer
//! stops working on a call nobody waits for (a streamed AppendEntries is short,
//! and its late reply is dropped). Failures are mapped so that openraft reacts well:
//! a peer that is down, or does not host the group yet, is [`Unreachable`]
//! (openraft backs off); an oversized AppendEntries asks for a smaller batch
//! ([`PayloadTooLarge`]); other transport failures, timeouts included, are a
//! [`NetworkError`]; an error returned by the remote Raft is a [`RemoteError`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::AuthChannel;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::channels::{self, AppendLink, PeerChannels};
use super::error::{FailureKind, TransportError};
use super::{MAX_MESSAGE_SIZE, TransportTypeConfig};
use crate::call_link::MAX_CALLS_PER_MESSAGE;
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::proto::v1::{RaftReply, RaftRequest};
use crate::raft::codec;
use crate::raft::lease::LeaseClock;

/// The largest encoded AppendEntries sent on a call stream: a full message of calls this size,
/// with room for framing, stays within [`MAX_MESSAGE_SIZE`].
pub const STREAM_CALL_MAX_BYTES: usize = MAX_MESSAGE_SIZE / MAX_CALLS_PER_MESSAGE - 1024;

/// The error openraft expects from a network call whose remote API error is `E`.
type CallError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// Creates the [`GrpcNetwork`] of one Raft group toward each of its peers.
#[derive(Debug, Clone)]
pub struct GrpcNetworkFactory<C> {
    group: u64,
    peers: PeerChannels,
    lease: Option<Arc<LeaseClock>>,
    _types: PhantomData<fn() -> C>,
}

impl<C: TransportTypeConfig> GrpcNetworkFactory<C> {
    /// The network factory of `group`, sending over the process-wide `peers` pool.
    pub fn new(group: u64, peers: PeerChannels) -> Self {
        Self {
            group,
            peers,
            lease: None,
            _types: PhantomData,
        }
    }

    /// Records every accepted AppendEntries in `lease`, for lease reads.
    pub fn with_lease_clock(mut self, lease: Arc<LeaseClock>) -> Self {
        self.lease = Some(lease);
        self
    }
}

impl<C: TransportTypeConfig> RaftNetworkFactory<C> for GrpcNetworkFactory<C> {
    type Network = GrpcNetwork<C>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> GrpcNetwork<C> {
        let client = self
            .peers
            .peer(&node.addr)
            .map(|peer| (channels::client(peer.channel), peer.link, peer.health));
        GrpcNetwork {
            group: self.group,
            target,
            node: node.clone(),
            client,
            lease: self.lease.clone(),
            _types: PhantomData,
        }
    }
}

/// One Raft group's connection to one peer. An invalid peer address is kept
/// as the error every call reports, as [`Unreachable`].
#[derive(Debug)]
pub struct GrpcNetwork<C> {
    group: u64,
    target: u64,
    node: BasicNode,
    client: Result<
        (
            RaftTransportClient<AuthChannel>,
            AppendLink,
            Arc<channels::PeerHealth>,
        ),
        TransportError,
    >,
    lease: Option<Arc<LeaseClock>>,
    _types: PhantomData<fn() -> C>,
}

/// The three calls of the `RaftTransport` service.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl<C: TransportTypeConfig> GrpcNetwork<C> {
    /// Sends `request` as `rpc` and decodes the reply. `entries` is the AppendEntries batch size
    /// (0 for other calls), halved in the hint when a message was too large.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
        entries: u64,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let (client, link, health) = match &mut self.client {
            Ok((client, link, health)) => (client, &*link, &*health),
            Err(invalid_address) => return Err(Unreachable::new(invalid_address).into()),
        };
        let call = Call {
            group: self.group,
            addr: &self.node.addr,
            timeout: option.hard_ttl(),
        };
        let exchanged = call.exchange(client, link, rpc, request).await;
        match &exchanged {
            Err(err) if err.is_unreachable_peer() => health.unreachable(err),
            _ => health.reached(),
        }
        let decoded = match exchanged {
            Ok(reply) if reply.error.is_empty() => call.decode(&reply.payload).map(Ok),
            Ok(reply) => call.decode(&reply.error).map(Err),
            Err(err) => Err(err),
        };
        match decoded {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => {
                Err(RemoteError::new_with_node(self.target, self.node.clone(), remote).into())
            }
            Err(err) => {
                tracing::debug!(error = %err, target = self.target, "raft transport call failed");
                Err(into_rpc_error(&err, entries))
            }
        }
    }
}

/// The fixed parts of one call, for error reports.
struct Call<'a> {
    group: u64,
    addr: &'a str,
    timeout: Duration,
}

impl Call<'_> {
    /// Encodes `request`, sends it and waits at most `timeout` for the reply.
    async fn exchange<Req: Serialize>(
        &self,
        client: &mut RaftTransportClient<AuthChannel>,
        link: &AppendLink,
        rpc: Rpc,
        request: &Req,
    ) -> Result<RaftReply, TransportError> {
        let payload = codec::encode(request).map_err(|source| self.codec_error(source))?;
        let streamed = matches!(rpc, Rpc::AppendEntries) && payload.len() <= STREAM_CALL_MAX_BYTES;
        let request = RaftRequest {
            group: self.group,
            payload: payload.into(),
        };
        let reply = async {
            if streamed {
                return streamed_reply(link.call(request).await?);
            }
            let mut request = tonic::Request::new(request);
            request.set_timeout(self.timeout);
            let reply = match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
            };
            reply.map(tonic::Response::into_inner)
        };
        match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(status)) => Err(TransportError::Rpc {
                group: self.group,
                addr: self.addr.to_owned(),
                status,
            }),
            Err(_elapsed) => Err(TransportError::Timeout {
                group: self.group,
                addr: self.addr.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, TransportError> {
        codec::decode(bytes).map_err(|source| self.codec_error(source))
    }

    fn codec_error(&self, source: codec::CodecError) -> TransportError {
        TransportError::Codec {
            group: self.group,
            addr: self.addr.to_owned(),
            source,
        }
    }
}

/// The reply of a streamed call, or the status the unary call would have failed with.
fn streamed_reply(reply: crate::proto::v1::RaftCallReply) -> Result<RaftReply, tonic::Status> {
    if reply.code != 0 {
        return Err(tonic::Status::new(reply.code.into(), reply.message));
    }
    reply
        .reply
        .ok_or_else(|| tonic::Status::internal("the peer sent a raft reply without a result"))
}

/// Maps a transport failure to the [`RPCError`] variant openraft reacts to best.
fn into_rpc_error<E: std::error::Error>(err: &TransportError, entries: u64) -> CallError<E> {
    match err.kind() {
        FailureKind::Unreachable => Unreachable::new(err).into(),
        FailureKind::TooLarge if entries > 1 => PayloadTooLarge::new_entries_hint(entries / 2)
            .with_source_error(err)
            .into(),
        FailureKind::TooLarge | FailureKind::Network => NetworkError::new(err).into(),
    }
}

impl<C: TransportTypeConfig> RaftNetwork<C> for GrpcNetwork<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, CallError> {
        let entries = rpc.entries.len() as u64;
        let (vote, sent) = (rpc.vote, Instant::now());
        let response = self
            .call(Rpc::AppendEntries, &rpc, &option, entries)
            .await?;
        if let Some(lease) = &self.lease
            && !matches!(response, AppendEntriesResponse::HigherVote(_))
        {
            lease.accepted(self.target, vote, sent);
        }
        Ok(response)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, CallError> {
        self.call(Rpc::Vote, &rpc, &option, 0).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, CallError<InstallSnapshotError>> {
        self.call(Rpc::InstallSnapshot, &rpc, &option, 0).await
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    fn rpc_failure(code: Code) -> TransportError {
        TransportError::Rpc {
            group: 1,
            addr: "127.0.0.1:1".to_owned(),
            status: Status::new(code, "test"),
        }
    }

    #[test]
    fn oversized_batch_asks_for_half_as_many_entries() {
        let err: CallError = into_rpc_error(&rpc_failure(Code::OutOfRange), 10);
        let RPCError::PayloadTooLarge(too_large) = err else {
            panic!("expected PayloadTooLarge, got {err:?}");
        };
        assert_eq!(too_large.entries_hint(), 5);
    }

    #[test]
    fn oversized_single_message_is_a_network_error() {
        let err: CallError = into_rpc_error(&rpc_failure(Code::OutOfRange), 1);
        assert!(matches!(err, RPCError::Network(_)), "{err:?}");
    }

    #[test]
    fn unavailable_peer_is_unreachable() {
        let err: CallError = into_rpc_error(&rpc_failure(Code::Unavailable), 0);
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    }
}
