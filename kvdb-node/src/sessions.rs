//! Client sessions: the memory that makes retried writes apply once.
//!
//! For every client that wrote recently the state machine keeps the results
//! of its unsettled writes, by sequence number. A write whose
//! `(client id, sequence)` is remembered is not applied again; its first
//! result is returned instead. Each write also says below which sequence the
//! client's writes are settled (answered or abandoned, never to be sent
//! again): their results are forgotten, and the session's `floor` rises to
//! that point. A write at or below the floor that is not remembered may have
//! been applied, and is refused rather than risk applying it twice. Since a
//! client never settles a write it still waits for, no level of concurrency
//! makes a shard forget a write that has not arrived yet (the standard
//! client-acknowledgement scheme of Raft's client sessions). [`WINDOW`] only
//! bounds what a client that never settles can make a shard keep.
//!
//! The table is part of the replicated state, and every decision in it depends only on the
//! log: clients are evicted by the log index of their last write, never by time. It is
//! stored as auxiliary rows of the shard's storage, one per remembered result and one per
//! client, and the table journals which rows each batch changed
//! ([`Sessions::take_changes`]), so persisting a batch costs what the batch changed, not
//! the table's size. Snapshots carry the whole table.
//!
//! Out of scope: expiring idle clients by wall-clock age; the client count
//! cap ([`MAX_CLIENTS`]) bounds the table instead.

use std::collections::{BTreeMap, BTreeSet};

use kvdb_core::raft::codec::{self, CodecError};
use kvdb_core::storage::{AuxChanges, AuxRows, PrefixRange, Storage, StorageError};
use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, WriteId};

/// First byte of a client's row: its floor and last index.
const CLIENT_ROW: u8 = b'c';
/// First byte of a remembered result's row.
const RESULT_ROW: u8 = b'r';

/// Why [`Sessions::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A row could not be read back.
    #[error(transparent)]
    Row(#[from] SessionRowError),
}

/// A stored session row that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum SessionRowError {
    /// The row's key has no known layout.
    #[error("session row key {key:?} is malformed")]
    Key {
        /// The row's key, as stored.
        key: Vec<u8>,
    },
    /// The row's value does not decode.
    #[error("session row {key:?}: {source}")]
    Value {
        /// The row's key, as stored.
        key: Vec<u8>,
        /// Why its value did not decode.
        #[source]
        source: CodecError,
    },
    /// A row could not be encoded.
    #[error("session row: {0}")]
    Encode(#[from] CodecError),
}

/// Most results remembered per client, settled or not: a bound for clients that never settle
/// their writes. Far above any client's concurrency to one shard (the gateway writes under one
/// id for all its callers); past it, the oldest results are forgotten even if unsettled.
pub const WINDOW: usize = 16_384;

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sessions {
    clients: BTreeMap<String, Session>,
    /// Rows changed since the last [`Sessions::take_changes`]; not part of the state.
    #[serde(skip)]
    journal: Journal,
}

impl PartialEq for Sessions {
    fn eq(&self, other: &Self) -> bool {
        self.clients == other.clients
    }
}

impl Eq for Sessions {}

#[derive(Debug, Clone, Default)]
struct Journal {
    /// Result rows stored (`true`) or removed (`false`), in order.
    results: Vec<(String, u64, bool)>,
    /// Clients whose row changed or went away.
    clients: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Highest sequence settled or evicted from `results`; lower unknown ones are refused.
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
        self.journal
            .results
            .push((id.client_id.clone(), id.sequence, true));
        session.floor = session.floor.max(id.settled_below.saturating_sub(1));
        while let Some(entry) = session.results.first_entry()
            && *entry.key() < id.settled_below
        {
            let seq = entry.remove_entry().0;
            self.journal
                .results
                .push((id.client_id.clone(), seq, false));
        }
        while session.results.len() > WINDOW {
            if let Some((seq, _)) = session.results.pop_first() {
                session.floor = session.floor.max(seq);
                self.journal
                    .results
                    .push((id.client_id.clone(), seq, false));
            }
        }
        self.journal.clients.insert(id.client_id.clone());
    }

    /// The row changes since the last call, in order (`None` removes a row), for the batch
    /// that persists the writes recorded since.
    pub fn take_changes(&mut self) -> Result<AuxChanges, SessionRowError> {
        let journal = std::mem::take(&mut self.journal);
        let mut changes = Vec::with_capacity(journal.results.len() + journal.clients.len());
        for (client, sequence, stored) in journal.results {
            let key = result_key(&client, sequence);
            if !stored {
                changes.push((key, None));
                continue;
            }
            // A result stored and forgotten within the batch has its removal later on.
            let session = self.clients.get(&client);
            if let Some(result) = session.and_then(|s| s.results.get(&sequence)) {
                changes.push((key, Some(codec::encode(result)?)));
            }
        }
        for client in journal.clients {
            let row = match self.clients.get(&client) {
                Some(session) => Some(codec::encode(&(session.floor, session.last_index))?),
                None => None,
            };
            changes.push((client_key(&client), row));
        }
        Ok(changes)
    }

    /// Every row of the table, in key order: what a fresh storage needs to hold it.
    pub fn rows(&self) -> Result<AuxRows, SessionRowError> {
        let mut rows = Vec::new();
        for (client, session) in &self.clients {
            rows.push((
                client_key(client),
                codec::encode(&(session.floor, session.last_index))?,
            ));
            for (sequence, result) in &session.results {
                rows.push((result_key(client, *sequence), codec::encode(result)?));
            }
        }
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    /// The table stored in `storage`'s auxiliary rows, read by the session rows' prefixes:
    /// a shard keeps other kinds of rows there too.
    pub fn load(storage: &dyn Storage) -> Result<Self, LoadError> {
        let mut rows = Vec::new();
        for prefix in [CLIENT_ROW, RESULT_ROW] {
            let range = PrefixRange::new([prefix]);
            rows.extend(storage.aux_range(range.bounds(), usize::MAX)?);
        }
        Ok(Self::from_rows(rows)?)
    }

    /// The table stored as `rows` (see [`Sessions::rows`]).
    pub fn from_rows(rows: AuxRows) -> Result<Self, SessionRowError> {
        let mut table = Self::default();
        for (key, value) in rows {
            let decoded = match parse_key(&key) {
                Some(RowKey::Client(client)) => codec::decode(&value).map(|(floor, last_index)| {
                    let session = table.clients.entry(client).or_default();
                    session.floor = floor;
                    session.last_index = last_index;
                }),
                Some(RowKey::Result(client, sequence)) => codec::decode(&value).map(|result| {
                    let session = table.clients.entry(client).or_default();
                    session.results.insert(sequence, result);
                }),
                None => return Err(SessionRowError::Key { key }),
            };
            decoded.map_err(|source| SessionRowError::Value { key, source })?;
        }
        Ok(table)
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
        if let Some(name) = oldest
            && let Some(session) = self.clients.remove(&name)
        {
            let gone = session
                .results
                .into_keys()
                .map(|seq| (name.clone(), seq, false));
            self.journal.results.extend(gone);
            self.journal.clients.insert(name);
        }
    }
}

/// A session row's key, parsed.
enum RowKey {
    Client(String),
    Result(String, u64),
}

fn client_key(client: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + client.len());
    key.push(CLIENT_ROW);
    key.extend_from_slice(client.as_bytes());
    key
}

/// The client id is length-prefixed so that one client's rows sort together, by sequence.
fn result_key(client: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 4 + client.len() + 8);
    key.push(RESULT_ROW);
    key.extend_from_slice(&(client.len() as u32).to_be_bytes());
    key.extend_from_slice(client.as_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn parse_key(key: &[u8]) -> Option<RowKey> {
    let (&kind, rest) = key.split_first()?;
    match kind {
        CLIENT_ROW => Some(RowKey::Client(String::from_utf8(rest.to_vec()).ok()?)),
        RESULT_ROW => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
            let (client, sequence) = (rest.get(..len)?, rest.get(len..)?);
            let sequence = u64::from_be_bytes(sequence.try_into().ok()?);
            Some(RowKey::Result(
                String::from_utf8(client.to_vec()).ok()?,
                sequence,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::Version;

    fn id(client: &str, sequence: u64) -> WriteId {
        settled(client, sequence, 0)
    }

    fn settled(client: &str, sequence: u64, settled_below: u64) -> WriteId {
        WriteId {
            client_id: client.into(),
            sequence,
            settled_below,
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

    /// A client with a thousand writes in flight to one shard, arriving in reverse order: none
    /// is settled, so none may be forgotten.
    #[test]
    fn unsettled_writes_are_never_forgotten_however_many_are_in_flight() {
        let mut s = Sessions::new();
        for seq in (1..=1_000).rev() {
            assert_eq!(s.check(&settled("a", seq, 1)), Seen::New, "sequence {seq}");
            s.record(&settled("a", seq, 1), 2_000 - seq, put(seq));
        }
        assert_eq!(s.check(&id("a", 1)), Seen::Duplicate(put(1)));
    }

    #[test]
    fn settled_results_are_forgotten_and_late_copies_refused() {
        let mut s = Sessions::new();
        for seq in 1..=5 {
            s.record(&settled("a", seq, 1), seq, put(seq));
        }
        // Writes 1 to 3 have their answers; 4 and 5 may still be retried.
        s.record(&settled("a", 6, 4), 6, put(6));
        assert_eq!(s.check(&id("a", 2)), Seen::Forgotten);
        assert_eq!(s.check(&id("a", 3)), Seen::Forgotten);
        assert_eq!(s.check(&id("a", 4)), Seen::Duplicate(put(4)));
        assert_eq!(s.check(&id("a", 7)), Seen::New);
        let rows = s.rows().unwrap();
        assert_eq!(rows.len(), 1 + 3, "the client row and results 4 to 6");
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

    /// Applies `changes` to `rows` as a storage would.
    fn persist(rows: &mut BTreeMap<Vec<u8>, Vec<u8>>, changes: AuxChanges) {
        for (key, row) in changes {
            match row {
                Some(row) => rows.insert(key, row),
                None => rows.remove(&key),
            };
        }
    }

    #[test]
    fn journaled_changes_keep_the_stored_rows_equal_to_the_table() {
        let mut s = Sessions::new();
        let mut stored = BTreeMap::new();
        // Batches that fill and slide the window, and push clients out at the cap.
        for batch in 0..6u64 {
            for n in 0..(WINDOW as u64 / 2 + 7) {
                let seq = batch * WINDOW as u64 + n;
                s.record(&id("busy", seq), seq, put(seq));
            }
            for c in 0..(MAX_CLIENTS as u64 / 3) {
                let client = format!("c{}", batch * 1_000 + c);
                s.record(&id(&client, 1), batch, put(c));
            }
            persist(&mut stored, s.take_changes().unwrap());
            let rows: BTreeMap<_, _> = s.rows().unwrap().into_iter().collect();
            assert_eq!(stored, rows, "after batch {batch}");
        }
        assert!(s.take_changes().unwrap().is_empty());
        let reloaded = Sessions::from_rows(stored.into_iter().collect()).unwrap();
        assert_eq!(reloaded, s);
        let last = 5 * WINDOW as u64;
        assert_eq!(
            reloaded.check(&id("busy", last)),
            Seen::Duplicate(put(last))
        );
        assert_eq!(reloaded.check(&id("busy", 1)), Seen::Forgotten);
    }

    #[test]
    fn a_malformed_row_is_an_error() {
        let rows = vec![(b"x-unknown".to_vec(), Vec::new())];
        assert!(matches!(
            Sessions::from_rows(rows),
            Err(SessionRowError::Key { .. })
        ));
    }
}
