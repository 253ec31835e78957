//! Redis's hash commands. Writes (`HSET`, `HSETNX`, `HMSET`, `HDEL`, `HINCRBY`,
//! `HINCRBYFLOAT`) are one KvDB update each, decided by the shard like the string
//! read-modify-write commands (see `crate::update`); reads are one read of the key, whose
//! reply carries the hash's pairs in insertion order, answered here.
//!
//! Parsing checks arguments in Redis's order and with its texts. A read carries the whole
//! hash (a small one from its key's record, kvdb-core's `hash_value`; a large one gathered
//! from its member rows, `member_rows`), so `HSCAN` answers every pair at once with cursor
//! 0, which Redis's `SCAN` contract allows.

use kvdb_core::proto::v1 as pb;
use kvdb_core::redis_numbers::long_double::{self, LongDoubleError};

use crate::command::{Arg, integer, parse_pairs};
use crate::error::CommandError;
use crate::reply::Reply;
use crate::scan::glob_matches;
use crate::update::{Update, UpdateOp};

/// A hash read: what to answer from the key's pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashRead {
    /// `HGET key field`.
    Get(Arg),
    /// `HMGET key field...`.
    MGet(Vec<Arg>),
    /// `HGETALL key`.
    GetAll,
    /// `HEXISTS key field`.
    Exists(Arg),
    /// `HLEN key`.
    Len,
    /// `HKEYS key`.
    Keys,
    /// `HVALS key`.
    Vals,
    /// `HSTRLEN key field`.
    StrLen(Arg),
    /// `HSCAN key cursor [MATCH pattern] [COUNT count]`: a small hash whole with cursor 0, a
    /// large one a page at a time.
    Scan {
        /// The cursor, a number the server gave out (0 starts).
        cursor: u64,
        /// About how many fields a page holds (Redis's default: 10).
        count: usize,
        /// Only fields matching this glob; or the error its options get, which Redis answers
        /// only once it found a hash under the key (a missing key scans empty, a string is
        /// `WRONGTYPE`).
        pattern: Result<Option<Arg>, CommandError>,
    },
    /// `HRANDFIELD key [count [WITHVALUES]]`.
    RandField {
        /// How many (negative: that many, repeats allowed); `None` answers one field.
        count: Option<i64>,
        /// Answer each field's value after it.
        with_values: bool,
    },
}

/// A hash write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashWrite {
    /// `HSET`, `HMSET` (`ok`: replies `OK`) and `HSETNX` (`only_new`).
    Set {
        /// The pairs.
        pairs: Vec<(Arg, Arg)>,
        /// Only fields not there yet.
        only_new: bool,
        /// Reply `OK` rather than the count of new fields (`HMSET`).
        ok: bool,
    },
    /// `HDEL key field...`.
    Del(Vec<Arg>),
    /// `HINCRBY key field n`.
    IncrBy {
        /// The field.
        field: Arg,
        /// The increment.
        by: i64,
    },
    /// `HINCRBYFLOAT key field n`, the increment as sent.
    IncrByFloat {
        /// The field.
        field: Arg,
        /// The increment.
        by: Arg,
    },
}

/// The most fields `HRANDFIELD` with a negative count answers.
pub const MAX_REPEATED_FIELDS: i64 = 1 << 20;

/// Parses a hash read (the key first in `args`); the arity is already checked.
pub fn parse_read(name: &str, mut args: Vec<Arg>) -> Result<(Arg, HashRead), CommandError> {
    let key = args.remove(0);
    let first = || args.first().cloned().unwrap_or_default();
    let read = match name {
        "hget" => HashRead::Get(first()),
        "hmget" => HashRead::MGet(args.clone()),
        "hgetall" => HashRead::GetAll,
        "hexists" => HashRead::Exists(first()),
        "hlen" => HashRead::Len,
        "hkeys" => HashRead::Keys,
        "hvals" => HashRead::Vals,
        "hstrlen" => HashRead::StrLen(first()),
        "hscan" => parse_scan(&args)?,
        _ => parse_randfield(&args)?,
    };
    Ok((key, read))
}

/// Fields an `HSCAN` page holds without `COUNT`, as in Redis.
pub const SCAN_DEFAULT_COUNT: usize = 10;

/// `HSCAN`'s cursor and options. The cursor must be a number.
fn parse_scan(args: &[Arg]) -> Result<HashRead, CommandError> {
    // Redis reads it with strtoul, which takes a minus sign too.
    let cursor = std::str::from_utf8(&args[0]).ok();
    let cursor = cursor
        .and_then(|c| {
            c.parse::<u64>()
                .ok()
                .or(c.parse::<i64>().ok().map(|n| n as u64))
        })
        .ok_or(CommandError::InvalidCursor)?;
    let options = scan_options(&args[1..]);
    let count = options.as_ref().map_or(SCAN_DEFAULT_COUNT, |o| o.1);
    Ok(HashRead::Scan {
        cursor,
        count,
        pattern: options.map(|o| o.0),
    })
}

/// `HSCAN`'s `MATCH` pattern and `COUNT`, its options checked.
fn scan_options(args: &[Arg]) -> Result<(Option<Arg>, usize), CommandError> {
    let mut pattern = None;
    let mut count = SCAN_DEFAULT_COUNT;
    for option in args.chunks(2) {
        let [name, value] = option else {
            return Err(CommandError::Syntax);
        };
        if name.eq_ignore_ascii_case(b"match") {
            pattern = Some(value.clone());
        } else if name.eq_ignore_ascii_case(b"count") {
            let n = integer(value)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok((pattern, count))
}

/// `HRANDFIELD`'s count and `WITHVALUES`, checked as Redis checks them.
fn parse_randfield(args: &[Arg]) -> Result<HashRead, CommandError> {
    let Some(count) = args.first() else {
        return Ok(HashRead::RandField {
            count: None,
            with_values: false,
        });
    };
    let count = integer(count)?;
    if count == i64::MIN {
        return Err(CommandError::CountOutOfRange);
    }
    // A negative count repeats fields, so only a cap bounds its reply; Redis would build it.
    if count < -MAX_REPEATED_FIELDS {
        return Err(CommandError::TooManyRepeats(MAX_REPEATED_FIELDS));
    }
    let with_values = match &args[1..] {
        [] => false,
        [option] if option.eq_ignore_ascii_case(b"withvalues") => true,
        _ => return Err(CommandError::Syntax),
    };
    // Redis's bound, so that doubling for values cannot overflow.
    if with_values && count.unsigned_abs() > (i64::MAX / 2) as u64 {
        return Err(CommandError::ValueOutOfRange);
    }
    Ok(HashRead::RandField {
        count: Some(count),
        with_values,
    })
}

/// Parses a hash write (the key first in `args`); the arity is already checked.
pub fn parse_write(name: &'static str, mut args: Vec<Arg>) -> Result<Update, CommandError> {
    let key = args.remove(0);
    let op = match name {
        "hset" | "hmset" | "hsetnx" => HashWrite::Set {
            pairs: parse_pairs(name, args)?,
            only_new: name == "hsetnx",
            ok: name == "hmset",
        },
        "hdel" => HashWrite::Del(args),
        "hincrby" => HashWrite::IncrBy {
            by: integer(&args[1])?,
            field: args.swap_remove(0),
        },
        _ => {
            let by = args.pop().unwrap_or_default();
            match long_double::check_increment(&by) {
                Ok(()) => {}
                Err(LongDoubleError::NotFloat) => return Err(CommandError::NotFloat),
                Err(LongDoubleError::NanOrInfinity) => {
                    return Err(CommandError::NanOrInfinityValue);
                }
            }
            HashWrite::IncrByFloat {
                field: args.swap_remove(0),
                by,
            }
        }
    };
    Ok(Update {
        key,
        op: UpdateOp::Hash(op),
    })
}

/// The update action of a hash write.
pub fn action(write: &HashWrite) -> pb::update_request::Action {
    use pb::update_request::Action;
    match write {
        HashWrite::Set {
            pairs, only_new, ..
        } => Action::HashSet(pb::HashSetAction {
            fields: pairs
                .iter()
                .map(|(field, value)| pb::HashField {
                    field: field.clone().into(),
                    value: value.clone().into(),
                })
                .collect(),
            only_new: *only_new,
        }),
        HashWrite::Del(fields) => Action::HashDel(pb::HashDelAction {
            fields: fields.iter().map(|f| f.clone().into()).collect(),
        }),
        HashWrite::IncrBy { field, by } => Action::HashIncrBy(pb::HashIncrByAction {
            field: field.clone().into(),
            by: *by,
        }),
        HashWrite::IncrByFloat { field, by } => {
            Action::HashIncrByFloat(pb::HashIncrByFloatAction {
                field: field.clone().into(),
                by: String::from_utf8_lossy(by).into_owned(),
            })
        }
    }
}

/// Redis's reply to a hash write the shard applied.
pub fn write_reply(write: &HashWrite, answer: &pb::UpdateResponse) -> Option<Reply> {
    use pb::update_response::Value;
    Some(match (write, &answer.value) {
        (HashWrite::Set { ok: true, .. }, _) => Reply::ok(),
        (HashWrite::Set { .. } | HashWrite::Del(_), Some(Value::Integer(n))) => Reply::Integer(*n),
        (HashWrite::IncrBy { .. }, Some(Value::Integer(n))) => Reply::Integer(*n),
        (HashWrite::IncrByFloat { .. }, Some(Value::Float(text))) => {
            Reply::Bulk(text.clone().into_bytes())
        }
        _ => return None,
    })
}

/// The error a hash write's refusal stands for, in Redis's words where the hash commands
/// word it their own way.
pub fn refusal(write: &HashWrite, error: pb::UpdateError) -> Option<CommandError> {
    Some(match (write, error) {
        (HashWrite::IncrBy { .. }, pb::UpdateError::NotInteger) => CommandError::HashNotInteger,
        (HashWrite::IncrByFloat { .. }, pb::UpdateError::NotFloat) => CommandError::HashNotFloat,
        (_, pb::UpdateError::TooLarge) => CommandError::HashTooLarge,
        _ => return None,
    })
}

/// Redis's name (`TYPE`, `SCAN ... TYPE`) of a read's or a scan's value type; a type this
/// build does not know reads as a string, as every value did before types.
pub fn type_name(value_type: i32) -> &'static str {
    match pb::ValueType::try_from(value_type) {
        Ok(pb::ValueType::Hash) => "hash",
        _ => "string",
    }
}

/// Whether a read found a hash.
pub fn is_hash(got: &pb::GetResponse) -> bool {
    got.found && got.r#type() == pb::ValueType::Hash
}

/// The fields a hash read needs from the key's shard (`None`: all of them), so that a large
/// hash is read only in part for `HGET`, `HMGET`, `HEXISTS`, `HSTRLEN` and `HLEN`.
pub fn fields_read(read: &HashRead) -> Option<pb::HashFields> {
    let fields = match read {
        HashRead::Get(field) | HashRead::Exists(field) | HashRead::StrLen(field) => {
            vec![field.clone()]
        }
        HashRead::MGet(fields) => fields.clone(),
        HashRead::Len => Vec::new(),
        HashRead::GetAll
        | HashRead::Keys
        | HashRead::Vals
        | HashRead::Scan { .. }
        | HashRead::RandField { .. } => return None,
    };
    Some(pb::HashFields {
        fields: fields.into_iter().map(Into::into).collect(),
    })
}

/// `HSCAN`'s reply: the next cursor and the pairs of `pairs` that `pattern` matches, or the
/// error of its options when the hash exists.
pub fn scan_page(
    pattern: &Result<Option<Arg>, CommandError>,
    exists: bool,
    pairs: &[pb::HashField],
    next: u64,
) -> Reply {
    let pattern = match pattern {
        Err(e) if exists => return e.clone().into(),
        Err(_) => None,
        Ok(pattern) => pattern.as_ref(),
    };
    let bulk = |bytes: &[u8]| Reply::Bulk(bytes.to_vec());
    let matching = pairs
        .iter()
        .filter(|p| pattern.is_none_or(|g| glob_matches(g, &p.field)))
        .flat_map(|p| [bulk(&p.field), bulk(&p.value)]);
    Reply::Array(vec![
        bulk(next.to_string().as_bytes()),
        Reply::Array(matching.collect()),
    ])
}

/// Redis's reply to a hash read of a key whose read answered `got` (`None`: absent).
pub fn read_reply(read: &HashRead, got: Option<pb::GetResponse>) -> Reply {
    if got.as_ref().is_some_and(|g| !is_hash(g)) {
        return CommandError::WrongType.into();
    }
    let exists = got.is_some();
    // A reply that carries only some fields counts the hash in `hash_len`; one from a node
    // that sends every field may leave it 0 (no hash is empty).
    let len = got.as_ref().map_or(0, |g| {
        if g.hash_len > 0 {
            g.hash_len as usize
        } else {
            g.fields.len()
        }
    });
    let pairs = got.map(|g| g.fields).unwrap_or_default();
    let find = |field: &[u8]| pairs.iter().find(|p| p.field.as_ref() == field);
    let bulk = |bytes: &[u8]| Reply::Bulk(bytes.to_vec());
    match read {
        HashRead::Get(field) => find(field).map_or(Reply::Null, |p| bulk(&p.value)),
        HashRead::MGet(fields) => {
            // One pass over the hash however many fields are named.
            let values: std::collections::HashMap<&[u8], &[u8]> = pairs
                .iter()
                .map(|p| (p.field.as_ref(), p.value.as_ref()))
                .collect();
            Reply::Array(
                fields
                    .iter()
                    .map(|f| values.get(f.as_slice()).map_or(Reply::Null, |v| bulk(v)))
                    .collect(),
            )
        }
        HashRead::GetAll => Reply::Map(
            pairs
                .iter()
                .map(|p| (bulk(&p.field), bulk(&p.value)))
                .collect(),
        ),
        HashRead::Exists(field) => Reply::Integer(i64::from(find(field).is_some())),
        HashRead::Len => Reply::Integer(len as i64),
        HashRead::Keys => Reply::Array(pairs.iter().map(|p| bulk(&p.field)).collect()),
        HashRead::Vals => Reply::Array(pairs.iter().map(|p| bulk(&p.value)).collect()),
        HashRead::StrLen(field) => Reply::Integer(find(field).map_or(0, |p| p.value.len() as i64)),
        HashRead::Scan { pattern, .. } => scan_page(pattern, exists, &pairs, 0),
        HashRead::RandField { count, with_values } => {
            let picked = |indexes: Vec<usize>| {
                let items = indexes.into_iter().map(|i| &pairs[i]);
                if *with_values {
                    Reply::Pairs(items.map(|p| (bulk(&p.field), bulk(&p.value))).collect())
                } else {
                    Reply::Array(items.map(|p| bulk(&p.field)).collect())
                }
            };
            match count {
                None if !exists => Reply::Null,
                None => bulk(&pairs[random_indexes(pairs.len(), 1, true)[0]].field),
                Some(_) if !exists => Reply::Array(Vec::new()),
                Some(n) if *n < 0 => picked(random_indexes(pairs.len(), n.unsigned_abs(), true)),
                Some(n) => picked(random_indexes(pairs.len(), *n as u64, false)),
            }
        }
    }
}

/// `count` indexes below `len` (> 0) picked at random: with repeats, or distinct (then at most
/// `len`, in order when all are taken, as Redis answers a count past the hash's size).
fn random_indexes(len: usize, count: u64, repeats: bool) -> Vec<usize> {
    let mut next = random_source();
    if repeats {
        return (0..count).map(|_| (next() % len as u64) as usize).collect();
    }
    if count >= len as u64 {
        return (0..len).collect();
    }
    // A partial Fisher-Yates shuffle: the first `count` places are the pick.
    let mut all: Vec<usize> = (0..len).collect();
    for i in 0..count as usize {
        let j = i + (next() % (len - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(count as usize);
    all
}

/// A xorshift generator seeded from the standard library's per-process random keys: picks
/// for `HRANDFIELD`, which need no more than to differ from call to call.
fn random_source() -> impl FnMut() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut state = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Arg> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn writes_check_their_arguments_as_redis_does() {
        let err = |name, line| parse_write(name, argv(line)).unwrap_err().to_string();
        assert_eq!(
            err("hset", "k a 1 b"),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(
            err("hincrby", "k f x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("hincrbyfloat", "k f abc"),
            "ERR value is not a valid float"
        );
        assert_eq!(
            err("hincrbyfloat", "k f -inf"),
            "ERR value is NaN or Infinity"
        );
        let set = parse_write("hsetnx", argv("k f v")).unwrap();
        assert_eq!(
            set.op,
            UpdateOp::Hash(HashWrite::Set {
                pairs: vec![(b"f".to_vec(), b"v".to_vec())],
                only_new: true,
                ok: false,
            })
        );
    }

    #[test]
    fn randfield_and_scan_options_are_checked() {
        let err = |name, line| parse_read(name, argv(line)).unwrap_err().to_string();
        assert_eq!(
            err("hrandfield", "k withvalues"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err("hrandfield", "k 1 foo"), "ERR syntax error");
        assert_eq!(
            err("hrandfield", "k -9223372036854775808"),
            "ERR value is out of range, value must between -9223372036854775807 and \
             9223372036854775807"
        );
        assert_eq!(
            err("hrandfield", "k -1099511627776"),
            "ERR HRANDFIELD with a negative count answers at most 1048576 fields in KvDB"
        );
        assert_eq!(err("hscan", "k x"), "ERR invalid cursor");
        // Option errors wait for the key: a missing one scans empty, as in Redis.
        let (_, bad) = parse_read("hscan", argv("k 0 count 0")).unwrap();
        let empty = Reply::Array(vec![Reply::Bulk(b"0".to_vec()), Reply::Array(Vec::new())]);
        assert_eq!(read_reply(&bad, None), empty);
        let hash = pb::GetResponse {
            found: true,
            r#type: pb::ValueType::Hash as i32,
            ..Default::default()
        };
        assert_eq!(read_reply(&bad, Some(hash)), CommandError::Syntax.into());
        let (_, bad) = parse_read("hscan", argv("k 0 match")).unwrap();
        assert_eq!(
            bad,
            HashRead::Scan {
                cursor: 0,
                count: SCAN_DEFAULT_COUNT,
                pattern: Err(CommandError::Syntax)
            }
        );
    }

    #[test]
    fn random_picks_stay_in_range_and_distinct_picks_differ() {
        for _ in 0..50 {
            let picks = random_indexes(5, 3, false);
            assert_eq!(picks.len(), 3);
            let mut sorted = picks.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3, "{picks:?}");
            assert!(picks.iter().all(|i| *i < 5));
            assert!(random_indexes(2, 7, true).iter().all(|i| *i < 2));
        }
        assert_eq!(random_indexes(3, 9, false), [0, 1, 2]);
    }

    #[test]
    fn reads_of_a_string_are_refused_and_of_nothing_are_empty() {
        let string = pb::GetResponse {
            found: true,
            value: b"v".to_vec().into(),
            ..Default::default()
        };
        let refused = read_reply(&HashRead::Len, Some(string));
        assert_eq!(refused, CommandError::WrongType.into());
        assert_eq!(read_reply(&HashRead::Len, None), Reply::Integer(0));
        let none = HashRead::RandField {
            count: None,
            with_values: false,
        };
        assert_eq!(read_reply(&none, None), Reply::Null);
    }

    #[test]
    fn hscan_keeps_its_cursor_and_count() {
        let (_, read) = parse_read("hscan", argv("k 42 count 5 match f*")).unwrap();
        assert_eq!(
            read,
            HashRead::Scan {
                cursor: 42,
                count: 5,
                pattern: Ok(Some(b"f*".to_vec())),
            }
        );
        let (_, read) = parse_read("hscan", argv("k -1")).unwrap();
        assert_eq!(
            read,
            HashRead::Scan {
                cursor: u64::MAX,
                count: SCAN_DEFAULT_COUNT,
                pattern: Ok(None),
            }
        );
    }

    #[test]
    fn reads_of_named_fields_ask_the_shard_for_those_fields_only() {
        let asked = |name: &str, args: &str| {
            let (_, read) = parse_read(name, argv(args)).unwrap();
            fields_read(&read).map(|f| f.fields.iter().map(|b| b.to_vec()).collect::<Vec<_>>())
        };
        assert_eq!(asked("hget", "k f"), Some(vec![b"f".to_vec()]));
        assert_eq!(
            asked("hmget", "k a b"),
            Some(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(asked("hexists", "k f"), Some(vec![b"f".to_vec()]));
        assert_eq!(asked("hstrlen", "k f"), Some(vec![b"f".to_vec()]));
        assert_eq!(asked("hlen", "k"), Some(Vec::new()));
        for (name, args) in [
            ("hgetall", "k"),
            ("hkeys", "k"),
            ("hvals", "k"),
            ("hscan", "k 0"),
            ("hrandfield", "k 2"),
        ] {
            assert_eq!(asked(name, args), None, "{name}");
        }
        // HLEN answers the count a partial read carries.
        let got = pb::GetResponse {
            found: true,
            r#type: pb::ValueType::Hash as i32,
            hash_len: 300,
            ..Default::default()
        };
        assert_eq!(read_reply(&HashRead::Len, Some(got)), Reply::Integer(300));
    }
}
