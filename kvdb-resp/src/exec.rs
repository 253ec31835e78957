//! Data commands run over the gateway's [`Executor`], as the gRPC gateway runs them: one
//! deadline per command, strong reads, and a gateway write id on every write so that the
//! executor's retries apply it once.
//!
//! A command alone sends its operations (see [`crate::plan`]) one request each, all at once
//! (see [`Store::each`]): `MGET`, `MSET`, `DEL` and `EXISTS` span shards, and KvDB has no
//! cross-shard transaction, so `MSET` alone is not atomic. `MSETNX`, `RENAME` and `EXEC` are
//! one transaction each, over keys of one slot.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use kvdb_client::wire::{Executor, WriteIds};
use kvdb_core::SLOT_COUNT;
use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;
use pb::txn_op::Op;
use pb::txn_result::Result as Done;
use tokio::time::Instant;

use crate::command::{Arg, Command, Scan};
use crate::error::{CommandError, kv_error_reply};
use crate::hash::{self, HashRead};
use crate::plan::{self, Plan};
use crate::reply::Reply;
use crate::scan::{Cursors, Position, glob_matches};

/// Runs data commands on a cluster.
pub struct Store {
    executor: Executor,
    ids: WriteIds,
    cursors: Cursors,
    /// `HSCAN` positions: the last field listed.
    hash_cursors: Cursors<Option<Vec<u8>>>,
    allow_flush: bool,
    /// In cluster mode, this node: keyless commands cover the slots it leads.
    cluster_node: Option<kvdb_core::NodeId>,
}

/// One command of an `EXEC`: a data command with its plan, or a reply already known (a
/// command about the connection, or one refused when planned).
pub enum Queued {
    /// A data command and its operations.
    Data(Command, Plan),
    /// A reply that needs no data.
    Known(Reply),
}

impl Store {
    /// A store over `executor`, with its own write ids; `allow_flush` lets `FLUSHDB` and
    /// `FLUSHALL` run; `cluster_node` (cluster mode) confines `SCAN`, `KEYS`, `DBSIZE`,
    /// `RANDOMKEY` and the flushes to the slots that node leads, as a Redis Cluster node's
    /// cover its own slots.
    pub fn new(
        executor: Executor,
        allow_flush: bool,
        cluster_node: Option<kvdb_core::NodeId>,
    ) -> Store {
        Store {
            executor,
            ids: WriteIds::new(),
            cursors: Cursors::default(),
            hash_cursors: Cursors::default(),
            allow_flush,
            cluster_node,
        }
    }

    /// `at`, or in cluster mode the first position at or after it in a slot this node leads;
    /// `None` when no such slot remains.
    fn own(&self, at: Option<Position>) -> Option<Position> {
        let Some(me) = self.cluster_node else {
            return at;
        };
        let at = at?;
        self.router()
            .map()
            .shards
            .values()
            .filter(|s| s.leader == Some(me) && s.slot_end.0 >= at.slot)
            .map(|s| (s.slot_start.0, s.slot_end.0))
            .min()
            .map(|(start, _)| {
                if start <= at.slot {
                    at
                } else {
                    Position {
                        slot: start,
                        after: None,
                    }
                }
            })
    }

    /// The router (and shard map) the executor routes by, as of now.
    pub fn router(&self) -> std::sync::Arc<kvdb_core::router::Router> {
        self.executor.cache().router()
    }

    /// Runs a data command; `None` for a command that is not one.
    pub async fn run(&self, command: Command) -> Option<Reply> {
        let listed = match command {
            Command::Scan(scan) => self.scan(scan).await,
            Command::Hash {
                key,
                read:
                    HashRead::Scan {
                        cursor,
                        count,
                        pattern,
                    },
            } => self.hscan(key, cursor, count, pattern).await,
            Command::Keys(pattern) => self.keys(&pattern).await,
            Command::DbSize => self.db_size().await,
            Command::RandomKey => self.random_key().await,
            Command::Flush(name) => self.flush(name).await,
            command => return self.run_planned(command).await,
        };
        Some(listed.unwrap_or_else(|e| kv_error_reply(&e)))
    }

    /// `HSCAN`: a page of a large hash after the field its cursor stands for; a small hash
    /// answers whole, with cursor 0, as Redis answers a small hash.
    async fn hscan(
        &self,
        key: Arg,
        cursor: u64,
        count: usize,
        pattern: Result<Option<Arg>, CommandError>,
    ) -> Result<Reply, KvError> {
        // A cursor this server did not give out still lists a small hash, which answers
        // whole whatever the cursor, as in Redis; a large hash refuses it.
        let known = self.hash_cursors.position(cursor);
        let after = known.clone().flatten();
        let req = pb::GetRequest {
            key: key.into(),
            consistency: pb::Consistency::Strong as i32,
            hash_fields: None,
            hash_page: Some(pb::HashPage {
                after: after.map(Into::into),
                limit: u32::try_from(count).unwrap_or(u32::MAX),
            }),
        };
        let got = self.executor.get(req, self.executor.deadline(None)).await?;
        if got.found && !hash::is_hash(&got) {
            return Ok(CommandError::WrongType.into());
        }
        if known.is_none() && got.hash_more {
            return Ok(CommandError::InvalidCursor.into());
        }
        let next = match (got.hash_more, got.fields.last()) {
            (true, Some(last)) => self.hash_cursors.save(Some(last.field.to_vec())),
            _ => 0,
        };
        Ok(hash::scan_page(&pattern, got.found, &got.fields, next))
    }

    /// Runs a command made of key operations (see [`crate::plan`]).
    async fn run_planned(&self, command: Command) -> Option<Reply> {
        let now = now_ms();
        let plan = match plan::plan(&command, now)? {
            Ok(plan) => plan,
            Err(refused) => return Some(refused),
        };
        let deadline = self.executor.deadline(None);
        let outcome = if plan.atomic {
            self.txn(plan.guards, plan.ops, deadline).await
        } else {
            self.each(plan.ops, deadline).await.map(|done| (true, done))
        };
        Some(match outcome {
            Ok((applied, done)) => plan::answer(&command, applied, done, now),
            Err(e) => kv_error_reply(&e),
        })
    }

    /// Runs an `EXEC`: every data command's operations as one transaction guarded by the
    /// watched versions, the replies in the commands' order; a null array when a watched key
    /// changed.
    pub async fn exec(&self, watched: Vec<pb::TxnGuard>, queued: Vec<Queued>) -> Reply {
        let now = now_ms();
        let ops: Vec<Op> = queued
            .iter()
            .filter_map(|q| match q {
                Queued::Data(_, plan) => Some(plan.ops.iter().cloned()),
                Queued::Known(_) => None,
            })
            .flatten()
            .collect();
        let (applied, done) = if ops.is_empty() && watched.is_empty() {
            (true, Vec::new())
        } else {
            match self.txn(watched, ops, self.executor.deadline(None)).await {
                Ok(outcome) => outcome,
                Err(e) => return kv_error_reply(&e),
            }
        };
        if !applied {
            return Reply::NullArray;
        }
        let mut done = done.into_iter();
        let replies = queued
            .into_iter()
            .map(|q| match q {
                Queued::Known(reply) => reply,
                Queued::Data(command, plan) => {
                    let results = done.by_ref().take(plan.ops.len()).collect();
                    plan::answer(&command, true, results, now)
                }
            })
            .collect();
        Reply::Array(replies)
    }

    /// The current version of each key (0: absent), for `WATCH`.
    pub async fn versions(&self, keys: Vec<Arg>) -> Result<Vec<pb::TxnGuard>, Reply> {
        let deadline = self.executor.deadline(None);
        let reads = keys
            .iter()
            .map(|key| {
                // The version alone: none of a hash's fields.
                Op::Get(pb::GetRequest {
                    key: Bytes::from(key.clone()),
                    consistency: pb::Consistency::Strong as i32,
                    hash_fields: Some(pb::HashFields::default()),
                    hash_page: None,
                })
            })
            .collect();
        let done = self
            .each(reads, deadline)
            .await
            .map_err(|e| kv_error_reply(&e))?;
        let guards = keys.into_iter().zip(done).map(|(key, done)| {
            let version = match done {
                Done::Get(got) if got.found => got.version,
                _ => 0,
            };
            pb::TxnGuard {
                key: key.into(),
                version,
            }
        });
        Ok(guards.collect())
    }

    /// One page of the shard that owns `at`'s slot, examining up to `limit` stored keys, and
    /// where the scan goes on (`None`: every slot is done).
    async fn page(
        &self,
        at: &Position,
        limit: usize,
        deadline: Instant,
    ) -> Result<(pb::ScanResponse, Option<Position>), KvError> {
        let page = self
            .executor
            .scan(at.request(limit as u32), deadline)
            .await?;
        let next = self.own(at.next(&page));
        Ok((page, next))
    }

    /// `SCAN`: pages from the cursor's position until about `count` keys are listed (or a
    /// few pages were read), then a cursor for the rest.
    async fn scan(&self, scan: Scan) -> Result<Reply, KvError> {
        let Some(at) = self.cursors.position(scan.cursor) else {
            return Ok(CommandError::InvalidCursor.into());
        };
        let Some(mut at) = self.own(Some(at)) else {
            return Ok(Reply::Array(vec![
                Reply::text("0"),
                Reply::Array(Vec::new()),
            ]));
        };
        let deadline = self.executor.deadline(None);
        let mut keys = Vec::new();
        let mut next = Some(at.clone());
        for _ in 0..SCAN_PAGES {
            let (page, after) = self.page(&at, scan.count, deadline).await?;
            // A shard that lists no types stores strings only.
            let types = page.types.iter().copied().chain(std::iter::repeat(0));
            keys.extend(page.keys.into_iter().zip(types).filter_map(|(key, kind)| {
                let wanted = scan
                    .type_name
                    .as_deref()
                    .is_none_or(|t| t == hash::type_name(kind))
                    && scan
                        .pattern
                        .as_deref()
                        .is_none_or(|pattern| glob_matches(pattern, &key));
                wanted.then_some(key)
            }));
            next = after;
            match &next {
                Some(position) if keys.len() < scan.count => at = position.clone(),
                _ => break,
            }
        }
        let cursor = next.map_or(0, |position| self.cursors.save(position));
        Ok(Reply::Array(vec![
            Reply::text(cursor.to_string()),
            Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.to_vec())).collect()),
        ]))
    }

    /// `KEYS`: every key of every shard, matched against `pattern`.
    async fn keys(&self, pattern: &[u8]) -> Result<Reply, KvError> {
        let deadline = self.executor.deadline(None);
        let mut keys = Vec::new();
        let mut at = self.own(Some(Position::default()));
        while let Some(position) = at {
            let (page, next) = self.page(&position, KEYS_PAGE, deadline).await?;
            keys.extend(
                page.keys
                    .into_iter()
                    .filter(|key| glob_matches(pattern, key))
                    .map(|key| Reply::Bulk(key.to_vec())),
            );
            at = next;
        }
        Ok(Reply::Array(keys))
    }

    /// `DBSIZE`: each shard's stored keys, one small page per shard.
    async fn db_size(&self) -> Result<Reply, KvError> {
        let deadline = self.executor.deadline(None);
        let mut total = 0u64;
        let mut at = self.own(Some(Position::default()));
        while let Some(position) = at {
            let (page, _) = self.page(&position, 1, deadline).await?;
            total += page.stored_keys;
            at = self.own(Position::after_shard(&page));
        }
        Ok(Reply::Integer(total as i64))
    }

    /// `RANDOMKEY`: the first live key after a random point of the keyspace (a random slot
    /// and a random key there), going round once; null when there is none.
    async fn random_key(&self) -> Result<Reply, KvError> {
        let deadline = self.executor.deadline(None);
        let seed = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let start = Position {
            slot: (seed % u64::from(SLOT_COUNT)) as u16,
            after: Some(seed.rotate_left(17).to_be_bytes().to_vec()),
        };
        let Some(start) = self
            .own(Some(start))
            .or_else(|| self.own(Some(Position::default())))
        else {
            return Ok(Reply::Null);
        };
        let mut at = start.clone();
        let mut wrapped = false;
        loop {
            let (page, next) = self.page(&at, KEYS_PAGE, deadline).await?;
            if let Some(key) = page.keys.into_iter().next() {
                return Ok(Reply::Bulk(key.to_vec()));
            }
            at = match next {
                Some(next) if !(wrapped && next.slot > start.slot) => next,
                Some(_) => return Ok(Reply::Null),
                None if wrapped => return Ok(Reply::Null),
                None => match self.own(Some(Position::default())) {
                    Some(first) => {
                        wrapped = true;
                        first
                    }
                    None => return Ok(Reply::Null),
                },
            };
        }
    }

    /// `FLUSHDB`/`FLUSHALL`, where allowed: deletes every key it lists, shard by shard, each
    /// delete exactly once. Not atomic: a key written meanwhile may survive.
    async fn flush(&self, name: &str) -> Result<Reply, KvError> {
        if !self.allow_flush {
            return Ok(CommandError::FlushDisabled(name.to_ascii_uppercase()).into());
        }
        let deadline = self.executor.deadline(None);
        let mut at = self.own(Some(Position::default()));
        while let Some(position) = at {
            let (page, next) = self.page(&position, KEYS_PAGE, deadline).await?;
            let deletes = page
                .keys
                .into_iter()
                .map(|key| {
                    Op::Delete(pb::DeleteRequest {
                        key,
                        if_version_equals: None,
                        write_id: None,
                    })
                })
                .collect();
            self.each(deletes, deadline).await?;
            at = next;
        }
        Ok(Reply::ok())
    }

    /// One transaction; whether it applied, and its results.
    async fn txn(
        &self,
        guards: Vec<pb::TxnGuard>,
        ops: Vec<Op>,
        deadline: Instant,
    ) -> Result<(bool, Vec<Done>), KvError> {
        let ticket = self.ids.next();
        let req = pb::TxnRequest {
            guards,
            ops: ops
                .into_iter()
                .map(|op| pb::TxnOp { op: Some(op) })
                .collect(),
            write_id: Some(ticket.id()),
        };
        let answer = self.executor.txn(req, deadline).await?;
        let done = answer
            .results
            .into_iter()
            .filter_map(|r| r.result)
            .collect();
        Ok((answer.applied, done))
    }

    /// Each operation its own request, up to [`OPS_IN_FLIGHT`] at once: a multi-key command
    /// costs about one round trip, not one per key, and writes that reach a shard together
    /// share its Raft entry. Operations on one key run in command order (`MSET a 1 a 2`
    /// leaves 2, `DEL a a` counts 1); a key's first failure skips its later operations. The
    /// answer is the failure that comes first in command order, if any; operations on other
    /// keys may have been applied (the command is not atomic).
    async fn each(&self, ops: Vec<Op>, deadline: Instant) -> Result<Vec<Done>, KvError> {
        let count = ops.len();
        let runs = by_key(ops).into_iter().map(|run| async move {
            let mut results = Vec::with_capacity(run.len());
            for (at, op) in run {
                let result = self.one(op, deadline).await;
                let failed = result.is_err();
                results.push((at, result));
                if failed {
                    break;
                }
            }
            results
        });
        let mut done: Vec<Option<Result<Done, KvError>>> = (0..count).map(|_| None).collect();
        let mut finished = stream::iter(runs).buffer_unordered(OPS_IN_FLIGHT);
        while let Some(results) = finished.next().await {
            for (at, result) in results {
                done[at] = Some(result);
            }
        }
        // A slot left empty follows a failure on its key, which is met first.
        done.into_iter()
            .map(|d| d.unwrap_or_else(|| Err(KvError::Internal("operation not run".into()))))
            .collect()
    }

    /// One operation as its own request; writes carry a write id of their own.
    async fn one(&self, op: Op, deadline: Instant) -> Result<Done, KvError> {
        let executor = &self.executor;
        Ok(match op {
            Op::Get(req) => Done::Get(executor.get(req, deadline).await?),
            Op::Put(mut req) => {
                let ticket = self.ids.next();
                req.write_id = Some(ticket.id());
                Done::Put(executor.put(req, deadline).await?)
            }
            Op::Delete(mut req) => {
                let ticket = self.ids.next();
                req.write_id = Some(ticket.id());
                Done::Delete(executor.delete(req, deadline).await?)
            }
            Op::Update(mut req) => {
                let ticket = self.ids.next();
                req.write_id = Some(ticket.id());
                Done::Update(executor.update(req, deadline).await?)
            }
            Op::Rename(_) => {
                return Err(KvError::Internal(
                    "a rename runs only in a transaction".into(),
                ));
            }
        })
    }
}

/// `ops` with their positions, in runs of one key each (in order within a run), the runs in
/// the order of their keys' first operation.
fn by_key(ops: Vec<Op>) -> Vec<Vec<(usize, Op)>> {
    let mut runs: Vec<Vec<(usize, Op)>> = Vec::new();
    let mut run_of: HashMap<Bytes, usize> = HashMap::with_capacity(ops.len());
    for (at, op) in ops.into_iter().enumerate() {
        let next = runs.len();
        let run = *run_of.entry(op_key(&op).clone()).or_insert(next);
        if run == next {
            runs.push(Vec::new());
        }
        runs[run].push((at, op));
    }
    runs
}

/// The key an operation names (a rename's source).
fn op_key(op: &Op) -> &Bytes {
    match op {
        Op::Get(req) => &req.key,
        Op::Put(req) => &req.key,
        Op::Delete(req) => &req.key,
        Op::Update(req) => &req.key,
        Op::Rename(req) => &req.key,
    }
}

/// Operations of one command in flight at once (see [`Store::each`]): a call stream message's
/// worth, so that a command of a million keys neither queues a million requests nor waits
/// for them one by one.
const OPS_IN_FLIGHT: usize = 256;

/// Pages one `SCAN` reads at most before answering with a cursor.
const SCAN_PAGES: usize = 16;
/// Stored keys a `KEYS` or `RANDOMKEY` page examines.
const KEYS_PAGE: usize = 1024;

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete(key: &str) -> Op {
        Op::Delete(pb::DeleteRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            if_version_equals: None,
            write_id: None,
        })
    }

    #[test]
    fn operations_on_one_key_form_one_run_in_command_order() {
        let ops = ["a", "b", "a", "c", "b", "a"].map(delete).to_vec();
        let runs: Vec<Vec<usize>> = by_key(ops)
            .into_iter()
            .map(|run| run.into_iter().map(|(at, _)| at).collect())
            .collect();
        assert_eq!(runs, vec![vec![0, 2, 5], vec![1, 4], vec![3]]);
        assert!(by_key(Vec::new()).is_empty());
    }
}
