//! Data commands run over the gateway's [`Executor`], as the gRPC gateway runs them: one
//! deadline per command, strong reads, and a gateway write id on every write so that the
//! executor's retries apply it once.
//!
//! Multi-key commands (`MGET`, `MSET`, `DEL`, `EXISTS`) run key by key, in order: keys live in
//! different shards, and KvDB has no cross-shard transaction. `MSET` is therefore not atomic.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kvdb_client::wire::{Executor, WriteIds};
use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;
use tokio::time::Instant;

use crate::command::{Arg, Command, Expiry, Set, Update};
use crate::error::{CommandError, kv_error_reply};
use crate::reply::Reply;
use crate::update;

/// Runs data commands on a cluster.
pub struct Store {
    executor: Executor,
    ids: WriteIds,
}

impl Store {
    /// A store over `executor`, with its own write ids.
    pub fn new(executor: Executor) -> Store {
        Store {
            executor,
            ids: WriteIds::new(),
        }
    }

    /// Runs a data command; `None` for a command that is not one.
    pub async fn run(&self, command: Command) -> Option<Reply> {
        let deadline = self.executor.deadline(None);
        let run = Run {
            store: self,
            deadline,
        };
        let outcome = match command {
            Command::Get(key) => run.get(key).await.map(|got| match got {
                Some(value) => Reply::Bulk(value.value.to_vec()),
                None => Reply::Null,
            }),
            Command::Set(set) => run.set(set).await.map(|applied| match applied {
                Ok(true) => Reply::ok(),
                Ok(false) => Reply::Null,
                Err(e) => e.into(),
            }),
            Command::SetNx(set) => run.set(set).await.map(|applied| match applied {
                Ok(applied) => Reply::Integer(i64::from(applied)),
                Err(e) => e.into(),
            }),
            Command::MGet(keys) => run.mget(keys).await,
            Command::MSet(pairs) => run.mset(pairs).await,
            Command::Del(keys) => run.del(keys).await,
            Command::Exists(keys) => run.exists(keys).await,
            Command::Ttl { key, millis } => run.ttl(key, millis).await,
            Command::Update(update) => run.update(update).await,
            Command::GetRange { key, start, end } => run.get(key).await.map(|got| {
                let value = got.map(|g| g.value).unwrap_or_default();
                Reply::Bulk(update::range(&value, start, end).to_vec())
            }),
            Command::StrLen(key) => run
                .get(key)
                .await
                .map(|got| Reply::Integer(got.map_or(0, |g| g.value.len() as i64))),
            Command::ExpireTime { key, millis } => run.get(key).await.map(|got| {
                Reply::Integer(match got.map(|g| g.expires_at_ms) {
                    None => -2,
                    Some(0) => -1,
                    Some(at) if millis => at as i64,
                    Some(at) => (at as i64 + 500) / 1000,
                })
            }),
            Command::Type(key) => run
                .get(key)
                .await
                .map(|got| Reply::Simple(if got.is_some() { "string" } else { "none" }.into())),
            _ => return None,
        };
        Some(outcome.unwrap_or_else(|e| kv_error_reply(&e)))
    }
}

/// One command's run: the store and the deadline every request of the command shares.
struct Run<'a> {
    store: &'a Store,
    deadline: Instant,
}

impl Run<'_> {
    async fn get(&self, key: Arg) -> Result<Option<pb::GetResponse>, KvError> {
        let req = pb::GetRequest {
            key: Bytes::from(key),
            consistency: pb::Consistency::Strong as i32,
        };
        let got = self.store.executor.get(req, self.deadline).await?;
        Ok(got.found.then_some(got))
    }

    /// Whether the write applied (`NX` may refuse it); the inner error is an expiry that
    /// overflows once made absolute.
    async fn set(&self, set: Set) -> Result<Result<bool, CommandError>, KvError> {
        let ttl_ms = match ttl_ms(set.expiry, now_ms()) {
            Ok(ttl) => ttl,
            Err(e) => return Ok(Err(e)),
        };
        let ticket = self.store.ids.next();
        let req = pb::PutRequest {
            key: Bytes::from(set.key),
            value: Bytes::from(set.value),
            ttl_ms,
            if_version_equals: None,
            if_not_exists: set.nx,
            write_id: Some(ticket.id()),
        };
        let put = self.store.executor.put(req, self.deadline).await?;
        Ok(Ok(put.applied))
    }

    /// A read-modify-write command, one update at the key's shard.
    async fn update(&self, update: Update) -> Result<Reply, KvError> {
        if let update::UpdateOp::Set(set) = &update.op
            && let Err(e) = ttl_ms(set.expiry, now_ms())
        {
            return Ok(e.into());
        }
        let ticket = self.store.ids.next();
        let req = update::request(&update, ticket.id());
        let answer = self.store.executor.update(req, self.deadline).await?;
        Ok(update::reply(&update.op, answer))
    }

    async fn delete(&self, key: Arg) -> Result<bool, KvError> {
        let ticket = self.store.ids.next();
        let req = pb::DeleteRequest {
            key: Bytes::from(key),
            if_version_equals: None,
            write_id: Some(ticket.id()),
        };
        Ok(self
            .store
            .executor
            .delete(req, self.deadline)
            .await?
            .existed)
    }

    async fn mget(&self, keys: Vec<Arg>) -> Result<Reply, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(match self.get(key).await? {
                Some(got) => Reply::Bulk(got.value.to_vec()),
                None => Reply::Null,
            });
        }
        Ok(Reply::Array(values))
    }

    async fn mset(&self, pairs: Vec<(Arg, Arg)>) -> Result<Reply, KvError> {
        for (key, value) in pairs {
            let set = Set::new(key, value);
            if let Err(e) = self.set(set).await? {
                return Ok(e.into());
            }
        }
        Ok(Reply::ok())
    }

    async fn del(&self, keys: Vec<Arg>) -> Result<Reply, KvError> {
        let mut deleted = 0;
        for key in keys {
            deleted += i64::from(self.delete(key).await?);
        }
        Ok(Reply::Integer(deleted))
    }

    /// Counts every key named, repeats included, as Redis does.
    async fn exists(&self, keys: Vec<Arg>) -> Result<Reply, KvError> {
        let mut found = 0;
        for key in keys {
            found += i64::from(self.get(key).await?.is_some());
        }
        Ok(Reply::Integer(found))
    }

    async fn ttl(&self, key: Arg, millis: bool) -> Result<Reply, KvError> {
        let got = self.get(key).await?;
        Ok(Reply::Integer(ttl_reply(
            got.map(|g| g.expires_at_ms),
            now_ms(),
            millis,
        )))
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The put's time to live for `expiry` at `now` (0: none). A relative expiry that overflows
/// once absolute is invalid, as in Redis; an absolute one already past gets 1 ms, so the key
/// is gone at once, where Redis would delete it on the spot.
fn ttl_ms(expiry: Option<Expiry>, now: u64) -> Result<u64, CommandError> {
    match expiry {
        None => Ok(0),
        Some(Expiry::In(ms)) => match now.checked_add(ms) {
            Some(at) if at <= i64::MAX as u64 => Ok(ms),
            _ => Err(CommandError::InvalidExpire("set")),
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
            Err(CommandError::InvalidExpire("set"))
        );
    }
}
