//! KvDB storage node: shard replicas as openraft groups, the KV service and
//! the Raft transport, following the coordinator's shard map.
//!
//! # Layout
//! - [`command`]: the shard's Raft command and its result.
//! - [`sessions`]: per-client memory of recent writes (exactly-once retries).
//! - [`kv_machine`]: the replicated state machine over core's `Storage`.
//! - [`raft_types`]: the openraft type configuration of a shard group.

pub mod clock;
pub mod command;
pub mod config;
pub mod control;
pub mod kv_machine;
pub mod kv_service;
pub mod node;
pub mod proposal;
pub mod raft_types;
pub mod reconfigure;
pub mod replica;
pub mod replica_manager;
pub mod sessions;
pub mod shutdown;
