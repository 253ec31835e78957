//! Per-request options: consistency, conditions, expiry and deadline.

use std::time::Duration;

use kvdb_core::Version;
use kvdb_core::proto::v1 as pb;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: served by the shard leader after it confirms leadership.
    #[default]
    Strong,
    /// Any replica's applied state; may be stale, spreads load over replicas.
    Eventual,
}

impl Consistency {
    /// Its wire value.
    pub(crate) fn to_wire(self) -> pb::Consistency {
        match self {
            Consistency::Strong => pb::Consistency::Strong,
            Consistency::Eventual => pb::Consistency::Eventual,
        }
    }
}

/// Options of a read.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Strong by default; eventual trades freshness for load spread.
    pub consistency: Consistency,
    /// Deadline for the whole call, retries included; the client default
    /// when `None`.
    pub timeout: Option<Duration>,
    /// For a hash, only these fields (those it has) in [`crate::Value::hash`]; all of them
    /// when `None`. A large hash then reads only those fields; [`crate::Value::hash_len`]
    /// counts the whole hash either way.
    pub hash_fields: Option<Vec<Vec<u8>>>,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Expire the value this long after the shard leader accepts the write.
    pub ttl: Option<Duration>,
    /// Apply only if the key's current version equals this.
    pub if_version: Option<Version>,
    /// Apply only if the key is absent.
    pub if_not_exists: bool,
    /// Deadline for the whole call, retries included; the client default
    /// when `None`.
    pub timeout: Option<Duration>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Delete only if the key's current version equals this.
    pub if_version: Option<Version>,
    /// Deadline for the whole call, retries included; the client default
    /// when `None`.
    pub timeout: Option<Duration>,
}

/// Options of an update.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Deadline for the whole call, retries included; the client default
    /// when `None`.
    pub timeout: Option<Duration>,
}
