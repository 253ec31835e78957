//! The call streams of the client: one long-lived `Calls` stream to each node and to a
//! gateway, shared by every request the client sends there (the link itself is
//! [`kvdb_core::call_link`]).
//!
//! When the stream fails, every request waiting on it fails with the stream's status, which
//! callers treat as the transport failure it is; the next request opens a new stream. The
//! serving half is `kvdb_core::call_stream`.

use std::sync::Arc;

use kvdb_core::auth::AuthChannel;
use kvdb_core::call_link::{CallLink, CallService};
use kvdb_core::error::KvError;
use kvdb_core::local_node::LocalNode;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_gateway_client::KvGatewayClient;
use kvdb_core::proto::v1::kv_node_client::KvNodeClient;
use kvdb_core::status::{from_call_error, from_status};
use pb::reply::Result as Outcome;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Status, Streaming};

/// The `KvNode.Calls` stream of one storage node.
#[derive(Clone)]
pub struct NodeCalls(KvNodeClient<AuthChannel>);

impl CallService for NodeCalls {
    type Call = pb::node_call::Op;
    type Calls = pb::NodeCalls;
    type Reply = Option<Outcome>;
    type Replies = pb::Replies;

    fn message(calls: Vec<(u64, Self::Call)>) -> pb::NodeCalls {
        let calls = calls
            .into_iter()
            .map(|(id, op)| pb::NodeCall { id, op: Some(op) })
            .collect();
        pb::NodeCalls { calls }
    }

    fn size(call: &pb::node_call::Op) -> usize {
        call.encoded_len()
    }

    fn replies(message: pb::Replies) -> impl Iterator<Item = (u64, Option<Outcome>)> {
        message.replies.into_iter().map(|r| (r.id, r.result))
    }

    async fn open(
        &mut self,
        calls: UnboundedReceiverStream<pb::NodeCalls>,
    ) -> Result<Streaming<pb::Replies>, Status> {
        Ok(self.0.calls(calls).await?.into_inner())
    }
}

/// A gateway call: the operation and its timeout in milliseconds (0: the gateway's default).
pub type GatewayCall = (pb::call::Op, u64);

/// The `KvGateway.Calls` stream of a gateway.
#[derive(Clone)]
pub struct GatewayCalls(KvGatewayClient<AuthChannel>);

impl CallService for GatewayCalls {
    type Call = GatewayCall;
    type Calls = pb::Calls;
    type Reply = Option<Outcome>;
    type Replies = pb::Replies;

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

    fn size((op, _): &GatewayCall) -> usize {
        op.encoded_len() + 16
    }

    fn replies(message: pb::Replies) -> impl Iterator<Item = (u64, Option<Outcome>)> {
        message.replies.into_iter().map(|r| (r.id, r.result))
    }

    async fn open(
        &mut self,
        calls: UnboundedReceiverStream<pb::Calls>,
    ) -> Result<Streaming<pb::Replies>, Status> {
        Ok(self.0.calls(calls).await?.into_inner())
    }
}

/// The call stream to one storage node, or the node itself when it runs in this process;
/// cheap to clone.
#[derive(Clone)]
pub struct NodeLink(Link);

#[derive(Clone)]
enum Link {
    Stream(CallLink<NodeCalls>),
    Local(Arc<dyn LocalNode>),
}

/// The call stream to a gateway; cheap to clone.
#[derive(Clone)]
pub struct GatewayLink(CallLink<GatewayCalls>);

/// Sends `call` on `link`; an error reply becomes the error it encodes.
async fn call<S>(link: &CallLink<S>, call: S::Call) -> Result<Outcome, KvError>
where
    S: CallService<Reply = Option<Outcome>>,
{
    match link.call(call).await {
        Ok(Some(Outcome::Error(err))) => Err(from_call_error(&err)),
        Ok(Some(outcome)) => Ok(outcome),
        Ok(None) => Err(KvError::Internal(
            "the server sent a reply without a result".into(),
        )),
        Err(status) => Err(from_status(&status)),
    }
}

impl NodeLink {
    /// Starts the link to the node behind `client`; the stream opens with the first request.
    pub fn open(client: KvNodeClient<AuthChannel>) -> NodeLink {
        NodeLink(Link::Stream(CallLink::open(NodeCalls(client))))
    }

    /// The link to a node of this process: calls run on its service directly.
    pub fn local(node: Arc<dyn LocalNode>) -> NodeLink {
        NodeLink(Link::Local(node))
    }

    /// Runs `op` on the node; an error reply becomes the error it encodes.
    async fn call(&self, op: pb::node_call::Op) -> Result<Outcome, KvError> {
        match &self.0 {
            Link::Stream(link) => call(link, op).await,
            Link::Local(node) => node.answer(op).await,
        }
    }

    /// A GET on the shared stream. If the stream fails, every call waiting on it fails with
    /// the error its status encodes (usually a retryable [`KvError::Unavailable`]).
    pub async fn get(&self, req: pb::NodeGetRequest) -> Result<pb::GetResponse, KvError> {
        get_reply(self.call(pb::node_call::Op::Get(req)).await?)
    }

    /// A PUT on the shared stream; failures as for [`get`](Self::get).
    pub async fn put(&self, req: pb::NodePutRequest) -> Result<pb::PutResponse, KvError> {
        put_reply(self.call(pb::node_call::Op::Put(req)).await?)
    }

    /// A DELETE on the shared stream; failures as for [`get`](Self::get).
    pub async fn delete(&self, req: pb::NodeDeleteRequest) -> Result<pb::DeleteResponse, KvError> {
        delete_reply(self.call(pb::node_call::Op::Delete(req)).await?)
    }

    /// An UPDATE on the shared stream; failures as for [`get`](Self::get).
    pub async fn update(&self, req: pb::NodeUpdateRequest) -> Result<pb::UpdateResponse, KvError> {
        update_reply(self.call(pb::node_call::Op::Update(req)).await?)
    }

    /// A transaction on the shared stream; failures as for [`get`](Self::get).
    pub async fn txn(&self, req: pb::NodeTxnRequest) -> Result<pb::TxnResponse, KvError> {
        txn_reply(self.call(pb::node_call::Op::Txn(req)).await?)
    }

    /// A page of a scan on the shared stream; failures as for [`get`](Self::get).
    pub async fn scan(&self, req: pb::NodeScanRequest) -> Result<pb::ScanResponse, KvError> {
        scan_reply(self.call(pb::node_call::Op::Scan(req)).await?)
    }
}

impl GatewayLink {
    /// Starts the link to the gateway behind `client`; the stream opens with the first request.
    pub fn open(client: KvGatewayClient<AuthChannel>) -> GatewayLink {
        GatewayLink(CallLink::open(GatewayCalls(client)))
    }

    /// A GET through the gateway, which routes and retries it within `timeout_ms`
    /// (0: the gateway's default; the gateway caps it at its maximum).
    pub async fn get(
        &self,
        req: pb::GetRequest,
        timeout_ms: u64,
    ) -> Result<pb::GetResponse, KvError> {
        get_reply(call(&self.0, (pb::call::Op::Get(req), timeout_ms)).await?)
    }

    /// A PUT through the gateway; `timeout_ms` as for [`get`](Self::get).
    pub async fn put(
        &self,
        req: pb::PutRequest,
        timeout_ms: u64,
    ) -> Result<pb::PutResponse, KvError> {
        put_reply(call(&self.0, (pb::call::Op::Put(req), timeout_ms)).await?)
    }

    /// A DELETE through the gateway; `timeout_ms` as for [`get`](Self::get).
    pub async fn delete(
        &self,
        req: pb::DeleteRequest,
        timeout_ms: u64,
    ) -> Result<pb::DeleteResponse, KvError> {
        delete_reply(call(&self.0, (pb::call::Op::Delete(req), timeout_ms)).await?)
    }

    /// An UPDATE through the gateway; `timeout_ms` as for [`get`](Self::get).
    pub async fn update(
        &self,
        req: pb::UpdateRequest,
        timeout_ms: u64,
    ) -> Result<pb::UpdateResponse, KvError> {
        update_reply(call(&self.0, (pb::call::Op::Update(req), timeout_ms)).await?)
    }

    /// A transaction through the gateway; `timeout_ms` as for [`get`](Self::get).
    pub async fn txn(
        &self,
        req: pb::TxnRequest,
        timeout_ms: u64,
    ) -> Result<pb::TxnResponse, KvError> {
        txn_reply(call(&self.0, (pb::call::Op::Txn(req), timeout_ms)).await?)
    }

    /// A page of a scan through the gateway; `timeout_ms` as for [`get`](Self::get).
    pub async fn scan(
        &self,
        req: pb::ScanRequest,
        timeout_ms: u64,
    ) -> Result<pb::ScanResponse, KvError> {
        scan_reply(call(&self.0, (pb::call::Op::Scan(req), timeout_ms)).await?)
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

fn update_reply(outcome: Outcome) -> Result<pb::UpdateResponse, KvError> {
    match outcome {
        Outcome::Update(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

fn txn_reply(outcome: Outcome) -> Result<pb::TxnResponse, KvError> {
    match outcome {
        Outcome::Txn(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

fn scan_reply(outcome: Outcome) -> Result<pb::ScanResponse, KvError> {
    match outcome {
        Outcome::Scan(reply) => Ok(reply),
        _ => Err(mismatch()),
    }
}

/// A reply of the wrong kind means a broken server.
fn mismatch() -> KvError {
    KvError::Internal("the server answered a call with a reply of another kind".into())
}

#[cfg(test)]
mod tests;
