//! [`Update`]: a read-modify-write of one key, decided by the state machine from the key's
//! current value, so Redis's `INCR`, `APPEND`, `SETRANGE`, `SET ... XX GET`, `GETDEL`,
//! `EXPIRE` and `GETEX` are one atomic, exactly-once Raft command each.
//!
//! [`decide`] is a pure function of the command, the key's live value and the command's
//! `now_ms`: every replica reaches the same answer. Its rules are Redis 7.0's:
//! - an existing key keeps its expiry when its value changes (`INCR`, `APPEND`, `SETRANGE`);
//! - an expiry at or before `now_ms` deletes the key (`EXPIRE` with a past time);
//! - `GT`/`LT` treat a key without expiry as expiring never (so `GT` fails, `LT` holds);
//! - a value that is not a number, a result that overflows, or a string over `max_len` is an
//!   [`UpdateError`] outcome: nothing is written, and the Raft entry still succeeds.
//!
//! Out of scope: relative times (the leader makes every expiry absolute when it proposes).

use kvdb_core::Version;
use kvdb_core::hash_value::HashValue;
use kvdb_core::member_rows::{self, CollectionMeta};
use kvdb_core::redis_numbers::long_double::{self, LongDoubleError};
use kvdb_core::redis_numbers::{format_float, parse_float, parse_integer};
use kvdb_core::storage::{StoredValue, ValueKind};
use serde::{Deserialize, Serialize};

use crate::command::WriteId;

/// A read-modify-write of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The key.
    pub key: Vec<u8>,
    /// What to do with its value.
    pub action: UpdateAction,
    /// Set for client writes that must be applied once.
    pub write_id: Option<WriteId>,
    /// The longest value the update may leave, fixed by the leader from its limits when it
    /// proposes, so replicas with other limits still agree.
    pub max_len: u64,
}

/// What an [`Update`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateAction {
    /// `SET` with `XX`/`NX`/`GET`/`KEEPTTL`, and `GETSET`.
    Set {
        /// The new value.
        value: Vec<u8>,
        /// Its expiry.
        expiry: ExpiryChange,
        /// The condition on the key's presence.
        only_if: OnlyIf,
        /// Answer the value it replaced (`GET`).
        return_old: bool,
    },
    /// `GETDEL`: remove the key, answering its value.
    GetDel,
    /// `EXPIRE`-family, `PERSIST` and `GETEX`: change an existing key's expiry.
    Expire {
        /// Absolute instant (ms since the Unix epoch); `None` removes the expiry.
        at_ms: Option<u64>,
        /// The condition on the key's current expiry.
        when: ExpireWhen,
    },
    /// `INCRBY`/`DECRBY`: add to a 64-bit integer value (absent: 0).
    IncrBy(i64),
    /// `INCRBYFLOAT` as first built, in `f64`: add to a float value (absent: 0); the
    /// increment as sent, since a float is not `Eq` and its text is what Redis parses. No
    /// longer proposed ([`UpdateAction::IncrByLongDouble`] replaced it); kept so that log
    /// entries written with it replay as they first applied.
    IncrByFloat(String),
    /// `APPEND`: add bytes at the end (absent: empty).
    Append(Vec<u8>),
    /// `SETRANGE`: overwrite bytes at `offset`, padding with zeros.
    SetRange {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// `INCRBYFLOAT`: add to a float value (absent: 0) in Redis's 80-bit `long double` (see
    /// `kvdb_core::redis_numbers::long_double`); the increment as sent. Appended last: log
    /// entries encode a variant by its index.
    IncrByLongDouble(String),
    /// A hash command, on a [`ValueKind::Hash`] value. Appended last, as above.
    Hash(HashUpdate),
    /// `GETEX` with an option: [`UpdateAction::Expire`] that refuses a key of another type
    /// than a string, changing nothing, since it must answer the string. Appended last.
    GetEx {
        /// Absolute instant (ms since the Unix epoch); `None` removes the expiry.
        at_ms: Option<u64>,
        /// The condition on the key's current expiry (`GETEX` sends `Always`).
        when: ExpireWhen,
    },
}

/// What an [`UpdateAction::Hash`] does to the hash under its key (absent: empty). A hash left
/// empty is removed, as Redis removes it; a changed hash keeps its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashUpdate {
    /// `HSET`/`HMSET`, and `HSETNX` (`only_new`: fields already there keep their value):
    /// answers how many fields are new.
    Set {
        /// The pairs, in the order given; a later pair wins.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// Set only absent fields.
        only_new: bool,
    },
    /// `HDEL`: answers how many of the fields were there.
    Del(Vec<Vec<u8>>),
    /// `HINCRBY`: add to a field's 64-bit integer (absent: 0); answers the sum.
    IncrBy {
        /// The field.
        field: Vec<u8>,
        /// The increment.
        by: i64,
    },
    /// `HINCRBYFLOAT`, in Redis's `long double` like [`UpdateAction::IncrByLongDouble`]:
    /// answers the sum as stored.
    IncrByFloat {
        /// The field.
        field: Vec<u8>,
        /// The increment as sent.
        by: String,
    },
}

impl From<LongDoubleError> for UpdateError {
    fn from(e: LongDoubleError) -> Self {
        match e {
            LongDoubleError::NotFloat => UpdateError::NotFloat,
            LongDoubleError::NanOrInfinity => UpdateError::NanOrInfinity,
        }
    }
}

/// The expiry an [`UpdateAction::Set`] leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryChange {
    /// The key's current one (`KEEPTTL`; none for an absent key).
    Keep,
    /// This absolute instant (ms since the Unix epoch), or none.
    At(Option<u64>),
}

/// The condition of an [`UpdateAction::Set`] on the key's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnlyIf {
    /// Always.
    Always,
    /// Only a live key (`XX`).
    Exists,
    /// Only an absent key (`NX`).
    Absent,
}

/// The condition of an [`UpdateAction::Expire`] on the key's current expiry (Redis 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireWhen {
    /// Always.
    Always,
    /// Only if it has none.
    Nx,
    /// Only if it has one.
    Xx,
    /// Only if the new one is later (none counts as never: fails).
    Gt,
    /// Only if the new one is sooner (none counts as never: holds).
    Lt,
    /// Only if it has one and the new one is sooner (Redis `XX LT`). Appended last: log
    /// entries encode a variant by its index.
    XxLt,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    /// False when a condition did not hold (or there was nothing to change); nothing written.
    pub applied: bool,
    /// The key's version after the update (0: absent).
    pub version: Version,
    /// The live value before the update, for the actions that answer it (`Set` with
    /// `return_old`, `GetDel`, `Expire`); `None` otherwise or when absent.
    pub old: Option<Vec<u8>>,
    /// What the action computed.
    pub value: UpdateValue,
}

/// The number an update computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateValue {
    /// Nothing beyond `applied` and `old`.
    None,
    /// `IncrBy`'s new value.
    Integer(i64),
    /// `IncrByFloat`'s new value, as stored.
    Float(String),
    /// `Append`'s and `SetRange`'s new length.
    Length(u64),
}

/// Why an update wrote nothing: an outcome for the client, not a failure of the shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum UpdateError {
    /// The value or the increment is not a 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// The sum does not fit 64 bits.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// The value or the increment is not a float.
    #[error("value is not a valid float")]
    NotFloat,
    /// The sum is not finite.
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// The new value would be longer than the shard accepts.
    #[error("string of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length it would have had.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The key holds another kind of value than the command works on (`GET` of a hash,
    /// `HSET` on a string).
    #[error("the key holds the wrong kind of value")]
    WrongType,
    /// The stored value does not decode: a defect, reported rather than overwritten.
    #[error("the stored value is corrupt")]
    Corrupt,
}

/// What [`decide`] asks the machine to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Nothing.
    None,
    /// This value under the key.
    Put(StoredValue),
    /// Remove the key.
    Delete,
    /// This key row of a hash in member rows, with these changes to the members of the
    /// generation it names (`None` removes one).
    Members {
        /// The key row: a [`CollectionMeta`] of kind [`ValueKind::HashMembers`].
        key_row: StoredValue,
        /// Member -> its new value, or `None` when removed.
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
}

/// The outcome of `update` on a key whose live value is `current`, applied at `now_ms` with
/// `version`, and what to store.
pub fn decide(
    update: &Update,
    current: Option<&StoredValue>,
    now_ms: u64,
    version: Version,
) -> (Result<Updated, UpdateError>, Write) {
    let current_version = current.map_or(Version(0), |v| v.version);
    let is_string = current.is_none_or(|v| v.kind == ValueKind::String);
    let wants_string = match &update.action {
        // SET replaces any kind, unless it must answer the old string; EXPIRE and PERSIST
        // work on any kind (below, `old` is only ever a string).
        UpdateAction::Set { return_old, .. } => *return_old,
        UpdateAction::Expire { .. } => false,
        UpdateAction::Hash(_) => false,
        _ => true,
    };
    if wants_string && !is_string {
        return (Err(UpdateError::WrongType), Write::None);
    }
    let old = current.filter(|_| is_string).map(|v| v.value.clone());
    let kept = current.and_then(|v| v.expire_at_ms);
    let unchanged = |old: Option<Vec<u8>>| Updated {
        applied: false,
        version: current_version,
        old,
        value: UpdateValue::None,
    };
    let put = |value: Vec<u8>, expire_at_ms: Option<u64>| {
        Write::Put(StoredValue {
            value,
            version,
            expire_at_ms,
            kind: ValueKind::String,
        })
    };
    let changed = |old, value| Updated {
        applied: true,
        version,
        old,
        value,
    };
    let too_large = |len: usize| UpdateError::TooLarge {
        len: len as u64,
        max: update.max_len,
    };
    match &update.action {
        UpdateAction::Set {
            value,
            expiry,
            only_if,
            return_old,
        } => {
            let old = old.filter(|_| *return_old);
            let holds = match only_if {
                OnlyIf::Always => true,
                OnlyIf::Exists => current.is_some(),
                OnlyIf::Absent => current.is_none(),
            };
            if !holds {
                return (Ok(unchanged(old)), Write::None);
            }
            if value.len() as u64 > update.max_len {
                return (Err(too_large(value.len())), Write::None);
            }
            let expire_at_ms = match expiry {
                ExpiryChange::Keep => kept,
                ExpiryChange::At(at) => *at,
            };
            let write = put(value.clone(), expire_at_ms);
            (Ok(changed(old, UpdateValue::None)), write)
        }
        UpdateAction::GetDel => match current {
            None => (Ok(unchanged(None)), Write::None),
            Some(_) => (Ok(changed(old, UpdateValue::None)), Write::Delete),
        },
        UpdateAction::Expire { at_ms, when } | UpdateAction::GetEx { at_ms, when } => {
            let Some(current) = current else {
                return (Ok(unchanged(None)), Write::None);
            };
            if !expire_holds(*when, kept, *at_ms) {
                return (Ok(unchanged(old)), Write::None);
            }
            match at_ms {
                Some(at) if *at <= now_ms => (Ok(changed(old, UpdateValue::None)), Write::Delete),
                // PERSIST of a key without expiry changes nothing.
                None if kept.is_none() => (Ok(unchanged(old)), Write::None),
                _ => {
                    let write = Write::Put(StoredValue {
                        version,
                        expire_at_ms: *at_ms,
                        ..current.clone()
                    });
                    (Ok(changed(old, UpdateValue::None)), write)
                }
            }
        }
        UpdateAction::IncrBy(by) => {
            let base = match current.map(|v| parse_integer(&v.value)) {
                None => 0,
                Some(Some(n)) => n,
                Some(None) => return (Err(UpdateError::NotInteger), Write::None),
            };
            let Some(sum) = base.checked_add(*by) else {
                return (Err(UpdateError::Overflow), Write::None);
            };
            let write = put(sum.to_string().into_bytes(), kept);
            (Ok(changed(None, UpdateValue::Integer(sum))), write)
        }
        UpdateAction::IncrByFloat(by) => {
            let base = match current.map(|v| parse_float(&v.value)) {
                None => 0.0,
                Some(Some(n)) => n,
                Some(None) => return (Err(UpdateError::NotFloat), Write::None),
            };
            let Some(by) = parse_float(by.as_bytes()) else {
                return (Err(UpdateError::NotFloat), Write::None);
            };
            let sum = base + by;
            if !sum.is_finite() {
                return (Err(UpdateError::NanOrInfinity), Write::None);
            }
            let text = format_float(sum);
            let write = put(text.clone().into_bytes(), kept);
            (Ok(changed(None, UpdateValue::Float(text))), write)
        }
        UpdateAction::IncrByLongDouble(by) => {
            let base = current.map(|v| v.value.as_slice());
            match long_double::incr_by_float(base, by.as_bytes()) {
                Ok(text) => {
                    let write = put(text.clone().into_bytes(), kept);
                    (Ok(changed(None, UpdateValue::Float(text))), write)
                }
                Err(e) => (Err(e.into()), Write::None),
            }
        }
        UpdateAction::Append(bytes) => {
            let mut value = old.unwrap_or_default();
            let len = value.len() + bytes.len();
            if len as u64 > update.max_len {
                return (Err(too_large(len)), Write::None);
            }
            value.extend_from_slice(bytes);
            let write = put(value, kept);
            (Ok(changed(None, UpdateValue::Length(len as u64))), write)
        }
        UpdateAction::SetRange { offset, bytes } => {
            let mut value = old.unwrap_or_default();
            if bytes.is_empty() {
                // Redis answers the length and creates nothing.
                let length = UpdateValue::Length(value.len() as u64);
                let mut same = unchanged(None);
                same.value = length;
                return (Ok(same), Write::None);
            }
            let end = offset.saturating_add(bytes.len() as u64);
            if end > update.max_len {
                return (Err(too_large(end as usize)), Write::None);
            }
            let (offset, end) = (*offset as usize, end as usize);
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(bytes);
            let len = value.len() as u64;
            (
                Ok(changed(None, UpdateValue::Length(len))),
                put(value, kept),
            )
        }
        UpdateAction::Hash(action) => {
            let mut hash = match current {
                None => HashValue::new(),
                Some(v) if v.kind != ValueKind::Hash => {
                    return (Err(UpdateError::WrongType), Write::None);
                }
                Some(v) => match HashValue::decode(&v.value) {
                    Ok(hash) => hash,
                    Err(_) => return (Err(UpdateError::Corrupt), Write::None),
                },
            };
            let (answer, modified) = match hash_change(&mut hash, action) {
                Ok(done) => done,
                Err(e) => return (Err(e), Write::None),
            };
            if !modified {
                let mut same = unchanged(None);
                same.value = answer;
                return (Ok(same), Write::None);
            }
            if hash.is_empty() {
                return (Ok(changed(None, answer)), Write::Delete);
            }
            if !member_rows::fits_record(&hash) {
                // Past Redis's small-hash limits: every pair moves to member rows of a new
                // generation, and later writes touch only the members they name.
                let meta = CollectionMeta {
                    generation: version.0,
                    len: hash.len() as u64,
                };
                let key_row = StoredValue {
                    value: meta.encode(),
                    version,
                    expire_at_ms: kept,
                    kind: ValueKind::HashMembers,
                };
                let changes = hash
                    .into_pairs()
                    .into_iter()
                    .map(|(field, value)| (field, Some(value)))
                    .collect();
                return (
                    Ok(changed(None, answer)),
                    Write::Members { key_row, changes },
                );
            }
            if hash.encoded_len() as u64 > update.max_len {
                return (Err(too_large(hash.encoded_len())), Write::None);
            }
            let write = Write::Put(StoredValue {
                value: hash.encode(),
                version,
                expire_at_ms: kept,
                kind: ValueKind::Hash,
            });
            (Ok(changed(None, answer)), write)
        }
    }
}

/// The members a hash command reads and writes.
pub fn named_fields(action: &HashUpdate) -> Vec<&[u8]> {
    match action {
        HashUpdate::Set { pairs, .. } => pairs.iter().map(|(field, _)| field.as_slice()).collect(),
        HashUpdate::Del(fields) => fields.iter().map(Vec::as_slice).collect(),
        HashUpdate::IncrBy { field, .. } | HashUpdate::IncrByFloat { field, .. } => {
            vec![field.as_slice()]
        }
    }
}

/// The outcome of `action` on the live hash in member rows whose key row is `key_row`, given
/// `named`: the current values of the members [`named_fields`] lists (absent ones left out).
/// The same rules as [`decide`]'s for a hash kept whole, computed over those members only;
/// `max_len` bounds each member's value rather than the whole hash.
pub fn decide_members(
    action: &HashUpdate,
    key_row: &StoredValue,
    named: HashValue,
    version: Version,
    max_len: u64,
) -> (Result<Updated, UpdateError>, Write) {
    let Some(meta) = CollectionMeta::of(key_row) else {
        return (Err(UpdateError::Corrupt), Write::None);
    };
    let before = named.clone();
    let mut after = named;
    let (answer, modified) = match hash_change(&mut after, action) {
        Ok(done) => done,
        Err(e) => return (Err(e), Write::None),
    };
    if !modified {
        let same = Updated {
            applied: false,
            version: key_row.version,
            old: None,
            value: answer,
        };
        return (Ok(same), Write::None);
    }
    let done = Updated {
        applied: true,
        version,
        old: None,
        value: answer,
    };
    let len = (meta.len + after.len() as u64).saturating_sub(before.len() as u64);
    if len == 0 {
        return (Ok(done), Write::Delete);
    }
    let mut changes = Vec::new();
    for field in named_fields(action) {
        let new = after.get(field);
        if new != before.get(field) && !changes.iter().any(|(f, _): &(Vec<u8>, _)| f == field) {
            changes.push((field.to_vec(), new.map(<[u8]>::to_vec)));
        }
    }
    let longest = changes
        .iter()
        .filter_map(|(_, v)| v.as_ref().map(Vec::len))
        .max();
    if let Some(len) = longest.filter(|len| *len as u64 > max_len) {
        let too_large = UpdateError::TooLarge {
            len: len as u64,
            max: max_len,
        };
        return (Err(too_large), Write::None);
    }
    let key_row = StoredValue {
        value: CollectionMeta { len, ..meta }.encode(),
        version,
        ..key_row.clone()
    };
    (Ok(done), Write::Members { key_row, changes })
}

/// Applies a hash command to `hash`: what the command replies, and whether it changed the
/// hash (Redis leaves a key untouched, and its watchers undisturbed, when `HSETNX` or `HDEL`
/// find nothing to do).
fn hash_change(
    hash: &mut HashValue,
    action: &HashUpdate,
) -> Result<(UpdateValue, bool), UpdateError> {
    let answer = match action {
        HashUpdate::Set { pairs, only_new } => {
            let added = hash.set_many(pairs, *only_new) as i64;
            let modified = added > 0 || !*only_new;
            return Ok((UpdateValue::Integer(added), modified));
        }
        HashUpdate::Del(fields) => {
            let removed = hash.remove_many(fields) as i64;
            return Ok((UpdateValue::Integer(removed), removed > 0));
        }
        HashUpdate::IncrBy { field, by } => {
            let base = match hash.get(field).map(parse_integer) {
                None => 0,
                Some(Some(n)) => n,
                Some(None) => return Err(UpdateError::NotInteger),
            };
            let sum = base.checked_add(*by).ok_or(UpdateError::Overflow)?;
            hash.set(field, sum.to_string().into_bytes());
            UpdateValue::Integer(sum)
        }
        HashUpdate::IncrByFloat { field, by } => {
            let text = long_double::incr_by_float(hash.get(field), by.as_bytes())?;
            hash.set(field, text.clone().into_bytes());
            UpdateValue::Float(text)
        }
    };
    Ok((answer, true))
}

/// Whether an expiry change `when` holds for a key expiring at `current` (`None`: never)
/// and a new expiry `new` (`None`: never).
fn expire_holds(when: ExpireWhen, current: Option<u64>, new: Option<u64>) -> bool {
    let never = u64::MAX;
    let (current_at, new_at) = (current.unwrap_or(never), new.unwrap_or(never));
    match when {
        ExpireWhen::Always => true,
        ExpireWhen::Nx => current.is_none(),
        ExpireWhen::Xx => current.is_some(),
        ExpireWhen::Gt => current.is_some() && new_at > current_at,
        ExpireWhen::Lt => new_at < current_at,
        ExpireWhen::XxLt => current.is_some() && new_at < current_at,
    }
}

#[cfg(test)]
mod tests;
