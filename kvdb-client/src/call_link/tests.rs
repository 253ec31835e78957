//! [`CallLink`] against a fake node that answers out of order, or drops its first stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::Stream;
use kvdb_core::proto::v1::kv_node_server::{KvNode, KvNodeServer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

use super::*;

/// Answers every get with its own key as the value, the replies of a message in reverse
/// order. With `drop_first`, its first stream answers nothing and ends after one message.
struct FakeNode {
    drop_first: bool,
    opened: Arc<AtomicUsize>,
}

type Replies = Pin<Box<dyn Stream<Item = Result<pb::Replies, Status>> + Send>>;

#[tonic::async_trait]
impl KvNode for FakeNode {
    async fn get(
        &self,
        _: Request<pb::NodeGetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    async fn put(
        &self,
        _: Request<pb::NodePutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    async fn delete(
        &self,
        _: Request<pb::NodeDeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    async fn update(
        &self,
        _: Request<pb::NodeUpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    async fn txn(
        &self,
        _: Request<pb::NodeTxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    async fn scan(
        &self,
        _: Request<pb::NodeScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        Err(Status::unimplemented("calls only"))
    }

    type CallsStream = Replies;

    async fn calls(
        &self,
        request: Request<Streaming<pb::NodeCalls>>,
    ) -> Result<Response<Replies>, Status> {
        let first = self.opened.fetch_add(1, Ordering::SeqCst) == 0;
        let drop_it = first && self.drop_first;
        let mut calls = request.into_inner();
        let (replies, out) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(message)) = calls.message().await {
                if drop_it {
                    return; // ends the response stream with nothing answered
                }
                let answered = message.calls.into_iter().rev().map(|call| {
                    let result = match call.op {
                        Some(pb::node_call::Op::Get(get)) => Outcome::Get(pb::GetResponse {
                            found: true,
                            value: get.request.unwrap().key,
                            version: call.id,
                            ..Default::default()
                        }),
                        // An update answers its key's length as the new integer.
                        Some(pb::node_call::Op::Update(update)) => {
                            let key = update.request.unwrap().key;
                            Outcome::Update(pb::UpdateResponse {
                                applied: true,
                                value: Some(pb::update_response::Value::Integer(key.len() as i64)),
                                ..Default::default()
                            })
                        }
                        _ => panic!("the fake serves gets and updates only"),
                    };
                    pb::Reply {
                        id: call.id,
                        result: Some(result),
                    }
                });
                let message = pb::Replies {
                    replies: answered.collect(),
                };
                if replies.send(Ok(message)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(out))))
    }
}

/// Serves `node` on an ephemeral loopback port until the returned sender is dropped.
async fn serve(node: FakeNode) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(KvNodeServer::new(node))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    (address, stop)
}

fn link_to(address: &str) -> NodeLink {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    NodeLink::open(KvNodeClient::new(
        kvdb_core::auth::Credentials::default().on(channel),
    ))
}

/// A fake node (see [`FakeNode`]) on a loopback port, a link to it, and the count of streams
/// it opened. The node serves until the returned sender is dropped.
async fn start(drop_first: bool) -> (NodeLink, Arc<AtomicUsize>, oneshot::Sender<()>) {
    let opened = Arc::new(AtomicUsize::new(0));
    let node = FakeNode {
        drop_first,
        opened: opened.clone(),
    };
    let (address, stop) = serve(node).await;
    (link_to(&address), opened, stop)
}

fn get(key: String) -> pb::NodeGetRequest {
    pb::NodeGetRequest {
        target: None,
        request: Some(pb::GetRequest {
            key: key.into_bytes().into(),
            consistency: pb::Consistency::Strong as i32,
            hash_fields: None,
            hash_page: None,
        }),
    }
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_reply() {
    let (link, opened, _stop) = start(false).await;
    let calls = (0..200).map(|i| {
        let link = link.clone();
        async move { (i, link.get(get(format!("key-{i}"))).await) }
    });
    for (i, reply) in futures::future::join_all(calls).await {
        let reply = reply.unwrap();
        assert_eq!(reply.value.as_ref(), format!("key-{i}").as_bytes());
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "one stream carried every call"
    );
}

#[tokio::test]
async fn a_lost_stream_fails_its_calls_as_unavailable_and_the_next_call_reopens() {
    let (link, opened, _stop) = start(true).await;
    let lost = tokio::time::timeout(Duration::from_secs(10), link.get(get("lost".into())))
        .await
        .expect("a call on a lost stream fails rather than waits forever")
        .unwrap_err();
    assert!(matches!(lost, KvError::Unavailable(_)), "{lost:?}");
    let reply = link.get(get("after".into())).await.unwrap();
    assert_eq!(reply.value.as_ref(), b"after");
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

/// Calls that together exceed a server's message limit (tonic's default 4 MiB here) go in
/// several messages: a message stops taking calls at the byte budget, not only at a count.
#[tokio::test]
async fn calls_larger_than_a_message_limit_together_are_split_across_messages() {
    let (link, opened, _stop) = start(false).await;
    let big_key = |i: usize| format!("{i:05}-{}", "k".repeat(16 * 1024));
    // 300 calls of 16 KiB: 4.8 MiB, which would be one message at 256 calls per message.
    let calls = (0..300).map(|i| {
        let link = link.clone();
        async move { (i, link.get(get(big_key(i))).await) }
    });
    for (i, reply) in futures::future::join_all(calls).await {
        let reply = reply.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(reply.value.as_ref(), big_key(i).as_bytes());
    }
    assert_eq!(opened.load(Ordering::SeqCst), 1, "no stream failed");
}

#[tokio::test]
async fn an_update_rides_the_stream_and_gets_its_own_reply() {
    let (link, _opened, _stop) = start(false).await;
    let update = pb::NodeUpdateRequest {
        target: None,
        request: Some(pb::UpdateRequest {
            key: b"four".to_vec().into(),
            action: Some(pb::update_request::Action::IncrBy(1)),
            ..Default::default()
        }),
    };
    let (updated, got) = tokio::join!(link.update(update), link.get(get("k".into())));
    let updated = updated.unwrap();
    assert_eq!(updated.value, Some(pb::update_response::Value::Integer(4)));
    assert_eq!(got.unwrap().value.as_ref(), b"k");
}
