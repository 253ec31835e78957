//! Transactions: operations on keys of one slot that a shard applies together, in one Raft
//! entry, or not at all when a watched key changed (Redis's `MULTI`/`EXEC` with `WATCH`).
//!
//! Every key of a transaction must hash to one slot: give related keys a hash tag
//! (`{user:7}:name`, `{user:7}:visits`). A transaction over several slots is refused before
//! anything is sent.

use kvdb_core::Version;
use kvdb_core::proto::v1 as pb;

use crate::api::{delete_request, put_request, put_result, value_of};
use crate::options::{DeleteOptions, PutOptions};
use crate::update::{Action, Updated, update_request, update_result};
use crate::value::{ClientError, Value};

/// A transaction being built: guards (watched versions) and operations, in order.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    guards: Vec<pb::TxnGuard>,
    ops: Vec<pb::txn_op::Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Applies only if `key` still has `version` (`Version(0)`: still absent), as the
    /// version a read returned: the transaction writes nothing otherwise.
    pub fn watch(mut self, key: &[u8], version: Version) -> Txn {
        self.guards.push(pb::TxnGuard {
            key: key.to_vec().into(),
            version: version.0,
        });
        self
    }

    /// Reads `key` as the operations before this one left it.
    pub fn get(mut self, key: &[u8]) -> Txn {
        self.ops.push(pb::txn_op::Op::Get(pb::GetRequest {
            key: key.to_vec().into(),
            consistency: 0,
            hash_fields: None,
            hash_page: None,
        }));
        self
    }

    /// Writes `key`; its options' conditions apply to this operation alone.
    pub fn put_with(mut self, key: &[u8], value: &[u8], options: PutOptions) -> Txn {
        let mut put = put_request(key, value, &options, pb::WriteId::default());
        put.write_id = None;
        self.ops.push(pb::txn_op::Op::Put(put));
        self
    }

    /// Writes `key` without expiry or condition.
    pub fn put(self, key: &[u8], value: &[u8]) -> Txn {
        self.put_with(key, value, PutOptions::default())
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: &[u8]) -> Txn {
        let mut delete = delete_request(key, &DeleteOptions::default(), pb::WriteId::default());
        delete.write_id = None;
        self.ops.push(pb::txn_op::Op::Delete(delete));
        self
    }

    /// Applies `action` to `key`.
    pub fn update(mut self, key: &[u8], action: Action) -> Txn {
        let mut update = update_request(key, &action, pb::WriteId::default());
        update.write_id = None;
        self.ops.push(pb::txn_op::Op::Update(update));
        self
    }

    /// Moves `from`'s value and expiry to `to`, replacing `to` unless `only_if_absent`.
    pub fn rename(mut self, from: &[u8], to: &[u8], only_if_absent: bool) -> Txn {
        self.ops.push(pb::txn_op::Op::Rename(pb::RenameRequest {
            key: from.to_vec().into(),
            to: to.to_vec().into(),
            only_if_absent,
        }));
        self
    }

    /// The wire request, with the caller's write id.
    pub(crate) fn request(&self, write_id: pb::WriteId) -> pb::TxnRequest {
        pb::TxnRequest {
            guards: self.guards.clone(),
            ops: self
                .ops
                .iter()
                .map(|op| pb::TxnOp {
                    op: Some(op.clone()),
                })
                .collect(),
            write_id: Some(write_id),
        }
    }
}

/// What one operation of an applied transaction found or did, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnReply {
    /// A `get`: the value, or `None` when absent.
    Got(Option<Value>),
    /// A `put`: its new version, or [`ClientError::ConditionFailed`].
    Put(Result<Version, ClientError>),
    /// A `delete`: whether the key existed.
    Deleted(bool),
    /// An `update`: what it did, or [`ClientError::Refused`].
    Updated(Result<Updated, ClientError>),
    /// A `rename`.
    Renamed(Renamed),
}

/// The outcome of a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renamed {
    /// The value moved.
    Done,
    /// The key to rename was absent.
    NoSuchKey,
    /// `only_if_absent`, and the target was present.
    TargetExists,
}

/// The replies of an applied transaction, or `None` when a watched key had changed.
pub(crate) fn txn_result(reply: pb::TxnResponse) -> Result<Option<Vec<TxnReply>>, ClientError> {
    use pb::txn_result::Result as Wire;
    if !reply.applied {
        return Ok(None);
    }
    let mut replies = Vec::with_capacity(reply.results.len());
    for result in reply.results {
        replies.push(match result.result {
            Some(Wire::Get(got)) => TxnReply::Got(value_of(got)),
            Some(Wire::Put(put)) => TxnReply::Put(put_result(put)),
            Some(Wire::Delete(delete)) => TxnReply::Deleted(delete.existed),
            Some(Wire::Update(update)) => TxnReply::Updated(update_result(update)),
            Some(Wire::Rename(outcome)) => TxnReply::Renamed(
                match pb::RenameOutcome::try_from(outcome).unwrap_or_default() {
                    pb::RenameOutcome::Renamed => Renamed::Done,
                    pb::RenameOutcome::NoSuchKey => Renamed::NoSuchKey,
                    pb::RenameOutcome::TargetExists => Renamed::TargetExists,
                },
            ),
            None => {
                return Err(ClientError::Kv(kvdb_core::error::KvError::Internal(
                    "a transaction result without a result".into(),
                )));
            }
        });
    }
    Ok(Some(replies))
}
