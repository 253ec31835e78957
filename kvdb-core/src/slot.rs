//! Key -> slot hashing, identical to Redis Cluster's `CLUSTER KEYSLOT`.
//!
//! A key's slot is `CRC16-XMODEM(key) mod 16384`. Hash tags let related keys
//! share a slot: if the key contains a `{`, and a `}` somewhere after it, and
//! the bytes between the two are not empty, only those bytes are hashed. So
//! `{user1000}.following` and `{user1000}.followers` land on the same shard
//! and can be reasoned about together.
//!
//! Out of scope: deciding which shard owns a slot (see [`crate::router`]) and
//! any multi-key operation built on top of hash tags.

use crc::{CRC_16_XMODEM, Crc};

use crate::ids::{SLOT_COUNT, Slot};

/// The CRC16 variant Redis Cluster uses (XMODEM: poly 0x1021, init 0).
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// Redis's words for one request whose keys are in several slots, which KvDB refuses for
/// requests that must be atomic (transactions, `MSETNX`, `RENAME`).
pub const CROSS_SLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The one slot every key of `keys` hashes to, for a request that must be atomic in one shard:
/// refused when it names no key, or keys in several slots (Redis's `CROSSSLOT`).
pub fn common_slot<'k>(
    keys: impl IntoIterator<Item = &'k [u8]>,
) -> Result<Slot, crate::error::KvError> {
    use crate::error::KvError;
    let mut keys = keys.into_iter();
    let first = keys.next().ok_or_else(|| {
        KvError::InvalidArgument("a transaction must name at least one key".into())
    })?;
    let common = slot(first);
    if keys.any(|key| slot(key) != common) {
        return Err(KvError::InvalidArgument(CROSS_SLOT.into()));
    }
    Ok(common)
}

/// A slot as the wire carries it (`uint32`); a number no slot has is an invalid argument.
pub fn slot_from_wire(n: u32) -> Result<Slot, crate::error::KvError> {
    u16::try_from(n)
        .ok()
        .filter(|s| *s < SLOT_COUNT)
        .map(Slot)
        .ok_or_else(|| crate::error::KvError::InvalidArgument(format!("slot {n} out of range")))
}

/// The slot `key` belongs to.
///
/// Pure and deterministic: every client, gateway and node computes the same
/// slot for the same bytes, and it agrees with Redis Cluster.
pub fn slot(key: &[u8]) -> Slot {
    Slot(CRC16.checksum(hash_tag(key)) % SLOT_COUNT)
}

/// The part of `key` that is hashed: the bytes between the first `{` and the
/// first `}` after it, when that span is non-empty; otherwise the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
    }

    #[test]
    fn plain_keys_match_redis_cluster_keyslot() {
        // Values from Redis `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), Slot(12182));
        assert_eq!(slot(b"bar"), Slot(5061));
        assert_eq!(slot(b"hello"), Slot(866));
        assert_eq!(slot(b"123456789"), Slot(0x31C3 % SLOT_COUNT));
        assert_eq!(slot(b""), Slot(0));
    }

    #[test]
    fn hash_tags_put_related_keys_in_one_slot() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"prefix{foo}suffix"), slot(b"foo"));
    }

    #[test]
    fn an_empty_tag_hashes_the_whole_key() {
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(
            slot(b"foo{}{bar}"),
            Slot(CRC16.checksum(b"foo{}{bar}") % SLOT_COUNT)
        );
    }

    #[test]
    fn the_tag_ends_at_the_first_closing_brace() {
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn unbalanced_braces_hash_the_whole_key() {
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"foo}bar{"), b"foo}bar{");
        assert_eq!(hash_tag(b"foo}{bar}"), b"bar");
    }

    #[test]
    fn every_slot_is_in_range() {
        for i in 0u32..100_000 {
            assert!(slot(&i.to_be_bytes()).0 < SLOT_COUNT);
        }
    }
}
