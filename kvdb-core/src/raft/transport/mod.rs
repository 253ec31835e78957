//! The Raft transport: how every openraft group in a KvDB process talks to its
//! peers, over the `RaftTransport` gRPC service of `kvdb.v1`.
//!
//! A storage node hosts many groups (one per shard replica, plus group 0 on a
//! coordinator) but keeps a single HTTP/2 connection per peer process: the
//! [`PeerChannels`] pool is shared by every group's [`GrpcNetworkFactory`],
//! and each request names its group. On the receiving side one
//! [`RaftTransportService`] looks the group up in a [`RaftRouter`] and hands
//! the message to that group's [`openraft::Raft`].
//!
//! # Wire format
//! A `RaftRequest` carries the group id and the [`codec`](super::codec)-encoded
//! openraft request. AppendEntries normally travel on one call stream per
//! peer (`AppendEntriesStream`, see [`crate::call_link`]), each as a
//! `RaftCall` whose `RaftCallReply` carries the reply, or the status the
//! unary call would have failed with; large ones, votes and snapshot chunks
//! are unary calls. A `RaftReply` carries either the encoded response in
//! `payload`, or, when the remote Raft refused the call, the encoded error in
//! `error` (`RaftError<u64>`, or `RaftError<u64, InstallSnapshotError>` for
//! InstallSnapshot).
//! Failures of the transport itself are gRPC statuses; an unknown group is
//! `NOT_FOUND`, which the sender treats as an unreachable peer and backs off.
//!
//! # Out of scope
//! - TLS and peer authentication: the transport trusts the network it runs on.
//! - Streaming snapshots: snapshots travel as openraft's chunked
//!   InstallSnapshot calls, each chunk bounded by [`MAX_MESSAGE_SIZE`].
//! - Evicting idle peers: [`PeerChannels::remove`] is left to the owner, who
//!   knows when a node leaves the cluster.
//!
//! # Layout
//! - `channels`: [`PeerChannels`], the process-wide pool of lazy connections.
//! - `client`: [`GrpcNetworkFactory`] and [`GrpcNetwork`], openraft's network
//!   for one group.
//! - `router`: [`RaftRouter`], the group id -> `Raft` registry.
//! - `service`: [`RaftTransportService`], the gRPC server dispatching to groups.
//! - `error`: [`TransportError`] (sending side) and [`DispatchError`] (serving side).
//! - [`forward`]: a member's client write forwarded to its group's leader (`ClientWrite`).

mod channels;
mod client;
mod error;
pub mod forward;
mod router;
mod service;

#[cfg(test)]
mod tests;

use std::io::Cursor;

use openraft::impls::OneshotResponder;
use openraft::{BasicNode, Entry, RaftTypeConfig};

pub use channels::{
    AppendLink, AppendStream, PEER_DOWN_GRACE, Peer, PeerChannels, PeerChannelsConfig, PeerHealth,
};
pub use client::{GrpcNetwork, GrpcNetworkFactory, STREAM_CALL_MAX_BYTES};
pub use error::{DispatchError, TransportError};
pub use router::RaftRouter;
pub use service::RaftTransportService;

/// The largest gRPC message the transport sends or accepts, in bytes: room
/// for a large AppendEntries batch or a snapshot chunk.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The openraft type configurations the transport carries: `u64` node ids,
/// [`BasicNode`] (whose `addr` is the peer's `host:port`), openraft's own log
/// entry, in-memory snapshot data sent in chunks, and openraft's default
/// responder (so a forwarded write can be awaited).
///
/// Implemented for every matching [`RaftTypeConfig`]; never implement it by hand.
pub trait TransportTypeConfig:
    RaftTypeConfig<
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<Self>,
        SnapshotData = Cursor<Vec<u8>>,
        Responder = OneshotResponder<Self>,
    >
{
}

impl<C> TransportTypeConfig for C where
    C: RaftTypeConfig<
            NodeId = u64,
            Node = BasicNode,
            Entry = Entry<C>,
            SnapshotData = Cursor<Vec<u8>>,
            Responder = OneshotResponder<C>,
        >
{
}
