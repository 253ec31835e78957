//! Call streams against clients that misbehave: one that sends a message that is not protobuf
//! (the calls before it are answered, and the stream ends with `INVALID_ARGUMENT` rather than
//! `OK`), and one that sends far more calls than the stream runs at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status, Streaming};

use super::{Closing, MAX_CALLS_IN_FLIGHT, RepliesStream, reply, serve};
use crate::proto::v1 as pb;
use crate::proto::v1::kv_node_server::{KvNode, KvNodeServer};
use crate::status::ERROR_KIND;

/// A node whose only working RPC is `Calls`, served by [`serve`] with `answer`, its streams
/// ending when the [`Closing`] closes.
struct CallsOnly<F>(F, Closing);

#[tonic::async_trait]
impl<F, Fut> KvNode for CallsOnly<F>
where
    F: Fn(pb::NodeCall) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = pb::Reply> + Send + 'static,
{
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

    type CallsStream = RepliesStream;

    async fn calls(
        &self,
        request: Request<Streaming<pb::NodeCalls>>,
    ) -> Result<Response<RepliesStream>, Status> {
        let calls_of = |message: pb::NodeCalls| message.calls;
        Ok(Response::new(serve(
            request.into_inner(),
            calls_of,
            self.0.clone(),
            self.1.clone(),
        )))
    }
}

/// Answers a get with its key as the value.
async fn echo(call: pb::NodeCall) -> pb::Reply {
    let key = match call.op {
        Some(pb::node_call::Op::Get(get)) => get.request.map(|r| r.key).unwrap_or_default(),
        _ => Default::default(),
    };
    let found = pb::GetResponse {
        found: true,
        value: key,
        ..Default::default()
    };
    reply(call.id, Ok(pb::reply::Result::Get(found)))
}

/// Serves `node` on an ephemeral loopback port and connects a raw client to it.
async fn start<F, Fut>(node: CallsOnly<F>) -> tonic::client::Grpc<tonic::transport::Channel>
where
    F: Fn(pb::NodeCall) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = pb::Reply> + Send + 'static,
{
    start_until(node, std::future::pending()).await.0
}

/// [`start`], for a server that shuts down gracefully once `shutdown` completes; the handle
/// finishes when it has.
async fn start_until<F, Fut>(
    node: CallsOnly<F>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    tonic::client::Grpc<tonic::transport::Channel>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
)
where
    F: Fn(pb::NodeCall) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = pb::Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(
        Server::builder()
            .add_service(KvNodeServer::new(node))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown),
    );
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    (grpc, server)
}

const CALLS_PATH: &str = "/kvdb.v1.KvNode/Calls";

/// Sends pre-encoded messages as they are, and decodes replies.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RepliesDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::Replies;
    type Encoder = RawEncoder;
    type Decoder = RepliesDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RepliesDecoder {
        RepliesDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RepliesDecoder {
    type Item = pb::Replies;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::Replies>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        pb::Replies::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn get_call(id: u64, key: &str) -> Vec<u8> {
    let call = pb::NodeCall {
        id,
        op: Some(pb::node_call::Op::Get(pb::NodeGetRequest {
            target: None,
            request: Some(pb::GetRequest {
                key: key.as_bytes().to_vec().into(),
                consistency: pb::Consistency::Strong as i32,
                hash_fields: None,
                hash_page: None,
            }),
        })),
    };
    pb::NodeCalls { calls: vec![call] }.encode_to_vec()
}

#[tokio::test]
async fn an_unreadable_message_ends_the_stream_with_invalid_argument() {
    let mut grpc = start(CallsOnly(echo, Closing::never())).await;
    // A valid message, then bytes that are not protobuf (a field tag with wire type 7), then
    // a valid message that must go unanswered.
    let garbage = vec![0x0f, 0xff, 0xff, 0xff];
    let outbound = futures::stream::iter([get_call(1, "a"), garbage, get_call(2, "b")]);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(CALLS_PATH);
    let response = grpc
        .streaming(Request::new(outbound), path, RawCodec)
        .await
        .unwrap();
    let mut inbound: Pin<Box<Streaming<pb::Replies>>> = Box::pin(response.into_inner());
    let mut answered = Vec::new();
    let ending = loop {
        match inbound.next().await {
            Some(Ok(message)) => answered.extend(message.replies.iter().map(|r| r.id)),
            Some(Err(status)) => break status,
            None => panic!("the stream ended with OK after answering {answered:?}"),
        }
    };
    assert_eq!(answered, [1]);
    assert_eq!(ending.code(), Code::InvalidArgument, "{ending:?}");
    assert!(ending.metadata().contains_key(ERROR_KIND), "{ending:?}");
}

#[tokio::test]
async fn a_stream_runs_at_most_its_limit_of_calls_and_takes_more_as_they_finish() {
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    // Every call counts itself, then waits on the gate the test holds.
    let gated = {
        let (started, gate) = (started.clone(), gate.clone());
        move |call: pb::NodeCall| {
            let (started, gate) = (started.clone(), gate.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.expect("the gate stays open").forget();
                reply(
                    call.id,
                    Ok(pb::reply::Result::Get(pb::GetResponse::default())),
                )
            }
        }
    };
    let mut grpc = start(CallsOnly(gated, Closing::never())).await;
    // Three times the limit, in small messages, and never a reply read.
    let total = 3 * MAX_CALLS_IN_FLIGHT;
    let messages = (0..total as u64).map(|id| get_call(id, "k"));
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(CALLS_PATH);
    let _response = grpc
        .streaming(
            Request::new(futures::stream::iter(messages)),
            path,
            RawCodec,
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let wait_for = |count: usize| {
        let started = started.clone();
        async move {
            while started.load(Ordering::SeqCst) < count {
                assert!(
                    std::time::Instant::now() < deadline,
                    "only {started:?} calls started"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    wait_for(MAX_CALLS_IN_FLIGHT).await;
    assert_eq!(started.load(Ordering::SeqCst), MAX_CALLS_IN_FLIGHT);
    // Finishing calls makes room for as many more (their replies go out unread, within
    // HTTP/2's windows).
    gate.add_permits(10);
    wait_for(MAX_CALLS_IN_FLIGHT + 10).await;
    gate.add_permits(total);
    wait_for(total).await;
}

#[tokio::test]
async fn calls_done_at_once_are_answered_while_a_slow_one_waits_and_the_slow_one_finishes() {
    let gate = Arc::new(Semaphore::new(0));
    // A call for key "slow" waits on the gate the test holds; any other is done at once.
    let answer = {
        let gate = gate.clone();
        move |call: pb::NodeCall| {
            let gate = gate.clone();
            async move {
                let Some(pb::node_call::Op::Get(get)) = &call.op else {
                    panic!("a get");
                };
                if get.request.as_ref().is_some_and(|r| &r.key[..] == b"slow") {
                    gate.acquire().await.expect("the gate stays open").forget();
                }
                reply(
                    call.id,
                    Ok(pb::reply::Result::Get(pb::GetResponse::default())),
                )
            }
        }
    };
    let mut grpc = start(CallsOnly(answer, Closing::never())).await;
    let (outbound, calls) = tokio::sync::mpsc::unbounded_channel();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(CALLS_PATH);
    for message in [get_call(1, "slow"), get_call(2, "a"), get_call(3, "b")] {
        outbound.send(message).unwrap();
    }
    let response = grpc
        .streaming(
            Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(calls)),
            path,
            RawCodec,
        )
        .await
        .unwrap();
    let mut inbound: Pin<Box<Streaming<pb::Replies>>> = Box::pin(response.into_inner());
    let mut answered = Vec::new();
    let within = std::time::Duration::from_secs(30);
    while answered.len() < 2 {
        let message = tokio::time::timeout(within, inbound.next())
            .await
            .expect("replies within the deadline")
            .expect("the stream stays open")
            .unwrap();
        answered.extend(message.replies.iter().map(|r| r.id));
    }
    assert_eq!(answered, [2, 3], "the slow call is still waiting");
    gate.add_permits(1);
    let message = tokio::time::timeout(within, inbound.next())
        .await
        .expect("the slow call's reply within the deadline")
        .expect("the stream stays open")
        .unwrap();
    assert_eq!(
        message.replies.iter().map(|r| r.id).collect::<Vec<_>>(),
        [1]
    );
    drop(outbound);
}

#[tokio::test]
async fn a_closing_server_stops_while_a_call_waits_and_the_call_still_runs_to_its_end() {
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let gate = Arc::new(Semaphore::new(0));
    let gated = {
        let (started, finished, gate) = (started.clone(), finished.clone(), gate.clone());
        move |call: pb::NodeCall| {
            let (started, finished, gate) = (started.clone(), finished.clone(), gate.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.expect("the gate stays open").forget();
                finished.fetch_add(1, Ordering::SeqCst);
                reply(
                    call.id,
                    Ok(pb::reply::Result::Get(pb::GetResponse::default())),
                )
            }
        }
    };
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = stopping.clone();
    let (mut grpc, server) = start_until(CallsOnly(gated, Closing::on(stopping)), async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await;
    // The client keeps its side of the stream open throughout.
    let (outbound, calls) = mpsc::unbounded_channel::<Vec<u8>>();
    outbound.send(get_call(1, "waits")).unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(CALLS_PATH);
    let mut inbound = grpc
        .streaming(
            Request::new(UnboundedReceiverStream::new(calls)),
            path,
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never started"
        );
        tokio::task::yield_now().await;
    }

    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("a call that waits does not hold up the server's shutdown")
        .unwrap()
        .unwrap();
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), inbound.message())
        .await
        .expect("the stream ends");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");

    // The call was read before the server closed, so it finishes (a write would commit).
    gate.add_permits(1);
    while finished.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiting call never finished"
        );
        tokio::task::yield_now().await;
    }
    drop(outbound);
}
