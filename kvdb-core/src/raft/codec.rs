//! The byte encoding of everything Raft writes to disk or sends to a peer.
//! postcard: compact and fast; every type involved derives serde.

use serde::{Serialize, de::DeserializeOwned};

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("raft codec: {0}")]
pub struct CodecError(#[from] postcard::Error);

/// Decodes bytes made by [`encode`] that must hold exactly one value: unused bytes are an
/// error. Telling an older layout of a type from the current one needs this, since a prefix
/// of the bytes may happen to decode as the wrong one.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes(bytes)? {
        (value, []) => Ok(value),
        _ => Err(CodecError(postcard::Error::DeserializeBadEncoding)),
    }
}

/// Encodes `value` to bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

/// Decodes bytes made by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}
