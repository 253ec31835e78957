//! Bounded fuzzing of the decoders that face the network: whatever bytes arrive, decoding
//! answers an error or a value, never a panic, and a decoded map is either valid or refused
//! by its validity check. Each property runs proptest's default number of cases, so CI
//! spends a bounded time here; a failing input found here becomes a test of its own.

use std::collections::HashMap;

use kvdb_core::proto::v1 as pb;
use kvdb_core::raft::codec;
use kvdb_core::status::{from_call_error, from_status};
use kvdb_core::{ShardMap, ShardMapDelta};
use openraft::raft::VoteRequest;
use proptest::prelude::*;
use prost::Message;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// Trailer names KvDB reads, and one it does not.
const TRAILERS: [&str; 8] = [
    "x-kvdb-error",
    "x-shard-id",
    "x-leader-hint",
    "x-new-node-hint",
    "x-shard-epoch",
    "x-request-epoch",
    "x-busy-reason",
    "x-other",
];

/// Values that exercise the trailers: the error kinds, numbers, hints, and junk.
fn trailer_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("NOT_LEADER".to_owned()),
        Just("SHARD_MOVED".to_owned()),
        Just("STALE_EPOCH".to_owned()),
        Just("PERMISSION_DENIED".to_owned()),
        Just("SHARD_BUSY".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[ -~]{0,24}",
    ]
}

proptest! {
    #[test]
    fn any_bytes_as_a_shard_map_decode_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Ok(message) = pb::ShardMap::decode(bytes.as_slice())
            && let Ok(map) = ShardMap::try_from(&message)
        {
            let _ = map.validate();
        }
        if let Ok(message) = pb::ShardMapDelta::decode(bytes.as_slice())
            && let Ok(delta) = ShardMapDelta::try_from(&message)
        {
            let mut map = ShardMap::default();
            if map.apply(&delta).is_ok() {
                let _ = map.validate();
            }
        }
    }

    #[test]
    fn any_request_bytes_decode_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = pb::NodeCalls::decode(bytes.as_slice());
        let _ = pb::Calls::decode(bytes.as_slice());
        let _ = pb::RaftCalls::decode(bytes.as_slice());
        let _ = pb::HeartbeatRequest::decode(bytes.as_slice());
        let _ = pb::SplitShardRequest::decode(bytes.as_slice());
        // A Raft envelope's payload.
        let _ = codec::decode::<VoteRequest<u64>>(&bytes);
    }

    #[test]
    fn any_error_trailers_decode_to_some_error(
        code in any::<i32>(),
        message in "[ -~]{0,40}",
        trailers in prop::collection::vec((0..TRAILERS.len(), trailer_value()), 0..6),
    ) {
        let trailers: HashMap<String, String> = trailers
            .into_iter()
            .map(|(k, v)| (TRAILERS[k].to_owned(), v))
            .collect();
        let call = pb::CallError {
            code,
            message: message.clone(),
            trailers: trailers.clone(),
        };
        let _ = from_call_error(&call);
        let mut md = MetadataMap::new();
        for (key, value) in &trailers {
            let name = TRAILERS.iter().find(|t| *t == key).expect("a known name");
            if let Ok(value) = AsciiMetadataValue::try_from(value.as_str()) {
                md.insert(*name, value);
            }
        }
        let status = tonic::Status::with_metadata(tonic::Code::from(code), message, md);
        let _ = from_status(&status);
        let _ = kvdb_core::status::control::from_status(&status);
    }
}
