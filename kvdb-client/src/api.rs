//! The one async API both ways in implement: [`crate::Client`] (smart) and
//! [`crate::GatewayClient`] (thin).

use std::future::Future;

use kvdb_core::Version;
use kvdb_core::proto::v1 as pb;

use crate::options::{DeleteOptions, GetOptions, PutOptions};
use crate::value::{ClientError, Value};

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
    reply.found.then(|| Value {
        value: reply.value.to_vec(),
        version: Version(reply.version),
        expires_at_ms: (reply.expires_at_ms != 0).then_some(reply.expires_at_ms),
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
