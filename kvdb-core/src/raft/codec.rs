//! The byte encoding of everything Raft writes to disk or sends to a peer.
//! postcard: compact and fast; every type involved derives serde.

use serde::{Serialize, de::DeserializeOwned};

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("raft codec: {0}")]
pub struct CodecError(#[from] postcard::Error);

/// Encodes `value` to bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

/// Decodes bytes made by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}
