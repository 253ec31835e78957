//! Identities for writes, so that a retried write is applied once.

use std::sync::atomic::{AtomicU64, Ordering};

use kvdb_core::proto::v1 as pb;

/// Hands out (client id, sequence) pairs: one random client id per client
/// instance, sequences increasing from 1. Each logical write takes one pair
/// and keeps it across its retries.
#[derive(Debug)]
pub struct WriteIds {
    client_id: String,
    next: AtomicU64,
}

impl WriteIds {
    /// A fresh random client identity.
    pub fn new() -> WriteIds {
        WriteIds {
            client_id: format!("{:032x}", rand::random::<u128>()),
            next: AtomicU64::new(1),
        }
    }

    /// This client's id.
    #[cfg(test)]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The id of the next logical write.
    pub fn next(&self) -> pb::WriteId {
        pb::WriteId {
            client_id: self.client_id.clone(),
            sequence: self.next.fetch_add(1, Ordering::Relaxed),
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
        let (x, y) = (a.next(), a.next());
        assert_eq!(x.client_id, y.client_id);
        assert_eq!(y.sequence, x.sequence + 1);
    }
}
