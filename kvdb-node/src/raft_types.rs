//! The openraft type configuration of a shard group.
//!
//! Node ids are the coordinator-assigned [`kvdb_core::NodeId`] numbers, a
//! member's `BasicNode::addr` is its data-plane `host:port` (where the Raft
//! transport is served too), and snapshots are in-memory images sent in
//! chunks, as core's transport expects.

use std::io::Cursor;

use crate::command::{Command, CommandResult};

openraft::declare_raft_types!(
    /// Types of a shard's Raft group.
    pub ShardRaftConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<ShardRaftConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A shard member's Raft node id: the number of its [`kvdb_core::NodeId`], as openraft
/// wants it.
pub type RaftId = u64;
/// A shard member's address record.
pub type ShardNode = openraft::BasicNode;
/// A shard log entry.
pub type Entry = openraft::Entry<ShardRaftConfig>;
/// A shard group's Raft handle.
pub type ShardRaft = openraft::Raft<ShardRaftConfig>;
