//! Requests that tonic refuses before any KvDB code runs: a message over the server's size
//! limit (tonic answers `OUT_OF_RANGE`) or bytes that are not the request's protobuf
//! (`INTERNAL`). Both are the caller's mistake, so [`UndecodableLayer`] answers them as KvDB
//! answers any other bad input: `INVALID_ARGUMENT` with `x-kvdb-error: INVALID_ARGUMENT`,
//! keeping tonic's message. A client then fails at once instead of retrying, and sees one
//! code for bad input whatever refused it.
//!
//! The status is looked for where tonic puts it, in the headers of a trailers-only answer or
//! in the trailers; only statuses without an `x-kvdb-error` and with tonic's own decode
//! messages are rewritten, so a status that KvDB code made never is.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::TryFutureExt;
use futures::future::MapOk;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::ERROR_KIND;

/// tonic's message for a request over the decoding limit (`OUT_OF_RANGE`).
const TOO_LARGE: &[u8] = b"Error, decoded message length too large";
/// prost's message for bytes that do not decode (tonic answers `INTERNAL`).
const NOT_PROTOBUF: &[u8] = b"failed to decode Protobuf message";

/// Whether a status of `code` with `message` is tonic refusing to decode a request.
pub fn refused_by_decoder(code: Option<i32>, message: &[u8]) -> bool {
    match code {
        Some(11) => message.starts_with(TOO_LARGE),
        Some(13) => message.starts_with(NOT_PROTOBUF),
        _ => false,
    }
}

/// Rewrites tonic's decode refusals as `INVALID_ARGUMENT` (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct UndecodableLayer;

impl<S> Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;

    fn layer(&self, inner: S) -> Undecodable<S> {
        Undecodable(inner)
    }
}

/// The service of [`UndecodableLayer`].
#[derive(Debug, Clone)]
pub struct Undecodable<S>(S);

impl<S, B, R> Service<Request<B>> for Undecodable<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<Checked<R>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<R>) -> Response<Checked<R>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let map: fn(Response<R>) -> Response<Checked<R>> =
            if request.uri().path().starts_with(RAFT_TRANSPORT) {
                keep::<R>
            } else {
                rewrite::<R>
            };
        self.0.call(request).map_ok(map)
    }
}

/// The Raft transport's path prefix. Its senders read tonic's `OUT_OF_RANGE` as "send fewer
/// entries" (see `crate::raft::transport`), so its statuses are never rewritten.
const RAFT_TRANSPORT: &str = "/kvdb.v1.RaftTransport/";

fn rewrite<R>(mut response: Response<R>) -> Response<Checked<R>> {
    rewrite_status(response.headers_mut());
    response.map(|body| Checked(body, true))
}

fn keep<R>(response: Response<R>) -> Response<Checked<R>> {
    response.map(|body| Checked(body, false))
}

/// A response body whose trailers are rewritten like the headers of a trailers-only answer
/// (when its flag says so).
#[derive(Debug)]
pub struct Checked<B>(B, bool);

impl<B: Body + Unpin> Body for Checked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.0).poll_frame(cx);
        let Poll::Ready(Some(Ok(mut frame))) = polled else {
            return polled;
        };
        if let Some(trailers) = frame.trailers_mut()
            && self.1
        {
            rewrite_status(trailers);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Makes the gRPC status in `headers` (or trailers) `INVALID_ARGUMENT` if it is one of
/// tonic's decode refusals.
fn rewrite_status(headers: &mut HeaderMap) {
    if headers.contains_key(ERROR_KIND) {
        return;
    }
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decoded(m.as_bytes()))
        .unwrap_or_default();
    if refused_by_decoder(code, &message) {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
        headers.insert(ERROR_KIND, HeaderValue::from_static("INVALID_ARGUMENT"));
    }
}

/// `grpc-message` as sent: percent-encoded (spaces included).
fn percent_decoded(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    while let Some((&first, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (first, hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                rest = &tail[2..];
            }
            _ => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_decode_refusals_are_bad_input() {
        let too_large =
            b"Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes";
        assert!(refused_by_decoder(Some(11), too_large));
        assert!(refused_by_decoder(
            Some(13),
            b"failed to decode Protobuf message: invalid wire type"
        ));
        // The same messages under other codes, and other messages under these codes.
        assert!(!refused_by_decoder(Some(13), too_large));
        assert!(!refused_by_decoder(
            Some(11),
            b"a range error of KvDB's own"
        ));
        assert!(!refused_by_decoder(Some(13), b"storage failed"));
        assert!(!refused_by_decoder(None, too_large));
    }

    /// Answers every request with tonic's too-large refusal, trailers-only.
    struct TooLarge;

    impl Service<Request<()>> for TooLarge {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<()>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let response = Response::builder()
                .header("grpc-status", "11")
                .header(
                    "grpc-message",
                    "Error,%20decoded%20message%20length%20too%20large",
                )
                .body(())
                .unwrap();
            std::future::ready(Ok(response))
        }
    }

    #[tokio::test]
    async fn the_raft_transport_keeps_out_of_range_so_its_senders_shrink_their_batches() {
        let mut service = UndecodableLayer.layer(TooLarge);
        let mut status = |path: &'static str| {
            let request = Request::builder().uri(path).body(()).unwrap();
            let answer = service.call(request);
            async move { answer.await.unwrap().headers()["grpc-status"].clone() }
        };
        assert_eq!(status("/kvdb.v1.RaftTransport/AppendEntries").await, "11");
        assert_eq!(status("/kvdb.v1.KvNode/Put").await, "3");
    }

    #[test]
    fn messages_are_percent_decoded() {
        assert_eq!(percent_decoded(b"a%20b%2"), b"a b%2");
        assert_eq!(percent_decoded(b"100%25%zz"), b"100%%zz");
    }

    #[test]
    fn a_refusal_becomes_invalid_argument_and_others_pass_unchanged() {
        let answer = |status: &str, message: &str, kind: Option<&str>| {
            let mut builder = Response::builder()
                .header("grpc-status", status)
                .header("grpc-message", message);
            if let Some(kind) = kind {
                builder = builder.header(ERROR_KIND, kind);
            }
            rewrite(builder.body(()).unwrap())
        };
        let rewritten = answer(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20buffer%20underflow",
            None,
        );
        assert_eq!(rewritten.headers()["grpc-status"], "3");
        assert_eq!(rewritten.headers()[ERROR_KIND], "INVALID_ARGUMENT");
        let ours = answer(
            "13",
            "failed%20to%20decode%20Protobuf%20message",
            Some("INTERNAL"),
        );
        assert_eq!(ours.headers()["grpc-status"], "13");
        let other = answer("14", "unavailable", None);
        assert_eq!(other.headers()["grpc-status"], "14");
        assert!(!other.headers().contains_key(ERROR_KIND));
    }
}
