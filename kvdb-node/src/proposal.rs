//! From a client request to a Raft [`Command`], and from a command's result
//! back to the client's response: pure functions over plain data.
//!
//! This is where request limits are enforced (before anything is proposed,
//! so an oversized request changes nothing) and where the leader fixes the
//! command's clock: `now_ms` and the absolute expiry `now_ms + ttl_ms`.
//!
//! Out of scope: routing checks (core's `EpochValidator`) and Raft itself.

use kvdb_core::Version;
use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;

use crate::command::{Command, CommandResult, Delete, Op, Put, WriteId};
use crate::expiry;
use kvdb_core::call_link::max_message_bytes;

/// Size caps on keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted key, in bytes.
    pub max_key_bytes: usize,
    /// Largest accepted value, in bytes.
    pub max_value_bytes: usize,
}

impl Limits {
    /// The largest gRPC message the node's data plane accepts or sends: a call stream's
    /// budget plus one request or reply at these limits. Anything between the limits and it
    /// gets the limits' `INVALID_ARGUMENT`, not a transport error.
    pub fn max_message_bytes(&self) -> usize {
        max_message_bytes(self.max_key_bytes + self.max_value_bytes)
    }

    /// Refuses a key over the cap.
    pub fn check_key(&self, key: &[u8]) -> Result<(), KvError> {
        if key.len() > self.max_key_bytes {
            return Err(KvError::InvalidArgument(format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    /// Refuses a value over the cap.
    pub fn check_value(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() > self.max_value_bytes {
            return Err(KvError::InvalidArgument(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }
}

/// The command for a put, proposed at `now_ms`.
pub fn put_command(req: &pb::PutRequest, now_ms: u64, limits: &Limits) -> Result<Command, KvError> {
    limits.check_key(&req.key)?;
    limits.check_value(&req.value)?;
    let expire_at_ms = expiry::expire_at(now_ms, req.ttl_ms);
    let put = Put {
        key: req.key.to_vec(),
        value: req.value.to_vec(),
        expire_at_ms,
        if_version_equals: req.if_version_equals.map(Version),
        if_not_exists: req.if_not_exists,
        write_id: write_id(req.write_id.as_ref())?,
    };
    Ok(Command {
        now_ms,
        op: Op::Put(put),
    })
}

/// The command for a delete, proposed at `now_ms`.
pub fn delete_command(
    req: &pb::DeleteRequest,
    now_ms: u64,
    limits: &Limits,
) -> Result<Command, KvError> {
    limits.check_key(&req.key)?;
    let delete = Delete {
        key: req.key.to_vec(),
        if_version_equals: req.if_version_equals.map(Version),
        write_id: write_id(req.write_id.as_ref())?,
    };
    Ok(Command {
        now_ms,
        op: Op::Delete(delete),
    })
}

/// A write id with an empty client id asks for no deduplication.
fn write_id(id: Option<&pb::WriteId>) -> Result<Option<WriteId>, KvError> {
    let Some(id) = id.filter(|id| !id.client_id.is_empty()) else {
        return Ok(None);
    };
    if id.settled_below > id.sequence {
        return Err(KvError::InvalidArgument(format!(
            "write_id.settled_below ({}) is above its own sequence ({}): a write cannot be settled before it is sent",
            id.settled_below, id.sequence
        )));
    }
    Ok(Some(WriteId {
        client_id: id.client_id.clone(),
        sequence: id.sequence,
        settled_below: id.settled_below,
    }))
}

/// The client's answer to a put.
pub fn put_response(result: CommandResult) -> Result<pb::PutResponse, KvError> {
    match result {
        CommandResult::Put { applied, version } => Ok(pb::PutResponse {
            applied,
            version: version.0,
        }),
        other => Err(unexpected(other)),
    }
}

/// The client's answer to a delete.
pub fn delete_response(result: CommandResult) -> Result<pb::DeleteResponse, KvError> {
    match result {
        CommandResult::Delete {
            applied,
            existed,
            version,
        } => Ok(pb::DeleteResponse {
            applied,
            existed,
            version: version.0,
        }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(result: CommandResult) -> KvError {
    match result {
        CommandResult::ForgottenDuplicate => KvError::InvalidArgument(
            "write id is older than the shard remembers; its outcome is unknown".into(),
        ),
        other => KvError::Internal(format!("state machine answered {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_bytes: 4,
        max_value_bytes: 8,
    };

    fn put(key: &[u8], value: &[u8]) -> pb::PutRequest {
        pb::PutRequest {
            key: key.to_vec().into(),
            value: value.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn oversized_keys_and_values_are_invalid_arguments() {
        for req in [put(b"12345", b""), put(b"k", b"123456789")] {
            let err = put_command(&req, 0, &LIMITS).unwrap_err();
            assert!(matches!(err, KvError::InvalidArgument(_)), "{err:?}");
        }
        let del = pb::DeleteRequest {
            key: b"12345".to_vec().into(),
            ..Default::default()
        };
        assert!(delete_command(&del, 0, &LIMITS).is_err());
    }

    #[test]
    fn ttl_becomes_an_absolute_expiry_at_proposal_time() {
        let mut req = put(b"k", b"");
        req.ttl_ms = 250;
        let cmd = put_command(&req, 1_000, &LIMITS).unwrap();
        let Op::Put(p) = cmd.op else {
            panic!("not a put")
        };
        assert_eq!((cmd.now_ms, p.expire_at_ms), (1_000, Some(1_250)));
        req.ttl_ms = 0;
        let Op::Put(p) = put_command(&req, 1_000, &LIMITS).unwrap().op else {
            panic!("not a put")
        };
        assert_eq!(p.expire_at_ms, None);
    }

    #[test]
    fn an_empty_client_id_means_no_deduplication() {
        let mut req = put(b"k", b"v");
        req.write_id = Some(pb::WriteId {
            client_id: String::new(),
            sequence: 3,
            settled_below: 0,
        });
        let cmd = put_command(&req, 0, &LIMITS).unwrap();
        assert_eq!(cmd.write_id(), None);
    }

    #[test]
    fn a_write_id_settled_past_its_own_sequence_is_refused() {
        let mut req = put(b"k", b"v");
        req.write_id = Some(pb::WriteId {
            client_id: "c".into(),
            sequence: 3,
            settled_below: 4,
        });
        let err = put_command(&req, 0, &LIMITS).unwrap_err();
        assert!(matches!(err, KvError::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn a_forgotten_duplicate_is_refused() {
        let err = put_response(CommandResult::ForgottenDuplicate).unwrap_err();
        assert!(matches!(err, KvError::InvalidArgument(_)));
    }
}
