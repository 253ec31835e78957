//! Client sessions: the memory that makes retried writes apply once.
//!
//! For every client that wrote recently the state machine keeps the results
//! of its last [`WINDOW`] writes, by sequence number. A write whose
//! `(client id, sequence)` is remembered is not applied again; its first
//! result is returned instead. Sequences may reach a shard out of order (a
//! client with several writes in flight), so a session also keeps a `floor`:
//! the highest sequence it has forgotten. A write at or below the floor that
//! is not remembered may have been applied, and is refused rather than
//! risk applying it twice.
//!
//! The table is part of the replicated state (it travels in the metadata
//! blob and in snapshots), and every decision in it depends only on the log:
//! clients are evicted by the log index of their last write, never by time.
//!
//! Out of scope: expiring idle clients by wall-clock age; the client count
//! cap ([`MAX_CLIENTS`]) bounds the table instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, WriteId};

/// Results remembered per client. It bounds how many writes one client id may have in flight
/// to a shard at once without spurious "outcome unknown" refusals (the gateway writes under
/// one id for all its callers), so it is far above a client's usual concurrency.
pub const WINDOW: usize = 256;

/// Clients remembered per shard; the one whose last write is oldest is
/// forgotten first.
pub const MAX_CLIENTS: usize = 1024;

/// What the table knows about a write id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Never applied: apply it and [`Sessions::record`] the result.
    New,
    /// Already applied with this result.
    Duplicate(CommandResult),
    /// Possibly applied, result forgotten: do not apply.
    Forgotten,
}

/// Recent writes of every client, keyed by client id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    clients: BTreeMap<String, Session>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Highest sequence evicted from `results`; lower unknown ones are refused.
    floor: u64,
    /// Log index of the client's last applied write (for eviction).
    last_index: u64,
    results: BTreeMap<u64, CommandResult>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks `id` up.
    pub fn check(&self, id: &WriteId) -> Seen {
        let Some(session) = self.clients.get(&id.client_id) else {
            return Seen::New;
        };
        match session.results.get(&id.sequence) {
            Some(result) => Seen::Duplicate(result.clone()),
            None if id.sequence <= session.floor => Seen::Forgotten,
            None => Seen::New,
        }
    }

    /// Remembers the result of the write `id`, applied at log `index`.
    pub fn record(&mut self, id: &WriteId, index: u64, result: CommandResult) {
        if !self.clients.contains_key(&id.client_id) && self.clients.len() >= MAX_CLIENTS {
            self.evict_oldest_client();
        }
        let session = self.clients.entry(id.client_id.clone()).or_default();
        session.last_index = index;
        session.results.insert(id.sequence, result);
        while session.results.len() > WINDOW {
            if let Some((seq, _)) = session.results.pop_first() {
                session.floor = session.floor.max(seq);
            }
        }
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    fn evict_oldest_client(&mut self) {
        let oldest = self
            .clients
            .iter()
            .min_by_key(|(name, s)| (s.last_index, name.as_str()))
            .map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            self.clients.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::Version;

    fn id(client: &str, sequence: u64) -> WriteId {
        WriteId {
            client_id: client.into(),
            sequence,
        }
    }

    fn put(v: u64) -> CommandResult {
        CommandResult::Put {
            applied: true,
            version: Version(v),
        }
    }

    #[test]
    fn a_recorded_write_is_a_duplicate_with_its_first_result() {
        let mut s = Sessions::new();
        assert_eq!(s.check(&id("a", 1)), Seen::New);
        s.record(&id("a", 1), 10, put(10));
        assert_eq!(s.check(&id("a", 1)), Seen::Duplicate(put(10)));
        assert_eq!(s.check(&id("b", 1)), Seen::New);
    }

    #[test]
    fn out_of_order_sequences_inside_the_window_are_new() {
        let mut s = Sessions::new();
        s.record(&id("a", 5), 10, put(10));
        assert_eq!(s.check(&id("a", 3)), Seen::New);
    }

    #[test]
    fn sequences_below_the_window_are_forgotten_not_reapplied() {
        let mut s = Sessions::new();
        for seq in 1..=(WINDOW as u64 + 2) {
            s.record(&id("a", seq), seq, put(seq));
        }
        assert_eq!(s.check(&id("a", 1)), Seen::Forgotten);
        assert_eq!(s.check(&id("a", 2)), Seen::Forgotten);
        assert_eq!(s.check(&id("a", 3)), Seen::Duplicate(put(3)));
    }

    #[test]
    fn the_least_recent_client_is_evicted_at_the_cap() {
        let mut s = Sessions::new();
        for c in 0..MAX_CLIENTS as u64 {
            s.record(&id(&c.to_string(), 1), c + 1, put(c + 1));
        }
        s.record(&id("new", 1), 10_000, put(10_000));
        assert_eq!(s.len(), MAX_CLIENTS);
        assert_eq!(s.check(&id("0", 1)), Seen::New);
        assert_eq!(s.check(&id("1", 1)), Seen::Duplicate(put(2)));
    }
}
