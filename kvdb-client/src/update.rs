//! Read-modify-write updates of one key ([`Action`]), decided by the key's shard so that no
//! caller needs a read-then-compare-and-swap loop, and their wire form.

use std::time::Duration;

use kvdb_core::Version;
use kvdb_core::proto::v1 as pb;

use crate::value::{ClientError, HashPairs};

/// What an update does to a key's value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Writes `value` (Redis `SET` with `XX`/`NX`/`GET`/`KEEPTTL`, `GETSET`).
    Set {
        /// The new value.
        value: Vec<u8>,
        /// Its expiry.
        expiry: Expiry,
        /// The condition on the key's presence.
        only_if: OnlyIf,
        /// Answer the replaced value in [`Updated::old`].
        return_old: bool,
    },
    /// Removes the key, answering its value (`GETDEL`).
    GetDel,
    /// Changes a present key's expiry, of any type; a time already past deletes it (`EXPIRE`,
    /// `PERSIST`). Answers a string's value in [`Updated::old`] (`GETEX`).
    Expire {
        /// The new expiry; [`Expiry::Keep`] is refused.
        expiry: Expiry,
        /// The condition on the key's current expiry.
        when: ExpireWhen,
    },
    /// Adds to a 64-bit integer value (absent: 0).
    IncrBy(i64),
    /// Adds to a float value (absent: 0), as Redis's `INCRBYFLOAT` does: in an 80-bit
    /// `long double`, the sum stored as 17 decimals less trailing zeros (so `0.1` plus `0.2`
    /// stores `0.3`).
    IncrByFloat(f64),
    /// Adds bytes at the end.
    Append(Vec<u8>),
    /// Overwrites bytes at `offset`, padding with zeros.
    SetRange {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Sets fields of a hash (absent: empty), as Redis's `HSET`; with `only_new`, only fields
    /// not there yet (`HSETNX`). Answers in [`Updated::integer`] how many fields are new.
    /// On a string: [`Refusal::WrongType`].
    HashSet {
        /// The field-value pairs; a later pair wins.
        pairs: HashPairs,
        /// Leave fields already there as they are.
        only_new: bool,
    },
    /// Removes fields of a hash (`HDEL`), and the key with its last field. Answers in
    /// [`Updated::integer`] how many were there.
    HashDel(Vec<Vec<u8>>),
    /// Adds to a hash field's 64-bit integer (absent: 0), as `HINCRBY`; answers the sum in
    /// [`Updated::integer`].
    HashIncrBy {
        /// The field.
        field: Vec<u8>,
        /// The increment.
        by: i64,
    },
    /// Adds to a hash field's float (absent: 0) as [`Action::IncrByFloat`] does
    /// (`HINCRBYFLOAT`); answers the sum in [`Updated::float`].
    HashIncrByFloat {
        /// The field.
        field: Vec<u8>,
        /// The increment.
        by: f64,
    },
}

/// When a value written by an update expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The key's current expiry (for [`Action::Set`]).
    Keep,
    /// Never.
    Never,
    /// This long after the shard leader accepts the update.
    In(Duration),
    /// At this Unix time in milliseconds.
    At(u64),
}

/// The condition of an [`Action::Set`] on the key's presence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnlyIf {
    /// Always.
    #[default]
    Always,
    /// Only if the key is present (`XX`).
    Exists,
    /// Only if the key is absent (`NX`).
    Absent,
}

/// The condition of an [`Action::Expire`] on the key's current expiry (Redis 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpireWhen {
    /// Always.
    #[default]
    Always,
    /// Only if it has none.
    Nx,
    /// Only if it has one.
    Xx,
    /// Only if the new one is later; a key without expiry never passes.
    Gt,
    /// Only if the new one is sooner; a key without expiry always passes.
    Lt,
    /// Only if it has one and the new one is sooner (Redis `XX LT`).
    XxLt,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// False when a condition did not hold or nothing needed changing.
    pub applied: bool,
    /// The key's version afterwards (0: absent).
    pub version: Version,
    /// The value before the update, for the actions that answer it.
    pub old: Option<Vec<u8>>,
    /// `IncrBy`'s and `HashIncrBy`'s new value; `HashSet`'s new fields; `HashDel`'s removed
    /// fields.
    pub integer: Option<i64>,
    /// `IncrByFloat`'s new value, as stored.
    pub float: Option<String>,
    /// `Append`'s and `SetRange`'s new length.
    pub length: Option<u64>,
}

/// Why a key's value refused an update; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The value is not a 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// The sum does not fit 64 bits.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// The value or increment is not a float.
    #[error("value is not a valid float")]
    NotFloat,
    /// The sum is NaN or infinite.
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// The value would exceed the node's value size limit.
    #[error("value exceeds the node's value size limit")]
    TooLarge,
    /// The key holds another type of value (a string action on a hash, a hash action on a
    /// string).
    #[error("the key holds the wrong kind of value")]
    WrongType,
    /// The stored value does not decode: a server defect.
    #[error("the stored value is corrupt")]
    Corrupt,
}

impl Refusal {
    /// The refusal a reply's error code stands for; `None` for none (or one unknown to
    /// this client, which is treated as none rather than as a wrong answer).
    pub fn from_wire(error: pb::UpdateError) -> Option<Refusal> {
        match error {
            pb::UpdateError::None => None,
            pb::UpdateError::NotInteger => Some(Refusal::NotInteger),
            pb::UpdateError::Overflow => Some(Refusal::Overflow),
            pb::UpdateError::NotFloat => Some(Refusal::NotFloat),
            pb::UpdateError::NanOrInfinity => Some(Refusal::NanOrInfinity),
            pb::UpdateError::TooLarge => Some(Refusal::TooLarge),
            pb::UpdateError::WrongType => Some(Refusal::WrongType),
            pb::UpdateError::Corrupt => Some(Refusal::Corrupt),
        }
    }
}

/// Builds the wire request of an update.
pub(crate) fn update_request(
    key: &[u8],
    action: &Action,
    write_id: pb::WriteId,
) -> pb::UpdateRequest {
    use pb::update_request::Action as Wire;
    let action = match action {
        Action::Set {
            value,
            expiry,
            only_if,
            return_old,
        } => Wire::Set(pb::SetAction {
            value: value.clone().into(),
            expiry: Some(expiry_wire(*expiry)),
            only_if: match only_if {
                OnlyIf::Always => pb::set_action::OnlyIf::Always,
                OnlyIf::Exists => pb::set_action::OnlyIf::Exists,
                OnlyIf::Absent => pb::set_action::OnlyIf::Absent,
            } as i32,
            return_old: *return_old,
        }),
        Action::GetDel => Wire::GetDel(pb::GetDelAction {}),
        Action::Expire { expiry, when } => Wire::Expire(pb::ExpireAction {
            string_only: false,
            expiry: Some(expiry_wire(*expiry)),
            when: match when {
                ExpireWhen::Always => pb::expire_action::When::Always,
                ExpireWhen::Nx => pb::expire_action::When::Nx,
                ExpireWhen::Xx => pb::expire_action::When::Xx,
                ExpireWhen::Gt => pb::expire_action::When::Gt,
                ExpireWhen::Lt => pb::expire_action::When::Lt,
                ExpireWhen::XxLt => pb::expire_action::When::XxLt,
            } as i32,
        }),
        Action::IncrBy(by) => Wire::IncrBy(*by),
        Action::IncrByFloat(by) => Wire::IncrByFloat(format!("{by:?}")),
        Action::Append(bytes) => Wire::Append(bytes.clone().into()),
        Action::SetRange { offset, bytes } => Wire::SetRange(pb::SetRangeAction {
            offset: *offset,
            value: bytes.clone().into(),
        }),
        Action::HashSet { pairs, only_new } => Wire::HashSet(pb::HashSetAction {
            fields: pairs
                .iter()
                .map(|(field, value)| pb::HashField {
                    field: field.clone().into(),
                    value: value.clone().into(),
                })
                .collect(),
            only_new: *only_new,
        }),
        Action::HashDel(fields) => Wire::HashDel(pb::HashDelAction {
            fields: fields.iter().map(|f| f.clone().into()).collect(),
        }),
        Action::HashIncrBy { field, by } => Wire::HashIncrBy(pb::HashIncrByAction {
            field: field.clone().into(),
            by: *by,
        }),
        Action::HashIncrByFloat { field, by } => Wire::HashIncrByFloat(pb::HashIncrByFloatAction {
            field: field.clone().into(),
            by: format!("{by:?}"),
        }),
    };
    pb::UpdateRequest {
        key: key.to_vec().into(),
        write_id: Some(write_id),
        action: Some(action),
    }
}

fn expiry_wire(expiry: Expiry) -> pb::Expiry {
    use pb::expiry::When;
    let when = match expiry {
        Expiry::Keep => When::Keep(true),
        Expiry::Never => When::Never(true),
        Expiry::In(ttl) => When::TtlMs(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        Expiry::At(at) => When::AtMs(i64::try_from(at).unwrap_or(i64::MAX)),
    };
    pb::Expiry { when: Some(when) }
}

/// Turns an update reply into the API's result.
pub(crate) fn update_result(reply: pb::UpdateResponse) -> Result<Updated, ClientError> {
    use pb::update_response::Value;
    if let Some(refusal) = Refusal::from_wire(reply.error()) {
        return Err(ClientError::Refused(refusal));
    }
    let (mut integer, mut float, mut length) = (None, None, None);
    match reply.value {
        Some(Value::Integer(n)) => integer = Some(n),
        Some(Value::Float(text)) => float = Some(text),
        Some(Value::Length(len)) => length = Some(len),
        None => {}
    }
    Ok(Updated {
        applied: reply.applied,
        version: Version(reply.version),
        old: reply.old.map(|old| old.to_vec()),
        integer,
        float,
        length,
    })
}
