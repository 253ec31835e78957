//! The one async API both ways in implement: [`crate::Client`] (smart) and
//! [`crate::GatewayClient`] (thin).

use std::future::Future;

use kvdb_core::Version;
use kvdb_core::proto::v1 as pb;

use crate::options::{DeleteOptions, GetOptions, PutOptions, UpdateOptions};
use crate::scan::{ScanCursor, ScanPage};
use crate::txn::{Txn, TxnReply};
use crate::update::{Action, ExpireWhen, Expiry, OnlyIf, Refusal, Updated};
use crate::value::{ClientError, HashPairs, Value};

/// Key-value operations with per-request options.
pub trait Kv: Send + Sync {
    /// Reads `key`; `None` when absent or expired.
    fn get_with(
        &self,
        key: &[u8],
        options: GetOptions,
    ) -> impl Future<Output = Result<Option<Value>, ClientError>> + Send;

    /// Writes `key`, returning the new version.
    /// [`ClientError::ConditionFailed`] when a condition did not hold.
    fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> impl Future<Output = Result<Version, ClientError>> + Send;

    /// Deletes `key`, returning whether it existed.
    fn delete_with(
        &self,
        key: &[u8],
        options: DeleteOptions,
    ) -> impl Future<Output = Result<bool, ClientError>> + Send;

    /// Applies `action` to `key` atomically at its shard, exactly once however often it is
    /// retried. [`ClientError::Refused`] when the key's value does not allow it (say, `IncrBy`
    /// on a value that is not an integer).
    fn update_with(
        &self,
        key: &[u8],
        action: Action,
        options: UpdateOptions,
    ) -> impl Future<Output = Result<Updated, ClientError>> + Send;

    /// Runs `txn` atomically at the shard of its keys' one slot, exactly once however often it
    /// is retried: the replies of its operations in order, or `None` when a watched key no
    /// longer had the version given (nothing was written then). Keys in several slots are
    /// refused with [`KvError::InvalidArgument`](kvdb_core::error::KvError) before anything is
    /// sent.
    fn txn_with(
        &self,
        txn: &Txn,
        options: UpdateOptions,
    ) -> impl Future<Output = Result<Option<Vec<TxnReply>>, ClientError>> + Send;

    /// One page of the keyspace from `cursor` ([`ScanCursor::default`] starts), examining at
    /// most `limit` stored keys of one shard: its live keys, and where to go on. A strong
    /// read at the shard's leader; see [`ScanCursor`] for what a scan guarantees.
    fn scan(
        &self,
        cursor: &ScanCursor,
        limit: u32,
    ) -> impl Future<Output = Result<ScanPage, ClientError>> + Send;

    /// [`txn_with`](Self::txn_with) with the default timeout.
    fn txn(
        &self,
        txn: &Txn,
    ) -> impl Future<Output = Result<Option<Vec<TxnReply>>, ClientError>> + Send {
        self.txn_with(txn, UpdateOptions::default())
    }

    /// Adds `by` to the integer at `key` (absent: 0), returning the sum; keeps its expiry.
    fn incr_by(
        &self,
        key: &[u8],
        by: i64,
    ) -> impl Future<Output = Result<i64, ClientError>> + Send {
        let updated = self.update_with(key, Action::IncrBy(by), UpdateOptions::default());
        async move { Ok(updated.await?.integer.unwrap_or_default()) }
    }

    /// Appends `bytes` to the value at `key`, returning the new length; keeps its expiry.
    fn append(
        &self,
        key: &[u8],
        bytes: &[u8],
    ) -> impl Future<Output = Result<u64, ClientError>> + Send {
        let action = Action::Append(bytes.to_vec());
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.length.unwrap_or_default()) }
    }

    /// Writes `value` without expiry, returning the value it replaced.
    fn get_set(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ClientError>> + Send {
        let action = Action::Set {
            value: value.to_vec(),
            expiry: Expiry::Never,
            only_if: OnlyIf::Always,
            return_old: true,
        };
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.old) }
    }

    /// Deletes `key`, returning its value.
    fn get_del(
        &self,
        key: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ClientError>> + Send {
        let updated = self.update_with(key, Action::GetDel, UpdateOptions::default());
        async move { Ok(updated.await?.old) }
    }

    /// Makes a present key expire at `at_ms` (Unix milliseconds; a past time deletes it),
    /// returning whether it was present.
    fn expire_at(
        &self,
        key: &[u8],
        at_ms: u64,
    ) -> impl Future<Output = Result<bool, ClientError>> + Send {
        let action = Action::Expire {
            expiry: Expiry::At(at_ms),
            when: ExpireWhen::Always,
        };
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.applied) }
    }

    /// Removes a key's expiry, returning whether it had one.
    fn persist(&self, key: &[u8]) -> impl Future<Output = Result<bool, ClientError>> + Send {
        let action = Action::Expire {
            expiry: Expiry::Never,
            when: ExpireWhen::Always,
        };
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.applied) }
    }

    /// Sets fields of the hash at `key` (absent: a new hash), as Redis's `HSET`, returning
    /// how many fields are new; keeps its expiry. [`Refusal::WrongType`] on a string.
    fn hset(
        &self,
        key: &[u8],
        pairs: &[(&[u8], &[u8])],
    ) -> impl Future<Output = Result<i64, ClientError>> + Send {
        let pairs = pairs
            .iter()
            .map(|(field, value)| (field.to_vec(), value.to_vec()))
            .collect();
        let action = Action::HashSet {
            pairs,
            only_new: false,
        };
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.integer.unwrap_or_default()) }
    }

    /// Removes fields of the hash at `key` (and the key with its last field), returning how
    /// many were there.
    fn hdel(
        &self,
        key: &[u8],
        fields: &[&[u8]],
    ) -> impl Future<Output = Result<i64, ClientError>> + Send {
        let action = Action::HashDel(fields.iter().map(|f| f.to_vec()).collect());
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.integer.unwrap_or_default()) }
    }

    /// Adds `by` to the integer in a hash field (absent: 0), returning the sum.
    fn hincr_by(
        &self,
        key: &[u8],
        field: &[u8],
        by: i64,
    ) -> impl Future<Output = Result<i64, ClientError>> + Send {
        let action = Action::HashIncrBy {
            field: field.to_vec(),
            by,
        };
        let updated = self.update_with(key, action, UpdateOptions::default());
        async move { Ok(updated.await?.integer.unwrap_or_default()) }
    }

    /// The pairs of the hash at `key` (absent: none), by a strong read: a small hash's in
    /// insertion order, a large one's in field byte order;
    /// [`Refusal::WrongType`] when the key holds a string.
    fn hgetall(&self, key: &[u8]) -> impl Future<Output = Result<HashPairs, ClientError>> + Send {
        let read = self.get(key);
        async move {
            match read.await? {
                None => Ok(Vec::new()),
                Some(Value {
                    hash: Some(pairs), ..
                }) => Ok(pairs),
                Some(_) => Err(ClientError::Refused(Refusal::WrongType)),
            }
        }
    }

    /// The values of `fields` in the hash at `key`, in the order named (`None`: no such
    /// field, or no such key), as Redis's `HMGET`; reads only those fields of a large hash.
    /// [`Refusal::WrongType`] when the key holds a string.
    fn hmget(
        &self,
        key: &[u8],
        fields: &[&[u8]],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, ClientError>> + Send {
        let named: Vec<Vec<u8>> = fields.iter().map(|f| f.to_vec()).collect();
        let options = GetOptions {
            hash_fields: Some(named.clone()),
            ..GetOptions::default()
        };
        let read = self.get_with(key, options);
        async move {
            let pairs = match read.await? {
                None => Vec::new(),
                Some(Value {
                    hash: Some(pairs), ..
                }) => pairs,
                Some(_) => return Err(ClientError::Refused(Refusal::WrongType)),
            };
            Ok(named
                .iter()
                .map(|f| pairs.iter().find(|(p, _)| p == f).map(|(_, v)| v.clone()))
                .collect())
        }
    }

    /// The number of fields of the hash at `key` (absent: 0), as Redis's `HLEN`, without
    /// reading them. [`Refusal::WrongType`] when the key holds a string.
    fn hlen(&self, key: &[u8]) -> impl Future<Output = Result<u64, ClientError>> + Send {
        let options = GetOptions {
            hash_fields: Some(Vec::new()),
            ..GetOptions::default()
        };
        let read = self.get_with(key, options);
        async move {
            match read.await? {
                None => Ok(0),
                Some(Value {
                    hash_len: Some(len),
                    ..
                }) => Ok(len),
                Some(_) => Err(ClientError::Refused(Refusal::WrongType)),
            }
        }
    }

    /// Strong read with the default deadline.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Value>, ClientError>> + Send {
        self.get_with(key, GetOptions::default())
    }

    /// Unconditional write with no expiry.
    fn put(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = Result<Version, ClientError>> + Send {
        self.put_with(key, value, PutOptions::default())
    }

    /// Unconditional delete.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<bool, ClientError>> + Send {
        self.delete_with(key, DeleteOptions::default())
    }

    /// Writes `value` only if the key's version is still `expected`.
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Version,
        value: &[u8],
    ) -> impl Future<Output = Result<Version, ClientError>> + Send {
        self.put_with(
            key,
            value,
            PutOptions {
                if_version: Some(expected),
                ..PutOptions::default()
            },
        )
    }
}

/// Builds the wire request of a read.
pub(crate) fn get_request(key: &[u8], options: &GetOptions) -> pb::GetRequest {
    pb::GetRequest {
        key: key.to_vec().into(),
        consistency: options.consistency.to_wire() as i32,
        hash_fields: options.hash_fields.as_ref().map(|fields| pb::HashFields {
            fields: fields.iter().map(|f| f.clone().into()).collect(),
        }),
        hash_page: None,
    }
}

/// Builds the wire request of a write.
pub(crate) fn put_request(
    key: &[u8],
    value: &[u8],
    options: &PutOptions,
    write_id: pb::WriteId,
) -> pb::PutRequest {
    pb::PutRequest {
        key: key.to_vec().into(),
        value: value.to_vec().into(),
        ttl_ms: options.ttl.map_or(0, |t| t.as_millis().max(1) as u64),
        if_version_equals: options.if_version.map(|v| v.0),
        if_not_exists: options.if_not_exists,
        write_id: Some(write_id),
    }
}

/// Builds the wire request of a delete.
pub(crate) fn delete_request(
    key: &[u8],
    options: &DeleteOptions,
    write_id: pb::WriteId,
) -> pb::DeleteRequest {
    pb::DeleteRequest {
        key: key.to_vec().into(),
        if_version_equals: options.if_version.map(|v| v.0),
        write_id: Some(write_id),
    }
}

/// Turns a read reply into the API's value.
pub(crate) fn value_of(reply: pb::GetResponse) -> Option<Value> {
    let is_hash = reply.r#type() == pb::ValueType::Hash;
    let hash: Option<HashPairs> = is_hash.then(|| {
        reply
            .fields
            .iter()
            .map(|pair| (pair.field.to_vec(), pair.value.to_vec()))
            .collect()
    });
    // A node that sends every field may leave the count 0 (no hash is empty).
    let hash_len = hash.as_ref().map(|pairs| {
        Some(reply.hash_len)
            .filter(|n| *n > 0)
            .unwrap_or(pairs.len() as u64)
    });
    reply.found.then(|| Value {
        value: reply.value.to_vec(),
        version: Version(reply.version),
        expires_at_ms: (reply.expires_at_ms != 0).then_some(reply.expires_at_ms),
        hash,
        hash_len,
    })
}

/// Turns a write reply into the API's result.
pub(crate) fn put_result(reply: pb::PutResponse) -> Result<Version, ClientError> {
    if reply.applied {
        Ok(Version(reply.version))
    } else {
        Err(ClientError::ConditionFailed {
            current: Version(reply.version),
        })
    }
}

/// Turns a delete reply into the API's result.
pub(crate) fn delete_result(reply: pb::DeleteResponse) -> Result<bool, ClientError> {
    if reply.applied {
        Ok(reply.existed)
    } else {
        Err(ClientError::ConditionFailed {
            current: Version(reply.version),
        })
    }
}
