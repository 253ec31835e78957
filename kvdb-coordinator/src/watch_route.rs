//! `kvdb.v1.Coordinator/WatchShardMap` as served by [`crate::serve`]: each
//! stream sends the events' shared, pre-built encodings.
//!
//! The generated server encodes every message of every stream on its own,
//! so one change watched by a thousand streams used to be converted to
//! protobuf and encoded a thousand times. This route takes the same
//! requests, follows the same [`Watcher`], and hands tonic the bytes of each
//! [`SharedEvent`], which were encoded once for all streams; tonic adds the
//! gRPC framing. Clients see the same `WatchShardMapEvent` messages.
//!
//! [`crate::serve`] mounts this route on the exact method path, where it takes
//! precedence over the generated service's wildcard route; the generated
//! method ([`CoordinatorService`](crate::CoordinatorService)) stays a correct
//! but per-stream fallback for other ways of serving. Out of scope:
//! compression of watch streams (neither path enables it).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use kvdb_core::MapVersion;
use kvdb_core::proto::v1 as pb;
use prost::Message;
use prost::bytes::BufMut;
use tokio::sync::watch;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, ServerStreamingService};
use tonic::{Request, Response, Status};

use crate::coordinator::Coordinator;
use crate::event::SharedEvent;
use crate::watch::Watcher;

/// The HTTP path of the WatchShardMap method.
pub const WATCH_SHARD_MAP_PATH: &str = "/kvdb.v1.Coordinator/WatchShardMap";

/// The events of one watch, ending when the coordinator stops or `closing`
/// turns true.
pub(crate) fn shared_events(
    watcher: Watcher,
    mut closing: watch::Receiver<bool>,
) -> impl Stream<Item = Arc<SharedEvent>> + Send + 'static {
    let events = futures::stream::unfold(watcher, |mut watcher| async move {
        let event = watcher.next_shared().await?;
        Some((event, watcher))
    });
    let closed = async move {
        let _ = closing.wait_for(|closed| *closed).await;
    };
    events.take_until(closed)
}

/// The stream of one routed watch.
type SharedStream = Pin<Box<dyn Stream<Item = Result<Arc<SharedEvent>, Status>> + Send>>;

/// WatchShardMap over pre-encoded events: a tower service for one route.
#[derive(Debug, Clone)]
pub struct WatchShardMapRoute {
    coordinator: Coordinator,
    closing: watch::Receiver<bool>,
    max_message_size: usize,
}

impl WatchShardMapRoute {
    /// Watches of `coordinator`'s map, ended when `closing` turns true; no
    /// message over `max_message_size` bytes is sent or accepted.
    pub fn new(
        coordinator: Coordinator,
        closing: watch::Receiver<bool>,
        max_message_size: usize,
    ) -> Self {
        Self {
            coordinator,
            closing,
            max_message_size,
        }
    }
}

impl<B> Service<http::Request<B>> for WatchShardMapRoute
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = WatchMethod(self.clone());
        let limit = Some(self.max_message_size);
        Box::pin(async move {
            let mut grpc = Grpc::new(SharedEventCodec).apply_max_message_size_config(limit, limit);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// The method handler tonic calls with the decoded request.
struct WatchMethod(WatchShardMapRoute);

impl ServerStreamingService<pb::WatchShardMapRequest> for WatchMethod {
    type Response = Arc<SharedEvent>;
    type ResponseStream = SharedStream;
    type Future = BoxFuture<Response<SharedStream>, Status>;

    fn call(&mut self, request: Request<pb::WatchShardMapRequest>) -> Self::Future {
        let route = self.0.clone();
        Box::pin(async move {
            let from = MapVersion(request.into_inner().from_version);
            let watcher = route.coordinator.subscribe(from).await;
            let events = shared_events(watcher, route.closing).map(Ok);
            Ok(Response::new(Box::pin(events) as SharedStream))
        })
    }
}

/// Decodes WatchShardMap requests; encodes events by copying their shared
/// encoding.
#[derive(Debug, Clone, Copy, Default)]
struct SharedEventCodec;

impl Codec for SharedEventCodec {
    type Encode = Arc<SharedEvent>;
    type Decode = pb::WatchShardMapRequest;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for SharedEventCodec {
    type Item = Arc<SharedEvent>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let encoded = item.encoded();
        dst.reserve(encoded.len());
        dst.put_slice(encoded);
        Ok(())
    }
}

impl Decoder for SharedEventCodec {
    type Item = pb::WatchShardMapRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        pb::WatchShardMapRequest::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("WatchShardMapRequest: {e}")))
    }
}
