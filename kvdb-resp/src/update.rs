//! Redis's read-modify-write string commands (`INCR`, `APPEND`, `SETRANGE`, `GETSET`,
//! `GETDEL`, `GETEX`, `EXPIRE`, `PERSIST`, `SET` with `XX`/`GET`/`KEEPTTL`) as one KvDB
//! update each: the shard decides from the key's value, atomically and exactly once, so the
//! front door never reads and then compare-and-swaps.
//!
//! Parsing checks arguments in Redis's order and with its texts; [`request`] makes the
//! update's wire form, and [`reply`] turns the shard's answer into Redis's reply.

use bytes::Bytes;
use kvdb_core::proto::v1 as pb;

use crate::command::{Arg, Expiry, Set, integer};
use crate::error::CommandError;
use crate::hash::{self, HashWrite};
use crate::reply::Reply;

/// Redis's largest string (`proto-max-bulk-len`'s default), which `SETRANGE` checks first.
const MAX_STRING: u64 = 512 * 1024 * 1024;

/// One read-modify-write command on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The key.
    pub key: Arg,
    /// What to do.
    pub op: UpdateOp,
}

/// When a changed expiry falls, as the command gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// Milliseconds from now (may be negative: already past).
    In(i64),
    /// Unix time in milliseconds (may be in the past).
    At(i64),
}

/// The condition of `EXPIRE`-family commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// None given.
    Always,
    /// `NX`.
    Nx,
    /// `XX`.
    Xx,
    /// `GT`.
    Gt,
    /// `LT`.
    Lt,
    /// `XX` and `LT`.
    XxLt,
}

/// The read-modify-write commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOp {
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: replies the new integer.
    IncrBy(i64),
    /// `INCRBYFLOAT`, the increment as sent: replies the new value.
    IncrByFloat(Arg),
    /// `APPEND`: replies the new length.
    Append(Arg),
    /// `SETRANGE`: replies the new length.
    SetRange {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        value: Arg,
    },
    /// `SET` with `XX`, `GET` or `KEEPTTL`, and `GETSET` (`GET` set).
    Set(Set),
    /// `GETDEL`: replies the value.
    GetDel,
    /// `GETEX` with an option: replies the value; `None` persists.
    GetEx(Option<Time>),
    /// `EXPIRE`-family: replies 1 if changed (or deleted), else 0.
    Expire {
        /// The new expiry.
        time: Time,
        /// The condition.
        when: When,
    },
    /// `PERSIST`: replies 1 if an expiry was removed.
    Persist,
    /// A hash write (`HSET`, `HDEL`, `HINCRBY`...).
    Hash(HashWrite),
}

fn first(args: &[Arg]) -> Arg {
    args.first().cloned().unwrap_or_default()
}

/// `INCR`/`DECR`/`INCRBY`/`DECRBY key [n]`.
pub fn parse_incr(name: &str, args: Vec<Arg>) -> Result<Update, CommandError> {
    let by = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => integer(&args[1])?,
        _ => match integer(&args[1])? {
            i64::MIN => return Err(CommandError::DecrementOverflow),
            n => -n,
        },
    };
    Ok(Update {
        key: first(&args),
        op: UpdateOp::IncrBy(by),
    })
}

/// `SETRANGE key offset value`.
pub fn parse_setrange(args: Vec<Arg>) -> Result<Update, CommandError> {
    let offset = integer(&args[1])?;
    let offset = u64::try_from(offset).map_err(|_| CommandError::OffsetOutOfRange)?;
    let value = args[2].clone();
    // An empty value writes nothing and answers the length, as Redis does.
    if !value.is_empty() && offset + value.len() as u64 > MAX_STRING {
        return Err(CommandError::StringTooLong);
    }
    Ok(Update {
        key: first(&args),
        op: UpdateOp::SetRange { offset, value },
    })
}

/// An expiry argument in `unit_ms`, made milliseconds; Redis's overflow checks, relative
/// ones against `now_ms`.
fn time(
    arg: &[u8],
    unit_ms: i64,
    absolute: bool,
    now_ms: i64,
    command: &'static str,
) -> Result<Time, CommandError> {
    let n = integer(arg)?;
    let invalid = CommandError::InvalidExpire(command);
    let ms = n.checked_mul(unit_ms).ok_or(invalid.clone())?;
    if absolute {
        return Ok(Time::At(ms));
    }
    now_ms.checked_add(ms).ok_or(invalid)?;
    Ok(Time::In(ms))
}

/// `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT key time [NX|XX|GT|LT...]`: the options are
/// checked before the time, as Redis does.
pub fn parse_expire(
    name: &'static str,
    args: Vec<Arg>,
    now_ms: i64,
) -> Result<Update, CommandError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[2..] {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                let shown = String::from_utf8_lossy(option).into_owned();
                return Err(CommandError::UnsupportedOption(shown));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::NxAndCondition);
    }
    if gt && lt {
        return Err(CommandError::GtAndLt);
    }
    // GT already fails without an expiry, so XX adds nothing to it; with LT it does.
    let when = match (nx, xx, gt, lt) {
        (true, ..) => When::Nx,
        (_, _, true, _) => When::Gt,
        (_, true, _, true) => When::XxLt,
        (_, _, _, true) => When::Lt,
        (_, true, ..) => When::Xx,
        _ => When::Always,
    };
    let (unit_ms, absolute) = match name {
        "expire" => (1000, false),
        "pexpire" => (1, false),
        "expireat" => (1000, true),
        _ => (1, true),
    };
    let time = time(&args[1], unit_ms, absolute, now_ms, name)?;
    Ok(Update {
        key: first(&args),
        op: UpdateOp::Expire { time, when },
    })
}

/// `GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]`; `None` for `GETEX key`, which is a `GET`.
pub fn parse_getex(args: Vec<Arg>, now_ms: i64) -> Result<Option<Update>, CommandError> {
    let mut chosen: Option<(Vec<u8>, Option<&Arg>)> = None;
    let mut i = 1;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        let takes_time = matches!(option.as_slice(), b"EX" | b"PX" | b"EXAT" | b"PXAT");
        // The same option again is allowed (the last wins); two different ones are not.
        let fits = chosen.as_ref().is_none_or(|(o, _)| *o == option);
        match option.as_slice() {
            b"PERSIST" if fits => chosen = Some((option, None)),
            _ if takes_time && fits && i + 1 < args.len() => {
                chosen = Some((option, Some(&args[i + 1])));
                i += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let Some((option, arg)) = chosen else {
        return Ok(None);
    };
    let (unit_ms, absolute) = match option.as_slice() {
        b"EX" => (1000, false),
        b"PX" => (1, false),
        b"EXAT" => (1000, true),
        b"PXAT" => (1, true),
        _ => {
            return Ok(Some(Update {
                key: first(&args),
                op: UpdateOp::GetEx(None),
            }));
        }
    };
    let arg = arg.map(Vec::as_slice).unwrap_or_default();
    let n = integer(arg)?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire("getex"));
    }
    let time = time(arg, unit_ms, absolute, now_ms, "getex")?;
    Ok(Some(Update {
        key: first(&args),
        op: UpdateOp::GetEx(Some(time)),
    }))
}

fn expiry_wire(when: pb::expiry::When) -> Option<pb::Expiry> {
    Some(pb::Expiry { when: Some(when) })
}

fn time_wire(time: Time) -> Option<pb::Expiry> {
    expiry_wire(match time {
        Time::In(ms) => pb::expiry::When::TtlMs(ms),
        Time::At(ms) => pb::expiry::When::AtMs(ms),
    })
}

/// The update's wire request, under `write_id`.
pub fn request(update: &Update, write_id: pb::WriteId) -> pb::UpdateRequest {
    use pb::update_request::Action;
    let expire = |expiry, when: When| {
        Action::Expire(pb::ExpireAction {
            string_only: matches!(update.op, UpdateOp::GetEx(_)),
            expiry,
            when: match when {
                When::Always => pb::expire_action::When::Always,
                When::Nx => pb::expire_action::When::Nx,
                When::Xx => pb::expire_action::When::Xx,
                When::Gt => pb::expire_action::When::Gt,
                When::Lt => pb::expire_action::When::Lt,
                When::XxLt => pb::expire_action::When::XxLt,
            } as i32,
        })
    };
    let never = || expiry_wire(pb::expiry::When::Never(true));
    let action = match &update.op {
        UpdateOp::IncrBy(by) => Action::IncrBy(*by),
        UpdateOp::IncrByFloat(by) => Action::IncrByFloat(String::from_utf8_lossy(by).into()),
        UpdateOp::Append(bytes) => Action::Append(Bytes::from(bytes.clone())),
        UpdateOp::SetRange { offset, value } => Action::SetRange(pb::SetRangeAction {
            offset: *offset,
            value: Bytes::from(value.clone()),
        }),
        UpdateOp::Set(set) => Action::Set(pb::SetAction {
            value: Bytes::from(set.value.clone()),
            expiry: match set.expiry {
                Some(Expiry::In(ms)) => time_wire(Time::In(ms as i64)),
                Some(Expiry::At(ms)) => time_wire(Time::At(ms as i64)),
                None if set.keepttl => expiry_wire(pb::expiry::When::Keep(true)),
                None => never(),
            },
            only_if: if set.nx {
                pb::set_action::OnlyIf::Absent
            } else if set.xx {
                pb::set_action::OnlyIf::Exists
            } else {
                pb::set_action::OnlyIf::Always
            } as i32,
            return_old: set.get,
        }),
        UpdateOp::GetDel => Action::GetDel(pb::GetDelAction {}),
        UpdateOp::GetEx(time) => expire(time.map_or_else(never, time_wire), When::Always),
        UpdateOp::Expire { time, when } => expire(time_wire(*time), *when),
        UpdateOp::Persist => expire(never(), When::Always),
        UpdateOp::Hash(write) => hash::action(write),
    };
    pb::UpdateRequest {
        key: Bytes::from(update.key.clone()),
        write_id: Some(write_id),
        action: Some(action),
    }
}

/// Redis's reply to `op` for the shard's answer.
pub fn reply(op: &UpdateOp, answer: pb::UpdateResponse) -> Reply {
    use pb::update_response::Value;
    let hash_refusal = match op {
        UpdateOp::Hash(write) => hash::refusal(write, answer.error()),
        _ => None,
    };
    let refused = hash_refusal.or(match answer.error() {
        pb::UpdateError::None => None,
        pb::UpdateError::NotInteger => Some(CommandError::NotInteger),
        pb::UpdateError::Overflow => Some(CommandError::IncrementOverflow),
        pb::UpdateError::NotFloat => Some(CommandError::NotFloat),
        pb::UpdateError::NanOrInfinity => Some(CommandError::NanOrInfinity),
        pb::UpdateError::TooLarge => Some(CommandError::StringTooLong),
        pb::UpdateError::WrongType => Some(CommandError::WrongType),
        pb::UpdateError::Corrupt => Some(CommandError::CorruptValue),
    });
    if let Some(e) = refused {
        return e.into();
    }
    let old = || {
        answer
            .old
            .clone()
            .map_or(Reply::Null, |old| Reply::Bulk(old.to_vec()))
    };
    match (op, &answer.value) {
        (UpdateOp::IncrBy(_), Some(Value::Integer(n))) => Reply::Integer(*n),
        (UpdateOp::IncrByFloat(_), Some(Value::Float(text))) => Reply::Bulk(text.clone().into()),
        (UpdateOp::Append(_) | UpdateOp::SetRange { .. }, Some(Value::Length(n))) => {
            Reply::Integer(*n as i64)
        }
        (UpdateOp::Set(set), _) if set.get => old(),
        (UpdateOp::Set(_), _) if answer.applied => Reply::ok(),
        (UpdateOp::Set(_), _) => Reply::Null,
        (UpdateOp::GetDel | UpdateOp::GetEx(_), _) => old(),
        (UpdateOp::Expire { .. } | UpdateOp::Persist, _) => {
            Reply::Integer(i64::from(answer.applied))
        }
        (UpdateOp::Hash(write), _) => hash::write_reply(write, &answer).unwrap_or_else(mismatch),
        _ => mismatch(),
    }
}

/// A shard's answer that does not fit the update: a server defect, said as one.
fn mismatch() -> Reply {
    Reply::Error("ERR internal error: the shard answered an update of another kind".into())
}

/// `GETRANGE`'s slice of `value` with Redis's rules: negative indexes count from the end,
/// out-of-range ones are clamped, an empty range is an empty string.
pub fn range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return &[];
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end {
        return &[];
    }
    &value[start as usize..=end as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Arg> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn getrange_slices_like_redis() {
        let v = b"This is a string";
        assert_eq!(range(v, 0, 3), b"This");
        assert_eq!(range(v, -3, -1), b"ing");
        assert_eq!(range(v, 0, -1), v);
        assert_eq!(range(v, 10, 100), b"string");
        assert_eq!(range(v, -1, -5), b"");
        assert_eq!(range(v, 5, 2), b"");
        assert_eq!(range(b"", 0, -1), b"");
        assert_eq!(range(v, -100, 0), b"T");
    }

    #[test]
    fn expire_options_are_checked_before_the_time() {
        let err = |line: &str| {
            parse_expire("expire", argv(line), 0)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("k x foo"), "ERR Unsupported option foo");
        assert_eq!(
            err("k x nx xx"),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err("k x gt lt"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(err("k x"), "ERR value is not an integer or out of range");
        assert_eq!(
            err("k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        let both = parse_expire("pexpire", argv("k 5 lt xx"), 0).unwrap();
        assert_eq!(
            both.op,
            UpdateOp::Expire {
                time: Time::In(5),
                when: When::XxLt
            }
        );
        let ok = parse_expire("pexpireat", argv("k 5 gt"), 0).unwrap();
        assert_eq!(
            ok.op,
            UpdateOp::Expire {
                time: Time::At(5),
                when: When::Gt
            }
        );
    }

    #[test]
    fn decrby_of_the_smallest_integer_overflows_and_setrange_checks_its_offset() {
        let err = parse_incr("decrby", argv("k -9223372036854775808")).unwrap_err();
        assert_eq!(err, CommandError::DecrementOverflow);
        let err = parse_setrange(argv("k -1 v")).unwrap_err();
        assert_eq!(err, CommandError::OffsetOutOfRange);
        let err = parse_setrange(argv("k 536870912 v")).unwrap_err();
        assert_eq!(err, CommandError::StringTooLong);
        assert!(parse_setrange(argv("k 536870912 ")).is_ok());
    }

    #[test]
    fn getex_takes_one_option() {
        assert_eq!(parse_getex(argv("k"), 0), Ok(None));
        assert_eq!(
            parse_getex(argv("k ex 0"), 0),
            Err(CommandError::InvalidExpire("getex"))
        );
        assert_eq!(
            parse_getex(argv("k ex 1 px 2"), 0),
            Err(CommandError::Syntax)
        );
        assert_eq!(
            parse_getex(argv("k persist ex 1"), 0),
            Err(CommandError::Syntax)
        );
        let persist = parse_getex(argv("k PERSIST"), 0).unwrap().unwrap();
        assert_eq!(persist.op, UpdateOp::GetEx(None));
    }
}
