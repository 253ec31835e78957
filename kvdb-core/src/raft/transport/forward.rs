//! Forwarding a client write to the group's leader over the transport's `ClientWrite` call:
//! the one path by which a member that is not the leader gets a command applied. The command
//! travels encoded as it would in the log, and the leader's own openraft outcome comes back,
//! so the forwarding member returns exactly what a local `client_write` on the leader would.
//!
//! The receiving member calls `client_write` on its group and never forwards again: if it
//! lost the leadership meanwhile, the caller gets `ForwardToLeader` and decides.

use std::time::Duration;

use crate::auth::AuthChannel;
use openraft::BasicNode;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;

use super::{MAX_MESSAGE_SIZE, TransportTypeConfig};
use crate::proto::v1::RaftRequest;
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::raft::codec::{self, CodecError};

/// The error openraft's `client_write` returns.
pub type WriteError = RaftError<u64, ClientWriteError<u64, BasicNode>>;

/// Why a forwarded write has no outcome from the leader's Raft.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The leader's Raft refused the write (it is no longer the leader, or it stopped).
    #[error("the leader refused the forwarded write: {0}")]
    Refused(Box<WriteError>),
    /// The call failed: the leader is unreachable, timed out, or does not serve forwarded
    /// writes. The write may or may not have been applied.
    #[error("forwarding the write failed: {0}")]
    Call(#[from] tonic::Status),
    /// A message did not encode or decode.
    #[error("forwarded write: {0}")]
    Codec(#[from] CodecError),
}

/// Sends `data` to group `group`'s Raft behind `channel` as a client write, waiting at most
/// `timeout`, and returns the leader's response.
pub async fn client_write<C: TransportTypeConfig>(
    channel: AuthChannel,
    group: u64,
    data: &C::D,
    timeout: Duration,
) -> Result<ClientWriteResponse<C>, ForwardError> {
    let mut client = RaftTransportClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let mut request = tonic::Request::new(RaftRequest {
        group,
        payload: codec::encode(data)?.into(),
    });
    request.set_timeout(timeout);
    let reply = client.client_write(request).await?.into_inner();
    if reply.error.is_empty() {
        Ok(codec::decode(&reply.payload)?)
    } else {
        Err(ForwardError::Refused(Box::new(codec::decode(
            &reply.error,
        )?)))
    }
}
