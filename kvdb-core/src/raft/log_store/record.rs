//! The writes of the Raft log and their byte form inside a segment record.
//!
//! One commit of the writer is one record: the encoded writes of every request in the batch, in
//! order. Replaying the records of the surviving segments in order rebuilds every group's log
//! and metadata ([`super::index`]), so the encoding carries each write whole, including the
//! log index of every entry (a record never depends on an earlier one to be read).
//!
//! Layout, little-endian: a write is a tag byte and its fields; an entry is its index, its
//! length (`u32`) and its bytes; an optional value is a flag byte, then a length and bytes.
//!
//! Out of scope: framing and checksums (see [`super::segments`]).

use super::overlay::EncodedEntry;

/// Per-group metadata values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum MetaKey {
    Vote = 1,
    Committed = 2,
    Purged = 3,
    /// The last log id of a removed replica of the group (see `LogDb::remove_group`).
    VoteFloor = 4,
}

impl MetaKey {
    pub(super) const ALL: [MetaKey; 4] = [
        MetaKey::Vote,
        MetaKey::Committed,
        MetaKey::Purged,
        MetaKey::VoteFloor,
    ];

    /// The slot of this key in a group's metadata array.
    pub(super) fn slot(self) -> usize {
        self as usize - 1
    }

    pub(super) fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|key| *key as u8 == byte)
    }
}

/// One write to the log, with entries of type `E`: their bytes when submitted
/// ([`WriteOp`]), where those bytes sit in a record once encoded ([`Span`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op<E> {
    /// Put entries, as `(index, entry)`, replacing the group's entries from the first on.
    Append { group: u64, entries: Vec<(u64, E)> },
    /// Set a metadata value, or clear it when `value` is `None`.
    PutMeta {
        group: u64,
        key: MetaKey,
        value: Option<Vec<u8>>,
    },
    /// Delete entries from index `since` on.
    Truncate { group: u64, since: u64 },
    /// Record `purged` (an encoded log id) as last purged and delete entries up to `upto`.
    Purge {
        group: u64,
        upto: u64,
        purged: Vec<u8>,
    },
    /// Delete the group's entries and log state, replace its vote by `vote` (the same vote,
    /// no longer committed), and record `floor` (an encoded log id) as its vote floor.
    RemoveGroup {
        group: u64,
        floor: Option<Vec<u8>>,
        vote: Option<Vec<u8>>,
    },
    /// Nothing: answered once every write queued before it is durable. Never encoded.
    Barrier,
}

/// A write as submitted, entries encoded.
pub(super) type WriteOp = Op<EncodedEntry>;

/// Where an entry's bytes are within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) offset: u32,
    pub(super) len: u32,
}

impl<E> Op<E> {
    /// Whether the write must be on disk before it is acknowledged. The committed log id need
    /// not be: after a crash the replica re-applies less at restart, and a leader that resumes
    /// its term starts from an older commit index, which its reads must not trust (the read
    /// floor, `crate::raft::read_floor`, makes them wait). It waits for the next commit that
    /// another write needs, and rides along with it.
    pub(super) fn needs_fsync(&self) -> bool {
        !matches!(
            self,
            Op::PutMeta {
                key: MetaKey::Committed,
                ..
            }
        )
    }
}

const APPEND: u8 = 1;
const PUT_META: u8 = 2;
const TRUNCATE: u8 = 3;
const PURGE: u8 = 4;
const REMOVE_GROUP: u8 = 5;

/// Why a record's payload could not be read back. Records are checksummed, so this means a
/// writer bug or an incompatible file, never a torn write.
#[derive(Debug, thiserror::Error)]
#[error("malformed raft log record at byte {at}: {what}")]
pub struct RecordError {
    at: usize,
    what: &'static str,
}

/// Appends the encoding of `op` to `out` and returns it with its entries as spans of `out`.
/// Errors only for an entry larger than a record can hold (4 GiB).
pub(super) fn encode(op: &WriteOp, out: &mut Vec<u8>) -> Result<Op<Span>, RecordError> {
    Ok(match op {
        Op::Append { group, entries } => {
            out.push(APPEND);
            put_u64(out, *group);
            put_u32(out, entries.len(), out.len())?;
            let mut spans = Vec::with_capacity(entries.len());
            for (index, bytes) in entries {
                put_u64(out, *index);
                put_u32(out, bytes.len(), out.len())?;
                let offset = u32::try_from(out.len()).map_err(|_| too_large(out.len()))?;
                out.extend_from_slice(bytes);
                let len = bytes.len() as u32;
                spans.push((*index, Span { offset, len }));
            }
            Op::Append {
                group: *group,
                entries: spans,
            }
        }
        Op::PutMeta { group, key, value } => {
            out.push(PUT_META);
            put_u64(out, *group);
            out.push(*key as u8);
            put_optional(out, value.as_deref())?;
            Op::PutMeta {
                group: *group,
                key: *key,
                value: value.clone(),
            }
        }
        Op::Truncate { group, since } => {
            out.push(TRUNCATE);
            put_u64(out, *group);
            put_u64(out, *since);
            Op::Truncate {
                group: *group,
                since: *since,
            }
        }
        Op::Purge {
            group,
            upto,
            purged,
        } => {
            out.push(PURGE);
            put_u64(out, *group);
            put_u64(out, *upto);
            put_optional(out, Some(purged))?;
            Op::Purge {
                group: *group,
                upto: *upto,
                purged: purged.clone(),
            }
        }
        Op::RemoveGroup { group, floor, vote } => {
            out.push(REMOVE_GROUP);
            put_u64(out, *group);
            put_optional(out, floor.as_deref())?;
            put_optional(out, vote.as_deref())?;
            Op::RemoveGroup {
                group: *group,
                floor: floor.clone(),
                vote: vote.clone(),
            }
        }
        Op::Barrier => Op::Barrier,
    })
}

/// Reads back every write of a record whose payload starts at byte `from`; spans count from
/// the record's start, as [`encode`]'s count from its buffer's.
pub(super) fn decode(record: &[u8], from: usize) -> Result<Vec<Op<Span>>, RecordError> {
    let mut reader = Reader { record, at: from };
    let mut ops = Vec::new();
    while reader.at < record.len() {
        let op = match reader.u8()? {
            APPEND => {
                let group = reader.u64()?;
                let count = reader.u32()?;
                let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
                for _ in 0..count {
                    let index = reader.u64()?;
                    let len = reader.u32()?;
                    let offset = reader.at as u32;
                    reader.skip(len as usize)?;
                    entries.push((index, Span { offset, len }));
                }
                Op::Append { group, entries }
            }
            PUT_META => {
                let group = reader.u64()?;
                let key = MetaKey::from_byte(reader.u8()?).ok_or(reader.error("metadata key"))?;
                let value = reader.optional()?;
                Op::PutMeta { group, key, value }
            }
            TRUNCATE => Op::Truncate {
                group: reader.u64()?,
                since: reader.u64()?,
            },
            PURGE => {
                let group = reader.u64()?;
                let upto = reader.u64()?;
                let purged = reader.optional()?.ok_or(reader.error("purged log id"))?;
                Op::Purge {
                    group,
                    upto,
                    purged,
                }
            }
            REMOVE_GROUP => Op::RemoveGroup {
                group: reader.u64()?,
                floor: reader.optional()?,
                vote: reader.optional()?,
            },
            _ => return Err(reader.error("unknown write tag")),
        };
        ops.push(op);
    }
    Ok(ops)
}

fn too_large(at: usize) -> RecordError {
    RecordError {
        at,
        what: "more than 4 GiB in one record",
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: usize, at: usize) -> Result<(), RecordError> {
    let value = u32::try_from(value).map_err(|_| too_large(at))?;
    out.extend_from_slice(&value.to_le_bytes());
    Ok(())
}

fn put_optional(out: &mut Vec<u8>, value: Option<&[u8]>) -> Result<(), RecordError> {
    match value {
        Some(bytes) => {
            out.push(1);
            put_u32(out, bytes.len(), out.len())?;
            out.extend_from_slice(bytes);
        }
        None => out.push(0),
    }
    Ok(())
}

struct Reader<'a> {
    record: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> RecordError {
        RecordError { at: self.at, what }
    }

    fn take(&mut self, len: usize) -> Result<&[u8], RecordError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.record.len())
            .ok_or(self.error("truncated"))?;
        let bytes = &self.record[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn skip(&mut self, len: usize) -> Result<(), RecordError> {
        self.take(len).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn optional(&mut self) -> Result<Option<Vec<u8>>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let len = self.u32()? as usize;
                Ok(Some(self.take(len)?.to_vec()))
            }
            _ => Err(self.error("optional flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_write_reads_back_with_its_entry_spans() {
        let ops: Vec<WriteOp> = vec![
            Op::Append {
                group: 7,
                entries: vec![(3, Arc::from(&b"abc"[..])), (4, Arc::from(&b""[..]))],
            },
            Op::PutMeta {
                group: 7,
                key: MetaKey::Vote,
                value: Some(vec![1, 2]),
            },
            Op::PutMeta {
                group: 8,
                key: MetaKey::Committed,
                value: None,
            },
            Op::Truncate { group: 7, since: 4 },
            Op::Purge {
                group: 7,
                upto: 2,
                purged: vec![9],
            },
            Op::RemoveGroup {
                group: 8,
                floor: Some(vec![5]),
                vote: None,
            },
        ];
        let mut payload = Vec::new();
        let encoded: Vec<Op<Span>> = ops
            .iter()
            .map(|op| encode(op, &mut payload).unwrap())
            .collect();
        assert_eq!(decode(&payload, 0).unwrap(), encoded);
        let Op::Append { entries, .. } = &encoded[0] else {
            panic!("not an append")
        };
        let span = entries[0].1;
        assert_eq!(
            &payload[span.offset as usize..][..span.len as usize],
            b"abc"
        );
    }

    #[test]
    fn a_cut_or_unknown_payload_is_an_error() {
        let mut payload = Vec::new();
        encode(&Op::Truncate { group: 1, since: 2 }, &mut payload).unwrap();
        assert!(decode(&payload[..payload.len() - 1], 0).is_err());
        assert!(decode(&[0, 99], 1).is_err());
        assert!(decode(&[0; 8], 8).unwrap().is_empty());
    }
}
