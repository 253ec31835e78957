//! A data command as KvDB operations, and its Redis reply from their results: one mechanism
//! for a command run alone (each operation its own request, see `crate::exec`) and for the
//! commands of a `MULTI` run by `EXEC` (all of them one transaction).
//!
//! Pure: no I/O, the clock given.

use bytes::Bytes;
use kvdb_core::proto::v1 as pb;
use pb::txn_op::Op;
use pb::txn_result::Result as Done;

use crate::command::{Arg, Command, Expiry, Set};
use crate::error::CommandError;
use crate::hash;
use crate::reply::Reply;
use crate::update::{self, UpdateOp};

/// The operations a data command sends, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Versions keys must still have (`MSETNX`: absent), checked with the operations.
    pub guards: Vec<pb::TxnGuard>,
    /// The operations.
    pub ops: Vec<Op>,
    /// Whether they must apply together, as one transaction (`MSETNX`, `RENAME`); the others
    /// run one request per operation when alone.
    pub atomic: bool,
}

impl Plan {
    fn of(ops: Vec<Op>) -> Plan {
        Plan {
            guards: Vec::new(),
            ops,
            atomic: false,
        }
    }
}

/// The operations of a data command at `now_ms`; `None` for a command that is not one, and
/// an error reply for one refused before anything is sent.
pub fn plan(command: &Command, now_ms: u64) -> Option<Result<Plan, Reply>> {
    // The commands read this way answer a string, or a key's existence, type or expiry:
    // none needs a hash's fields, so a large hash costs them its key row only.
    let get = |key: &Arg| {
        Op::Get(pb::GetRequest {
            key: Bytes::from(key.clone()),
            consistency: pb::Consistency::Strong as i32,
            hash_fields: Some(pb::HashFields::default()),
            hash_page: None,
        })
    };
    let put = |set: &Set| -> Result<Op, Reply> {
        Ok(Op::Put(pb::PutRequest {
            key: Bytes::from(set.key.clone()),
            value: Bytes::from(set.value.clone()),
            ttl_ms: ttl_ms(set.expiry, now_ms)?,
            if_version_equals: None,
            if_not_exists: set.nx,
            write_id: None,
        }))
    };
    let delete = |key: &Arg| {
        Op::Delete(pb::DeleteRequest {
            key: Bytes::from(key.clone()),
            if_version_equals: None,
            write_id: None,
        })
    };
    let puts = |pairs: &[(Arg, Arg)]| -> Result<Vec<Op>, Reply> {
        pairs
            .iter()
            .map(|(key, value)| put(&Set::new(key.clone(), value.clone())))
            .collect()
    };
    Some(match command {
        Command::Get(key)
        | Command::Ttl { key, .. }
        | Command::Type(key)
        | Command::GetRange { key, .. }
        | Command::StrLen(key)
        | Command::ExpireTime { key, .. } => Ok(Plan::of(vec![get(key)])),
        Command::Hash { key, read } => {
            let request = pb::GetRequest {
                key: Bytes::from(key.clone()),
                consistency: pb::Consistency::Strong as i32,
                hash_fields: hash::fields_read(read),
                hash_page: None,
            };
            Ok(Plan::of(vec![Op::Get(request)]))
        }
        Command::Set(set) | Command::SetNx(set) => put(set).map(|op| Plan::of(vec![op])),
        Command::MGet(keys) | Command::Exists(keys) => Ok(Plan::of(keys.iter().map(get).collect())),
        Command::MSet(pairs) => puts(pairs).map(Plan::of),
        Command::MSetNx(pairs) => puts(pairs).map(|ops| Plan {
            guards: pairs
                .iter()
                .map(|(key, _)| pb::TxnGuard {
                    key: Bytes::from(key.clone()),
                    version: 0,
                })
                .collect(),
            ops,
            atomic: true,
        }),
        Command::Del(keys) => Ok(Plan::of(keys.iter().map(delete).collect())),
        Command::Update(update) => {
            if let UpdateOp::Set(set) = &update.op
                && let Err(e) = ttl_ms(set.expiry, now_ms)
            {
                return Some(Err(e));
            }
            let mut request = update::request(update, pb::WriteId::default());
            request.write_id = None;
            Ok(Plan::of(vec![Op::Update(request)]))
        }
        Command::Rename { from, to, nx } => Ok(Plan {
            guards: Vec::new(),
            ops: vec![Op::Rename(pb::RenameRequest {
                key: Bytes::from(from.clone()),
                to: Bytes::from(to.clone()),
                only_if_absent: *nx,
            })],
            atomic: true,
        }),
        _ => return None,
    })
}

/// Redis's reply to `command` from its operations' results, in order; `applied` is false
/// when the transaction's guards failed (`MSETNX` over a present key).
pub fn answer(command: &Command, applied: bool, results: Vec<Done>, now_ms: u64) -> Reply {
    let mut results = results.into_iter();
    let mut next = || results.next();
    let got = |done: Option<Done>| match done {
        Some(Done::Get(got)) => Ok(got.found.then_some(got)),
        _ => Err(mismatch()),
    };
    // A string read of another type of value is refused as Redis refuses it.
    let string = |done: Option<Done>| match got(done)? {
        Some(got) if hash::is_hash(&got) => Err(CommandError::WrongType.into()),
        found => Ok(found),
    };
    let reply = match command {
        Command::Get(_) => string(next()).map(|got| match got {
            Some(got) => Reply::Bulk(got.value.to_vec()),
            None => Reply::Null,
        }),
        Command::Set(_) => match next() {
            Some(Done::Put(put)) if put.applied => Ok(Reply::ok()),
            Some(Done::Put(_)) => Ok(Reply::Null),
            _ => Err(mismatch()),
        },
        Command::SetNx(_) => match next() {
            Some(Done::Put(put)) => Ok(Reply::Integer(i64::from(put.applied))),
            _ => Err(mismatch()),
        },
        // MGET answers null for a key of another type, as Redis does.
        Command::MGet(keys) => (0..keys.len())
            .map(|_| {
                got(next()).map(|got| match got {
                    Some(got) if !hash::is_hash(&got) => Reply::Bulk(got.value.to_vec()),
                    _ => Reply::Null,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Reply::Array),
        Command::MSet(_) => Ok(Reply::ok()),
        Command::MSetNx(_) => Ok(Reply::Integer(i64::from(applied))),
        Command::Del(keys) => (0..keys.len())
            .map(|_| match next() {
                Some(Done::Delete(delete)) => Ok(i64::from(delete.existed)),
                _ => Err(mismatch()),
            })
            .sum::<Result<i64, _>>()
            .map(Reply::Integer),
        // Every key named counts, repeats included, as Redis counts them.
        Command::Exists(keys) => (0..keys.len())
            .map(|_| got(next()).map(|got| i64::from(got.is_some())))
            .sum::<Result<i64, _>>()
            .map(Reply::Integer),
        Command::Ttl { millis, .. } => got(next())
            .map(|got| Reply::Integer(ttl_reply(got.map(|g| g.expires_at_ms), now_ms, *millis))),
        Command::Type(_) => got(next()).map(|got| {
            let name = got.map_or("none", |got| hash::type_name(got.r#type));
            Reply::Simple(name.into())
        }),
        Command::GetRange { start, end, .. } => string(next()).map(|got| {
            let value = got.map(|g| g.value).unwrap_or_default();
            Reply::Bulk(update::range(&value, *start, *end).to_vec())
        }),
        Command::StrLen(_) => {
            string(next()).map(|got| Reply::Integer(got.map_or(0, |g| g.value.len() as i64)))
        }
        Command::Hash { read, .. } => got(next()).map(|got| hash::read_reply(read, got)),
        Command::ExpireTime { millis, .. } => got(next()).map(|got| {
            Reply::Integer(match got.map(|g| g.expires_at_ms) {
                None => -2,
                Some(0) => -1,
                Some(at) if *millis => at as i64,
                Some(at) => (at as i64 + 500) / 1000,
            })
        }),
        Command::Update(update) => match next() {
            Some(Done::Update(answer)) => Ok(update::reply(&update.op, answer)),
            _ => Err(mismatch()),
        },
        Command::Rename { nx, .. } => match next() {
            Some(Done::Rename(outcome)) => Ok(match (pb::RenameOutcome::try_from(outcome), nx) {
                (Ok(pb::RenameOutcome::Renamed), false) => Reply::ok(),
                (Ok(pb::RenameOutcome::Renamed), true) => Reply::Integer(1),
                (Ok(pb::RenameOutcome::TargetExists), _) => Reply::Integer(0),
                (Ok(pb::RenameOutcome::NoSuchKey), _) => CommandError::NoSuchKey.into(),
                (Err(_), _) => mismatch(),
            }),
            _ => Err(mismatch()),
        },
        _ => Err(mismatch()),
    };
    reply.unwrap_or_else(|e| e)
}

/// A shard's answer that does not fit the command: a server defect, said as one.
fn mismatch() -> Reply {
    Reply::Error("ERR internal error: the shard answered an operation of another kind".into())
}

/// The put's time to live for `expiry` at `now` (0: none). A relative expiry that overflows
/// once absolute is invalid, as in Redis; an absolute one already past gets 1 ms, so the key
/// is gone at once, where Redis would delete it on the spot.
pub fn ttl_ms(expiry: Option<Expiry>, now: u64) -> Result<u64, Reply> {
    match expiry {
        None => Ok(0),
        Some(Expiry::In(ms)) => match now.checked_add(ms) {
            Some(at) if at <= i64::MAX as u64 => Ok(ms),
            _ => Err(CommandError::InvalidExpire("set").into()),
        },
        Some(Expiry::At(at)) => Ok(at.saturating_sub(now).max(1)),
    }
}

/// `TTL`/`PTTL`'s answer for a key whose expiry is `expires_at_ms` (`None`: absent; 0: none):
/// -2 absent, -1 no expiry, else the time left, seconds rounded as Redis rounds them.
fn ttl_reply(expires_at_ms: Option<u64>, now: u64, millis: bool) -> i64 {
    match expires_at_ms {
        None => -2,
        Some(0) => -1,
        Some(at) => {
            let left = at.saturating_sub(now) as i64;
            if millis { left } else { (left + 500) / 1000 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_answers_follow_redis() {
        assert_eq!(ttl_reply(None, 1_000, false), -2);
        assert_eq!(ttl_reply(Some(0), 1_000, true), -1);
        assert_eq!(ttl_reply(Some(11_400), 1_000, false), 10);
        assert_eq!(ttl_reply(Some(11_500), 1_000, false), 11);
        assert_eq!(ttl_reply(Some(11_500), 1_000, true), 10_500);
        assert_eq!(ttl_reply(Some(500), 1_000, true), 0);
    }

    #[test]
    fn expiries_become_times_to_live() {
        assert_eq!(ttl_ms(None, 5), Ok(0));
        assert_eq!(ttl_ms(Some(Expiry::In(100)), 5), Ok(100));
        assert_eq!(ttl_ms(Some(Expiry::At(105)), 5), Ok(100));
        assert_eq!(ttl_ms(Some(Expiry::At(1)), 5), Ok(1));
        assert_eq!(
            ttl_ms(Some(Expiry::In(i64::MAX as u64)), 5),
            Err(CommandError::InvalidExpire("set").into())
        );
    }

    #[test]
    fn msetnx_guards_every_key_absent_and_renames_are_atomic() {
        let pairs = vec![
            (b"{t}a".to_vec(), b"1".to_vec()),
            (b"{t}b".to_vec(), b"2".to_vec()),
        ];
        let plan = plan(&Command::MSetNx(pairs), 0).unwrap().unwrap();
        assert!(plan.atomic);
        assert_eq!(plan.guards.len(), 2);
        assert!(plan.guards.iter().all(|g| g.version == 0));
        assert_eq!(plan.ops.len(), 2);
        let guarded: Vec<&[u8]> = plan.guards.iter().map(|g| g.key.as_ref()).collect();
        let written: Vec<&[u8]> = plan
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(put) => put.key.as_ref(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(guarded, [&b"{t}a"[..], b"{t}b"]);
        assert_eq!(written, [&b"{t}a"[..], b"{t}b"]);
        let rename = Command::Rename {
            from: b"a".to_vec(),
            to: b"b".to_vec(),
            nx: true,
        };
        assert!(plan_of(&rename).atomic);
        assert!(!plan_of(&Command::Get(b"a".to_vec())).atomic);
        assert!(super::plan(&Command::Ping(None), 0).is_none());
    }

    fn plan_of(command: &Command) -> Plan {
        plan(command, 0).unwrap().unwrap()
    }

    #[test]
    fn key_commands_read_no_field_of_a_hash() {
        let key = b"k".to_vec();
        for command in [
            Command::Get(key.clone()),
            Command::Type(key.clone()),
            Command::StrLen(key.clone()),
            Command::Exists(vec![key.clone(), key.clone()]),
            Command::MGet(vec![key.clone()]),
        ] {
            for op in plan_of(&command).ops {
                let Op::Get(get) = op else {
                    panic!("{command:?} reads");
                };
                assert_eq!(
                    get.hash_fields,
                    Some(pb::HashFields::default()),
                    "{command:?}"
                );
            }
        }
        let read = crate::hash::HashRead::GetAll;
        let Op::Get(get) = &plan_of(&Command::Hash { key, read }).ops[0] else {
            panic!("HGETALL reads");
        };
        assert_eq!(get.hash_fields, None, "HGETALL reads every field");
    }

    #[test]
    fn replies_come_from_results_in_order() {
        let found = |value: &[u8]| {
            Done::Get(pb::GetResponse {
                found: true,
                value: value.to_vec().into(),
                version: 1,
                ..Default::default()
            })
        };
        let absent = Done::Get(pb::GetResponse::default());
        let mget = Command::MGet(vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            answer(&mget, true, vec![found(b"1"), absent.clone()], 0),
            Reply::Array(vec![Reply::Bulk(b"1".to_vec()), Reply::Null])
        );
        let exists = Command::Exists(vec![b"a".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            answer(&exists, true, vec![found(b"1"), found(b"1"), absent], 0),
            Reply::Integer(2)
        );
        let msetnx = Command::MSetNx(vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(answer(&msetnx, false, Vec::new(), 0), Reply::Integer(0));
        let rename = Command::Rename {
            from: b"a".to_vec(),
            to: b"b".to_vec(),
            nx: false,
        };
        let missing = Done::Rename(pb::RenameOutcome::NoSuchKey as i32);
        assert_eq!(
            answer(&rename, true, vec![missing], 0),
            Reply::Error("ERR no such key".into())
        );
        // A result of the wrong kind is a defect, not a silent wrong answer.
        assert!(matches!(
            answer(&Command::Get(b"a".to_vec()), true, Vec::new(), 0),
            Reply::Error(_)
        ));
    }
}
