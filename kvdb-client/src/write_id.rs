//! Identities for writes, so that a retried write is applied once.
//!
//! Each id also tells the shard which of the client's writes are settled: every sequence
//! below the lowest one still in flight. Shards forget settled writes only, so a client may
//! have any number of writes in flight without a shard forgetting one that has not arrived.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use kvdb_core::proto::v1 as pb;

/// Hands out (client id, sequence) pairs: one random client id per client
/// instance, sequences increasing from 1. Each logical write takes one pair
/// and keeps it across its retries.
#[derive(Debug)]
pub struct WriteIds {
    client_id: String,
    sequences: Mutex<Sequences>,
}

#[derive(Debug)]
struct Sequences {
    next: u64,
    /// Sequences whose write is still in flight.
    unsettled: BTreeSet<u64>,
}

/// One logical write's id, held until the write is settled: answered, failed, or given up.
/// Dropping it settles the write, and later ids let the shards forget its result.
#[derive(Debug)]
pub struct WriteTicket<'a> {
    ids: &'a WriteIds,
    id: pb::WriteId,
}

impl WriteTicket<'_> {
    /// The id to send with the write, on every attempt.
    pub fn id(&self) -> pb::WriteId {
        self.id.clone()
    }
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        self.ids.lock().unsettled.remove(&self.id.sequence);
    }
}

impl WriteIds {
    /// A fresh random client identity.
    pub fn new() -> WriteIds {
        WriteIds {
            client_id: format!("{:032x}", rand::random::<u128>()),
            sequences: Mutex::new(Sequences {
                next: 1,
                unsettled: BTreeSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sequences> {
        self.sequences
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// This client's id.
    #[cfg(test)]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The id of the next logical write; keep the ticket until the write is settled.
    pub fn next(&self) -> WriteTicket<'_> {
        let mut sequences = self.lock();
        let sequence = sequences.next;
        sequences.next += 1;
        sequences.unsettled.insert(sequence);
        let settled_below = sequences.unsettled.first().copied().unwrap_or(sequence);
        drop(sequences);
        WriteTicket {
            ids: self,
            id: pb::WriteId {
                client_id: self.client_id.clone(),
                sequence,
                settled_below,
            },
        }
    }
}

impl Default for WriteIds {
    fn default() -> Self {
        WriteIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_increase_and_clients_differ() {
        let a = WriteIds::new();
        let b = WriteIds::new();
        assert_ne!(a.client_id(), b.client_id());
        let (x, y) = (a.next().id(), a.next().id());
        assert_eq!(x.client_id, y.client_id);
        assert_eq!(y.sequence, x.sequence + 1);
    }

    #[test]
    fn writes_are_settled_below_the_oldest_one_in_flight() {
        let ids = WriteIds::new();
        let first = ids.next();
        let second = ids.next();
        assert_eq!(first.id().settled_below, 1);
        assert_eq!(second.id().settled_below, 1);
        drop(second);
        assert_eq!(
            ids.next().id().settled_below,
            1,
            "the first is still in flight"
        );
        drop(first);
        let next = ids.next().id();
        assert_eq!((next.sequence, next.settled_below), (4, 4));
    }
}
