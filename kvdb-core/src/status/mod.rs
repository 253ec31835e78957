//! The one mapping of [`KvError`] to and from [`tonic::Status`].
//!
//! A KvDB error crosses the wire as a gRPC status code plus trailers (status
//! metadata) that carry the error kind and the routing hints, so that no
//! caller ever parses a message:
//!
//! | trailer           | value                                              |
//! |-------------------|----------------------------------------------------|
//! | `x-kvdb-error`    | `NOT_LEADER`, `SHARD_MOVED`, `STALE_EPOCH`, `INVALID_ARGUMENT`, `UNAVAILABLE`, `NO_SHARD_MAP`, `DEADLINE_EXCEEDED`, `INTERNAL`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED` |
//! | `x-shard-id`      | the shard of a routing error                       |
//! | `x-leader-hint`   | `NOT_LEADER`: the leader's `host:port`, if known   |
//! | `x-new-node-hint` | `SHARD_MOVED`: a node to try, if known             |
//! | `x-shard-epoch`   | `STALE_EPOCH`: the replica's current epoch         |
//! | `x-request-epoch` | `STALE_EPOCH`: the epoch the request carried       |
//!
//! Routing errors use `FAILED_PRECONDITION`; the other kinds use the code of
//! the same name. A status without `x-kvdb-error` (one tonic made for a
//! transport failure, or one from a foreign server) is classified by its code
//! alone, see [`from_status`].
//!
//! On a call stream (`KvNode.Calls`, `KvGateway.Calls`) each operation's error travels as the same
//! code, message and trailers inside its reply ([`to_call_error`],
//! [`from_call_error`]), so it decodes exactly as the unary RPC's status.
//!
//! Control-plane errors ([`crate::coordinator_error::CoordinatorError`]) travel in the same
//! scheme, with two more `x-kvdb-error` values (`NOT_FOUND`, `CONFLICT`) and their own field
//! trailers: see [`control`].
//!
//! Out of scope: HTTP status codes for the admin API, and structured details
//! (`grpc-status-details-bin`), which KvDB does not use.

pub mod control;
pub mod undecodable;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, KeyAndValueRef, MetadataMap};
use tonic::{Code, Status};

use crate::error::{KvError, RoutingError};
use crate::ids::{Epoch, ShardId};
use crate::proto::v1::CallError;

/// Trailer naming the error kind.
pub const ERROR_KIND: &str = "x-kvdb-error";
/// Trailer with the shard of a routing error.
pub const SHARD_ID: &str = "x-shard-id";
/// Trailer with the leader's `host:port` on `NOT_LEADER`.
pub const LEADER_HINT: &str = "x-leader-hint";
/// Trailer with a node's `host:port` on `SHARD_MOVED`.
pub const NEW_NODE_HINT: &str = "x-new-node-hint";
/// Trailer with the replica's current epoch on `STALE_EPOCH`.
pub const SHARD_EPOCH: &str = "x-shard-epoch";
/// Trailer with the request's epoch on `STALE_EPOCH`.
pub const REQUEST_EPOCH: &str = "x-request-epoch";

/// The values of the [`ERROR_KIND`] trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotLeader,
    ShardMoved,
    StaleEpoch,
    InvalidArgument,
    Unavailable,
    NoShardMap,
    DeadlineExceeded,
    Internal,
    PermissionDenied,
    ResourceExhausted,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::NotLeader,
        Kind::ShardMoved,
        Kind::StaleEpoch,
        Kind::InvalidArgument,
        Kind::Unavailable,
        Kind::NoShardMap,
        Kind::DeadlineExceeded,
        Kind::Internal,
        Kind::PermissionDenied,
        Kind::ResourceExhausted,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Kind::NotLeader => "NOT_LEADER",
            Kind::ShardMoved => "SHARD_MOVED",
            Kind::StaleEpoch => "STALE_EPOCH",
            Kind::InvalidArgument => "INVALID_ARGUMENT",
            Kind::Unavailable => "UNAVAILABLE",
            Kind::NoShardMap => "NO_SHARD_MAP",
            Kind::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Kind::Internal => "INTERNAL",
            Kind::PermissionDenied => "PERMISSION_DENIED",
            Kind::ResourceExhausted => "RESOURCE_EXHAUSTED",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn of(err: &KvError) -> Kind {
        match err {
            KvError::Routing(RoutingError::NotLeader { .. }) => Kind::NotLeader,
            KvError::Routing(RoutingError::ShardMoved { .. }) => Kind::ShardMoved,
            KvError::Routing(RoutingError::StaleEpoch { .. }) => Kind::StaleEpoch,
            KvError::InvalidArgument(_) => Kind::InvalidArgument,
            KvError::Unavailable(_) => Kind::Unavailable,
            KvError::NoShardMap => Kind::NoShardMap,
            KvError::DeadlineExceeded => Kind::DeadlineExceeded,
            KvError::Internal(_) => Kind::Internal,
            KvError::PermissionDenied(_) => Kind::PermissionDenied,
            KvError::ResourceExhausted(_) => Kind::ResourceExhausted,
        }
    }

    fn code(self) -> Code {
        match self {
            Kind::NotLeader | Kind::ShardMoved | Kind::StaleEpoch => Code::FailedPrecondition,
            Kind::InvalidArgument => Code::InvalidArgument,
            Kind::Unavailable | Kind::NoShardMap => Code::Unavailable,
            Kind::DeadlineExceeded => Code::DeadlineExceeded,
            Kind::Internal => Code::Internal,
            Kind::PermissionDenied => Code::PermissionDenied,
            Kind::ResourceExhausted => Code::ResourceExhausted,
        }
    }
}

impl From<KvError> for Status {
    /// Encodes `err` as a status with the trailers above. A hint that is not
    /// a valid header value (not visible ASCII) is left out rather than
    /// failing the whole response; the caller then refreshes its map instead.
    fn from(err: KvError) -> Status {
        let kind = Kind::of(&err);
        let mut md = MetadataMap::new();
        md.insert(ERROR_KIND, AsciiMetadataValue::from_static(kind.as_str()));
        match &err {
            KvError::Routing(RoutingError::NotLeader { shard, leader }) => {
                md.insert(SHARD_ID, shard.0.into());
                insert_hint(&mut md, LEADER_HINT, leader.as_deref());
            }
            KvError::Routing(RoutingError::ShardMoved { shard, to }) => {
                md.insert(SHARD_ID, shard.0.into());
                insert_hint(&mut md, NEW_NODE_HINT, to.as_deref());
            }
            KvError::Routing(RoutingError::StaleEpoch {
                shard,
                request,
                current,
            }) => {
                md.insert(SHARD_ID, shard.0.into());
                md.insert(SHARD_EPOCH, current.0.into());
                md.insert(REQUEST_EPOCH, request.0.into());
            }
            _ => {}
        }
        let message = match err {
            // These carry their message verbatim so that decoding restores it.
            KvError::InvalidArgument(m)
            | KvError::Unavailable(m)
            | KvError::Internal(m)
            | KvError::PermissionDenied(m)
            | KvError::ResourceExhausted(m) => m,
            other => other.to_string(),
        };
        Status::with_metadata(kind.code(), message, md)
    }
}

impl From<RoutingError> for Status {
    /// Shorthand for encoding `KvError::Routing(err)`, for node services.
    fn from(err: RoutingError) -> Status {
        KvError::Routing(err).into()
    }
}

impl From<Status> for KvError {
    fn from(status: Status) -> KvError {
        from_status(&status)
    }
}

/// Encodes `err` for one operation of a call stream: the code, message and
/// trailers of the status the unary RPC would have answered with.
pub fn to_call_error(err: KvError) -> CallError {
    let status = Status::from(err);
    let trailers = status
        .metadata()
        .iter()
        .filter_map(|entry| match entry {
            KeyAndValueRef::Ascii(key, value) => {
                Some((key.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            }
            KeyAndValueRef::Binary(..) => None,
        })
        .collect();
    CallError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        trailers,
    }
}

/// Decodes the error of one operation of a call stream, exactly as
/// [`from_status`] decodes the same status. Trailers that are not valid
/// metadata are dropped, which at worst makes a routing error `INTERNAL`.
pub fn from_call_error(err: &CallError) -> KvError {
    let mut md = MetadataMap::new();
    for (key, value) in &err.trailers {
        if let (Ok(key), Ok(value)) = (
            AsciiMetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) {
            md.insert(key, value);
        }
    }
    from_status(&Status::with_metadata(
        Code::from_i32(err.code),
        err.message.clone(),
        md,
    ))
}

/// Decodes a status into the error it reports.
///
/// With a known `x-kvdb-error` trailer the error is rebuilt from the trailers;
/// if a trailer a kind requires (`x-shard-id`, the epochs) is missing or
/// malformed the result is [`KvError::Internal`]. Without the trailer, or with
/// a kind this version does not know, the code decides:
///
/// - `UNAVAILABLE`, `CANCELLED`, and `UNKNOWN` or `INTERNAL` carrying a
///   source error (tonic builds those locally from connection failures and
///   from streams a dying peer reset; a status received from a peer never
///   has a source) -> [`KvError::Unavailable`];
/// - `DEADLINE_EXCEEDED` -> [`KvError::DeadlineExceeded`];
/// - `INVALID_ARGUMENT`, `OUT_OF_RANGE` -> [`KvError::InvalidArgument`];
/// - anything else -> [`KvError::Internal`].
///
/// The message is carried along for people, never inspected.
pub fn from_status(status: &Status) -> KvError {
    let md = status.metadata();
    let Some(kind) = text(md, ERROR_KIND).and_then(Kind::parse) else {
        return from_code(status);
    };
    let message = status.message().to_owned();
    let shard = || number(md, SHARD_ID).map(ShardId).ok_or(SHARD_ID);
    let decoded: Result<KvError, &str> = match kind {
        Kind::NotLeader => shard().map(|shard| {
            RoutingError::NotLeader {
                shard,
                leader: text(md, LEADER_HINT).map(str::to_owned),
            }
            .into()
        }),
        Kind::ShardMoved => shard().map(|shard| {
            RoutingError::ShardMoved {
                shard,
                to: text(md, NEW_NODE_HINT).map(str::to_owned),
            }
            .into()
        }),
        Kind::StaleEpoch => stale_epoch(md),
        Kind::InvalidArgument => Ok(KvError::InvalidArgument(message)),
        Kind::Unavailable => Ok(KvError::Unavailable(message)),
        Kind::NoShardMap => Ok(KvError::NoShardMap),
        Kind::DeadlineExceeded => Ok(KvError::DeadlineExceeded),
        Kind::Internal => Ok(KvError::Internal(message)),
        Kind::PermissionDenied => Ok(KvError::PermissionDenied(message)),
        Kind::ResourceExhausted => Ok(KvError::ResourceExhausted(message)),
    };
    decoded.unwrap_or_else(|missing| {
        KvError::Internal(format!(
            "{} status without a valid {missing} trailer: {}",
            kind.as_str(),
            status.message()
        ))
    })
}

/// Rebuilds a `STALE_EPOCH` error, or names the first missing trailer.
fn stale_epoch(md: &MetadataMap) -> Result<KvError, &'static str> {
    let shard = number(md, SHARD_ID).ok_or(SHARD_ID)?;
    let current = number(md, SHARD_EPOCH).ok_or(SHARD_EPOCH)?;
    let request = number(md, REQUEST_EPOCH).ok_or(REQUEST_EPOCH)?;
    Ok(RoutingError::StaleEpoch {
        shard: ShardId(shard),
        request: Epoch(request),
        current: Epoch(current),
    }
    .into())
}

/// Classifies a status that carries no KvDB error kind.
fn from_code(status: &Status) -> KvError {
    let message = status.message().to_owned();
    match status.code() {
        Code::Unavailable | Code::Cancelled => KvError::Unavailable(message),
        Code::Unknown | Code::Internal if std::error::Error::source(status).is_some() => {
            KvError::Unavailable(message)
        }
        Code::DeadlineExceeded => KvError::DeadlineExceeded,
        Code::InvalidArgument | Code::OutOfRange => KvError::InvalidArgument(message),
        // The auth layer's refusals (see `crate::auth`) carry no KvDB trailers.
        Code::Unauthenticated | Code::PermissionDenied => KvError::PermissionDenied(message),
        Code::ResourceExhausted => KvError::ResourceExhausted(message),
        code => KvError::Internal(format!("{code:?}: {message}")),
    }
}

fn insert_hint(md: &mut MetadataMap, key: &'static str, hint: Option<&str>) {
    if let Some(value) = hint.and_then(|h| AsciiMetadataValue::try_from(h).ok()) {
        md.insert(key, value);
    }
}

fn text<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key)?.to_str().ok().filter(|s| !s.is_empty())
}

fn number(md: &MetadataMap, key: &str) -> Option<u64> {
    text(md, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Every variant, with and without hints, with its code and kind.
    fn all_errors() -> Vec<(KvError, Code, &'static str)> {
        let shard = ShardId(42);
        let routed = |e: RoutingError, kind| (KvError::from(e), Code::FailedPrecondition, kind);
        let hint = Some("10.0.0.1:7001".to_string());
        vec![
            routed(
                RoutingError::NotLeader {
                    shard,
                    leader: hint.clone(),
                },
                "NOT_LEADER",
            ),
            routed(
                RoutingError::NotLeader {
                    shard,
                    leader: None,
                },
                "NOT_LEADER",
            ),
            routed(RoutingError::ShardMoved { shard, to: hint }, "SHARD_MOVED"),
            routed(RoutingError::ShardMoved { shard, to: None }, "SHARD_MOVED"),
            routed(
                RoutingError::StaleEpoch {
                    shard,
                    request: Epoch(3),
                    current: Epoch(u64::MAX),
                },
                "STALE_EPOCH",
            ),
            (
                KvError::InvalidArgument("key too large".into()),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
            (
                KvError::Unavailable("shutting down".into()),
                Code::Unavailable,
                "UNAVAILABLE",
            ),
            (
                KvError::DeadlineExceeded,
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (KvError::NoShardMap, Code::Unavailable, "NO_SHARD_MAP"),
            (
                KvError::Internal("invariant broken".into()),
                Code::Internal,
                "INTERNAL",
            ),
        ]
    }

    /// Sends a status through its HTTP/2 header encoding, as the wire does.
    fn over_the_wire(status: Status) -> Status {
        let response = status.into_http::<()>();
        Status::from_header_map(response.headers()).expect("grpc-status header")
    }

    #[test]
    fn every_error_round_trips_through_a_call_error() {
        for (err, code, _) in all_errors() {
            let call = to_call_error(err.clone());
            assert_eq!(call.code, code as i32, "{err:?}");
            assert_eq!(from_call_error(&call), err);
        }
    }

    #[test]
    fn every_error_round_trips_with_its_code_and_kind() {
        for (err, code, kind) in all_errors() {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), code, "{err}");
            assert_eq!(text(status.metadata(), ERROR_KIND), Some(kind));
            assert_eq!(from_status(&status), err);
            assert_eq!(KvError::from(over_the_wire(status)), err);
        }
    }

    #[test]
    fn routing_trailers_carry_the_hints() {
        let status = Status::from(KvError::from(RoutingError::NotLeader {
            shard: ShardId(7),
            leader: Some("10.0.0.1:7001".into()),
        }));
        let md = status.metadata();
        assert_eq!(text(md, SHARD_ID), Some("7"));
        assert_eq!(text(md, LEADER_HINT), Some("10.0.0.1:7001"));

        let status = Status::from(RoutingError::ShardMoved {
            shard: ShardId(7),
            to: Some("10.0.0.2:7001".into()),
        });
        assert_eq!(
            text(status.metadata(), NEW_NODE_HINT),
            Some("10.0.0.2:7001")
        );

        let status = Status::from(KvError::from(RoutingError::StaleEpoch {
            shard: ShardId(7),
            request: Epoch(4),
            current: Epoch(5),
        }));
        assert_eq!(text(status.metadata(), SHARD_EPOCH), Some("5"));
        assert_eq!(text(status.metadata(), REQUEST_EPOCH), Some("4"));
    }

    #[test]
    fn an_unencodable_hint_is_dropped() {
        let status = Status::from(KvError::from(RoutingError::NotLeader {
            shard: ShardId(1),
            leader: Some("nöde:7001\n".into()),
        }));
        let expected = KvError::from(RoutingError::NotLeader {
            shard: ShardId(1),
            leader: None,
        });
        assert_eq!(from_status(&status), expected);
    }

    #[test]
    fn statuses_without_a_kind_map_by_code() {
        let cases = [
            (
                Status::unavailable("connection refused"),
                KvError::Unavailable("connection refused".into()),
            ),
            (
                Status::cancelled("reset"),
                KvError::Unavailable("reset".into()),
            ),
            (
                Status::deadline_exceeded("timeout"),
                KvError::DeadlineExceeded,
            ),
            (
                Status::invalid_argument("bad"),
                KvError::InvalidArgument("bad".into()),
            ),
            (
                Status::out_of_range("big"),
                KvError::InvalidArgument("big".into()),
            ),
            (
                Status::unknown("peer said so"),
                KvError::Internal("Unknown: peer said so".into()),
            ),
            (
                Status::internal("boom"),
                KvError::Internal("Internal: boom".into()),
            ),
            (
                Status::unimplemented("no"),
                KvError::Internal("Unimplemented: no".into()),
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(from_status(&status), expected);
        }
    }

    #[test]
    fn a_locally_made_unknown_status_is_unavailable() {
        // What tonic returns when it cannot reach the server at all.
        let io = std::io::Error::other("tcp connect error");
        let mut status = Status::unknown("transport error");
        status.set_source(Arc::new(io));
        assert_eq!(
            from_status(&status),
            KvError::Unavailable("transport error".into())
        );
        // The source does not survive the wire: a peer's UNKNOWN is internal.
        assert!(matches!(
            from_status(&over_the_wire(status)),
            KvError::Internal(_)
        ));
    }

    #[test]
    fn an_unknown_kind_falls_back_to_the_code() {
        let mut status = Status::unavailable("draining");
        status
            .metadata_mut()
            .insert(ERROR_KIND, AsciiMetadataValue::from_static("SOMETHING_NEW"));
        assert_eq!(
            from_status(&status),
            KvError::Unavailable("draining".into())
        );
    }

    #[test]
    fn missing_routing_trailers_are_internal() {
        let mut status = Status::failed_precondition("moved");
        status
            .metadata_mut()
            .insert(ERROR_KIND, AsciiMetadataValue::from_static("SHARD_MOVED"));
        assert!(matches!(from_status(&status), KvError::Internal(m) if m.contains(SHARD_ID)));

        let mut status = Status::from(KvError::from(RoutingError::StaleEpoch {
            shard: ShardId(1),
            request: Epoch(1),
            current: Epoch(2),
        }));
        status
            .metadata_mut()
            .insert(SHARD_EPOCH, AsciiMetadataValue::from_static("two"));
        assert!(matches!(from_status(&status), KvError::Internal(m) if m.contains(SHARD_EPOCH)));
    }
}
