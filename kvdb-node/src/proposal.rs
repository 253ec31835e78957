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
use kvdb_core::hash_value::HashValue;
use kvdb_core::proto::v1 as pb;
use kvdb_core::storage::{StoredValue, ValueKind};

use crate::command::{
    Command, CommandResult, Delete, ExpireWhen, ExpiryChange, HashUpdate, OnlyIf, Op, Put,
    RenameOutcome, Txn, TxnOp, TxnOpResult, Update, UpdateAction, UpdateError, UpdateValue,
    WriteId,
};
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

/// The command for an update, proposed at `now_ms`: relative expiries become absolute here.
pub fn update_command(
    req: &pb::UpdateRequest,
    now_ms: u64,
    limits: &Limits,
) -> Result<Command, KvError> {
    use pb::update_request::Action;
    limits.check_key(&req.key)?;
    let action = match req
        .action
        .as_ref()
        .ok_or_else(|| invalid("update without an action"))?
    {
        Action::Set(set) => {
            limits.check_value(&set.value)?;
            let only_if = match pb::set_action::OnlyIf::try_from(set.only_if) {
                Ok(pb::set_action::OnlyIf::Always) => OnlyIf::Always,
                Ok(pb::set_action::OnlyIf::Exists) => OnlyIf::Exists,
                Ok(pb::set_action::OnlyIf::Absent) => OnlyIf::Absent,
                Err(_) => return Err(invalid("unknown set condition")),
            };
            UpdateAction::Set {
                value: set.value.to_vec(),
                expiry: expiry_change(set.expiry.as_ref(), now_ms)?,
                only_if,
                return_old: set.return_old,
            }
        }
        Action::GetDel(_) => UpdateAction::GetDel,
        Action::Expire(expire) => {
            let at_ms = match expiry_change(expire.expiry.as_ref(), now_ms)? {
                ExpiryChange::At(at) => at,
                ExpiryChange::Keep => return Err(invalid("expire cannot keep the expiry")),
            };
            let when = match pb::expire_action::When::try_from(expire.when) {
                Ok(pb::expire_action::When::Always) => ExpireWhen::Always,
                Ok(pb::expire_action::When::Nx) => ExpireWhen::Nx,
                Ok(pb::expire_action::When::Xx) => ExpireWhen::Xx,
                Ok(pb::expire_action::When::Gt) => ExpireWhen::Gt,
                Ok(pb::expire_action::When::Lt) => ExpireWhen::Lt,
                Ok(pb::expire_action::When::XxLt) => ExpireWhen::XxLt,
                Err(_) => return Err(invalid("unknown expire condition")),
            };
            match expire.string_only {
                true => UpdateAction::GetEx { at_ms, when },
                false => UpdateAction::Expire { at_ms, when },
            }
        }
        Action::IncrBy(by) => UpdateAction::IncrBy(*by),
        Action::IncrByFloat(by) => UpdateAction::IncrByLongDouble(by.clone()),
        Action::Append(bytes) => {
            limits.check_value(bytes)?;
            UpdateAction::Append(bytes.to_vec())
        }
        Action::SetRange(range) => {
            limits.check_value(&range.value)?;
            UpdateAction::SetRange {
                offset: range.offset,
                bytes: range.value.to_vec(),
            }
        }
        Action::HashSet(set) => {
            if set.fields.is_empty() {
                return Err(invalid("hash_set without a field"));
            }
            let mut pairs = Vec::with_capacity(set.fields.len());
            for pair in &set.fields {
                limits.check_value(&pair.field)?;
                limits.check_value(&pair.value)?;
                pairs.push((pair.field.to_vec(), pair.value.to_vec()));
            }
            UpdateAction::Hash(HashUpdate::Set {
                pairs,
                only_new: set.only_new,
            })
        }
        Action::HashDel(del) => {
            if del.fields.is_empty() {
                return Err(invalid("hash_del without a field"));
            }
            for field in &del.fields {
                limits.check_value(field)?;
            }
            UpdateAction::Hash(HashUpdate::Del(
                del.fields.iter().map(|f| f.to_vec()).collect(),
            ))
        }
        Action::HashIncrBy(incr) => {
            limits.check_value(&incr.field)?;
            UpdateAction::Hash(HashUpdate::IncrBy {
                field: incr.field.to_vec(),
                by: incr.by,
            })
        }
        Action::HashIncrByFloat(incr) => {
            limits.check_value(&incr.field)?;
            UpdateAction::Hash(HashUpdate::IncrByFloat {
                field: incr.field.to_vec(),
                by: incr.by.clone(),
            })
        }
    };
    let update = Update {
        key: req.key.to_vec(),
        action,
        write_id: write_id(req.write_id.as_ref())?,
        max_len: limits.max_value_bytes as u64,
    };
    Ok(Command {
        now_ms,
        op: Op::Update(update),
    })
}

/// The command for a transaction, proposed at `now_ms`: every operation checked as its own
/// request would be, and every key in one slot.
pub fn txn_command(req: &pb::TxnRequest, now_ms: u64, limits: &Limits) -> Result<Command, KvError> {
    use pb::txn_op::Op as TxnRequestOp;
    let mut ops = Vec::with_capacity(req.ops.len());
    for op in &req.ops {
        let op = op
            .op
            .as_ref()
            .ok_or_else(|| invalid("transaction operation without an operation"))?;
        ops.push(match op {
            TxnRequestOp::Get(get) => {
                limits.check_key(&get.key)?;
                TxnOp::Get(get.key.to_vec())
            }
            TxnRequestOp::Put(put) => match put_command(put, now_ms, limits)?.op {
                Op::Put(put) => TxnOp::Put(Put {
                    write_id: None,
                    ..put
                }),
                _ => unreachable!("put_command makes a put"),
            },
            TxnRequestOp::Delete(delete) => match delete_command(delete, now_ms, limits)?.op {
                Op::Delete(delete) => TxnOp::Delete(Delete {
                    write_id: None,
                    ..delete
                }),
                _ => unreachable!("delete_command makes a delete"),
            },
            TxnRequestOp::Update(update) => match update_command(update, now_ms, limits)?.op {
                Op::Update(update) => TxnOp::Update(Update {
                    write_id: None,
                    ..update
                }),
                _ => unreachable!("update_command makes an update"),
            },
            TxnRequestOp::Rename(rename) => {
                limits.check_key(&rename.key)?;
                limits.check_key(&rename.to)?;
                TxnOp::Rename {
                    from: rename.key.to_vec(),
                    to: rename.to.to_vec(),
                    only_if_absent: rename.only_if_absent,
                }
            }
        });
    }
    let mut guards = Vec::with_capacity(req.guards.len());
    for guard in &req.guards {
        limits.check_key(&guard.key)?;
        guards.push((guard.key.to_vec(), Version(guard.version)));
    }
    let txn = Txn {
        guards,
        ops,
        write_id: write_id(req.write_id.as_ref())?,
    };
    kvdb_core::slot::common_slot(txn.keys())?;
    Ok(Command {
        now_ms,
        op: Op::Txn(txn),
    })
}

/// The client's answer to a transaction.
pub fn txn_response(result: CommandResult) -> Result<pb::TxnResponse, KvError> {
    use pb::txn_result::Result as Answer;
    let results = match result {
        CommandResult::Txn(None) => return Ok(pb::TxnResponse::default()),
        CommandResult::Txn(Some(results)) => results,
        other => return Err(unexpected(other)),
    };
    let mut answers = Vec::with_capacity(results.len());
    for result in results {
        let answer = match result {
            TxnOpResult::Got(found) => Answer::Get(match found {
                Some((tagged, version, expire_at_ms)) => {
                    let value = StoredValue::from_tagged(version.0, &tagged, expire_at_ms)
                        .ok_or_else(|| KvError::Internal("unknown value kind".into()))?;
                    get_response(Some(value))?
                }
                None => get_response(None)?,
            }),
            TxnOpResult::Wrote(wrote @ CommandResult::Put { .. }) => {
                Answer::Put(put_response(wrote)?)
            }
            TxnOpResult::Wrote(wrote @ CommandResult::Delete { .. }) => {
                Answer::Delete(delete_response(wrote)?)
            }
            TxnOpResult::Wrote(wrote) => Answer::Update(update_response(wrote)?),
            TxnOpResult::Renamed(outcome) => Answer::Rename(match outcome {
                RenameOutcome::Renamed => pb::RenameOutcome::Renamed,
                RenameOutcome::NoSuchKey => pb::RenameOutcome::NoSuchKey,
                RenameOutcome::TargetExists => pb::RenameOutcome::TargetExists,
            } as i32),
        };
        answers.push(pb::TxnResult {
            result: Some(answer),
        });
    }
    Ok(pb::TxnResponse {
        applied: true,
        results: answers,
    })
}

/// An expiry as an absolute instant at `now_ms`; past instants stay past (at least 0).
fn expiry_change(expiry: Option<&pb::Expiry>, now_ms: u64) -> Result<ExpiryChange, KvError> {
    use pb::expiry::When;
    let at = |ms: i64| u64::try_from(ms).unwrap_or(0);
    Ok(match expiry.and_then(|e| e.when) {
        None | Some(When::Never(_)) => ExpiryChange::At(None),
        Some(When::Keep(_)) => ExpiryChange::Keep,
        Some(When::AtMs(ms)) => ExpiryChange::At(Some(at(ms))),
        Some(When::TtlMs(ms)) => {
            let absolute = i64::try_from(now_ms)
                .ok()
                .and_then(|now| now.checked_add(ms))
                .ok_or_else(|| invalid("expiry overflows"))?;
            ExpiryChange::At(Some(at(absolute)))
        }
    })
}

fn invalid(what: &str) -> KvError {
    KvError::InvalidArgument(what.into())
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

/// The wire name of a value's kind.
pub fn value_type(kind: ValueKind) -> pb::ValueType {
    match kind {
        ValueKind::String => pb::ValueType::String,
        ValueKind::Hash | ValueKind::HashMembers => pb::ValueType::Hash,
    }
}

/// The client's answer to a read of a key whose live value is `found`: a hash answers its
/// pairs.
pub fn get_response(found: Option<StoredValue>) -> Result<pb::GetResponse, KvError> {
    let Some(v) = found else {
        return Ok(pb::GetResponse::default());
    };
    let mut response = pb::GetResponse {
        found: true,
        version: v.version.0,
        expires_at_ms: v.expire_at_ms.unwrap_or(0),
        ..Default::default()
    };
    match v.kind {
        ValueKind::String => response.value = v.value.into(),
        ValueKind::HashMembers => {
            return Err(KvError::Internal(
                "a hash in member rows was answered without its members".into(),
            ));
        }
        ValueKind::Hash => {
            let hash = HashValue::decode(&v.value).map_err(|e| KvError::Internal(e.to_string()))?;
            response.set_type(value_type(v.kind));
            response.hash_len = hash.len() as u64;
            response.fields = hash
                .into_pairs()
                .into_iter()
                .map(|(field, value)| pb::HashField {
                    field: field.into(),
                    value: value.into(),
                })
                .collect();
        }
    }
    Ok(response)
}

/// The client's answer to an update; a value that refused it is an answer, not an error.
pub fn update_response(result: CommandResult) -> Result<pb::UpdateResponse, KvError> {
    use pb::update_response::Value;
    let updated = match result {
        CommandResult::Update(Ok(updated)) => updated,
        CommandResult::Update(Err(refused)) => {
            let error = match refused {
                UpdateError::NotInteger => pb::UpdateError::NotInteger,
                UpdateError::Overflow => pb::UpdateError::Overflow,
                UpdateError::NotFloat => pb::UpdateError::NotFloat,
                UpdateError::NanOrInfinity => pb::UpdateError::NanOrInfinity,
                UpdateError::TooLarge { .. } => pb::UpdateError::TooLarge,
                UpdateError::WrongType => pb::UpdateError::WrongType,
                UpdateError::Corrupt => pb::UpdateError::Corrupt,
            };
            return Ok(pb::UpdateResponse {
                error: error as i32,
                ..Default::default()
            });
        }
        other => return Err(unexpected(other)),
    };
    let value = match updated.value {
        UpdateValue::None => None,
        UpdateValue::Integer(n) => Some(Value::Integer(n)),
        UpdateValue::Float(text) => Some(Value::Float(text)),
        UpdateValue::Length(len) => Some(Value::Length(len)),
    };
    Ok(pb::UpdateResponse {
        applied: updated.applied,
        version: updated.version.0,
        old: updated.old.map(Into::into),
        value,
        error: pb::UpdateError::None as i32,
    })
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
    fn an_update_ttl_becomes_absolute_and_a_past_one_stays_past() {
        let req = |ttl_ms| pb::UpdateRequest {
            key: b"k".to_vec().into(),
            action: Some(pb::update_request::Action::Expire(pb::ExpireAction {
                expiry: Some(pb::Expiry {
                    when: Some(pb::expiry::When::TtlMs(ttl_ms)),
                }),
                when: pb::expire_action::When::Gt as i32,
                string_only: false,
            })),
            ..Default::default()
        };
        let at = |ttl_ms| match update_command(&req(ttl_ms), 1_000, &LIMITS).unwrap().op {
            Op::Update(Update {
                action: UpdateAction::Expire { at_ms, when },
                max_len,
                ..
            }) => (at_ms, when, max_len),
            other => panic!("{other:?}"),
        };
        assert_eq!(at(250), (Some(1_250), ExpireWhen::Gt, 8));
        assert_eq!(at(-5_000), (Some(0), ExpireWhen::Gt, 8));
    }

    #[test]
    fn an_update_refused_by_the_value_is_an_answer() {
        let reply = update_response(CommandResult::Update(Err(UpdateError::Overflow))).unwrap();
        assert_eq!(reply.error(), pb::UpdateError::Overflow);
    }

    #[test]
    fn a_forgotten_duplicate_is_refused() {
        let err = put_response(CommandResult::ForgottenDuplicate).unwrap_err();
        assert!(matches!(err, KvError::InvalidArgument(_)));
    }
}
