//! What reads return and how client calls fail.

use kvdb_core::Version;
use kvdb_core::error::KvError;

/// A stored value with its version. `Value::default()` is an empty string at version 0, a
/// base for stores that build values of their own (`..Value::default()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// Version of the write that produced the value, `log_index << 16 |
    /// position`: the Raft log index of its entry and its position in that
    /// entry's batch, so versions stay unique and increasing when one entry
    /// carries several writes. The token for compare-and-swap.
    pub version: Version,
    /// Unix milliseconds at which the value expires, if it has a TTL.
    pub expires_at_ms: Option<u64>,
    /// For a hash (written with the `Hash*` actions of [`crate::Action`]), its field-value
    /// pairs in insertion order, and `value` is empty; `None` for a string.
    pub hash: Option<HashPairs>,
    /// For a hash, its number of fields, whichever of them `hash` holds
    /// ([`crate::GetOptions::hash_fields`]); `None` for a string.
    pub hash_len: Option<u64>,
}

/// A hash's field-value pairs, in insertion order.
pub type HashPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// How a client call failed, after every retry its deadline allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A condition (`if_version`, `if_not_exists`) did not hold. Nothing was
    /// written. `current` is the key's version (0 when absent).
    #[error("condition failed: current version is {current}")]
    ConditionFailed {
        /// The key's version when the condition was checked.
        current: Version,
    },
    /// The key's value refused an update (not a number, an overflow...); nothing was
    /// written.
    #[error("update refused: {0}")]
    Refused(crate::update::Refusal),
    /// The request failed with this error; retryable kinds mean the deadline
    /// ran out while retrying.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The endpoint given to the client is malformed.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint as given (the coordinators comma-joined).
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
}

impl ClientError {
    /// Whether the cluster could not be reached or could not route the
    /// request in time (as opposed to a refused request or a bad input).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Kv(
                KvError::Unavailable(_) | KvError::DeadlineExceeded | KvError::NoShardMap
            ) | ClientError::Kv(KvError::Routing(_))
        )
    }
}
