//! Bounded fuzzing of what a node decodes from its peers: Raft entries and envelopes, and
//! snapshot images. Whatever bytes arrive, decoding answers an error or a value, never a
//! panic; a snapshot that does not decode changes nothing. Each property runs proptest's
//! default number of cases, so CI spends a bounded time here.

use std::sync::Arc;

use kvdb_core::Version;
use kvdb_core::raft::codec;
use kvdb_core::storage::{MemoryStorage, Storage, StoredValue};
use kvdb_node::command::Command;
use kvdb_node::kv_machine::KvMachine;
use kvdb_node::raft_types::{Entry, ShardRaftConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};
use openraft::{CommittedLeaderId, LogId, StoredMembership};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_bytes_as_raft_traffic_decode_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = codec::decode::<Command>(&bytes);
        let _ = codec::decode::<Entry>(&bytes);
        let _ = codec::decode::<AppendEntriesRequest<ShardRaftConfig>>(&bytes);
        let _ = codec::decode::<InstallSnapshotRequest<ShardRaftConfig>>(&bytes);
    }

    #[test]
    fn a_snapshot_that_does_not_decode_changes_nothing(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let storage = Arc::new(MemoryStorage::new());
        storage
            .apply(kvdb_core::storage::WriteBatch::new().put(
                "k",
                StoredValue::new("v", Version(1)),
            ))
            .unwrap();
        let mut machine = KvMachine::open(storage.clone()).unwrap();
        let before = machine.applied_state();
        let at = Some(LogId::new(CommittedLeaderId::new(3, 1), 99));
        if machine.import(at, StoredMembership::default(), &bytes).is_err() {
            prop_assert_eq!(machine.applied_state(), before);
            prop_assert_eq!(storage.get(b"k").unwrap().map(|v| v.value), Some(b"v".to_vec()));
        }
    }
}
