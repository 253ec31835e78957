//! KvDB storage node: shard replicas as openraft groups on redb, the
//! `KvNode` gRPC service with epoch validation and routing hints, and the
//! Raft transport, all following the coordinator's shard map.
//!
//! A write travels: `kv_service` (routing checks by core's `EpochValidator`,
//! size limits, the leader's clock fixed in the command by `proposal`) ->
//! the shard's Raft group (`replica`) -> a majority fsyncs the log entry ->
//! `kv_machine` applies it (versions, CAS, TTL, exactly-once via `sessions`)
//! -> the client gets the result. Reads are served from the applied state;
//! STRONG ones under the leader's lease, or else after a read-index round.
//!
//! # Layout
//! - [`command`]: the shard's Raft command and its result.
//! - [`update`]: read-modify-write commands (`INCR`, `APPEND`, `EXPIRE`...) decided at apply.
//! - [`sessions`]: per-client memory of recent writes (exactly-once retries).
//! - [`kv_machine`]: the replicated state machine over core's `Storage`.
//! - [`raft_types`]: the openraft type configuration of a shard group.
//! - [`proposal`]: request -> command and result -> response, with limits.
//! - [`replica`]: this node's member of one shard group, and its read lease.
//! - `replica_tasks`: a replica's leadership watcher (leader changes, read floors), its
//!   leader's periodic rounds, and the sweeper of removed collections' rows.
//! - [`expiry`]: TTL in one place: absolute expiry at proposal, purgeable keys, the purger.
//! - [`export`]: the `ShardExport` service: a shard's live keys from its leader, for backups.
//! - [`log_compaction`]: a shard whose log grew past a size since its last snapshot takes one.
//! - [`read_queue`]: shares one read-index confirmation among concurrent strong reads.
//! - [`write_queue`]: batches a leader's concurrent writes into shared Raft entries.
//! - [`replica_manager`]: opens, initializes, moves and removes replicas to
//!   follow the map; reports leaders.
//! - [`reconfigure`]: a shard move run by the shard's leader.
//! - [`transfer`]: best-effort leader transfer for `SetShardLeader`.
//! - [`slow_leader`]: a leader whose majority answers slowly hands its leadership over.
//! - [`kv_service`]: the `KvNode` gRPC service.
//! - [`control`]: the coordinator as the node uses it ([`control::ControlPlane`]).
//! - [`config`]: [`config::NodeConfig`] with named defaults.
//! - [`node`]: [`node::Node`], start to shutdown.
//! - [`server`]: [`server::serve`] / [`server::serve_with`], `kvdb node` entry points.
//! - [`shutdown`], [`clock`]: the shutdown signal and the wall clock.
//! - `planted` (feature `planted-bugs`, tests only): deliberate bugs that
//!   prove the chaos suite can fail.
//!
//! # Out of scope
//! - A guaranteed leader transfer: `SetShardLeader` is acted on best effort
//!   (openraft 0.9 has no transfer API; see [`transfer`]).
//! - Shard splits and merges: slot ranges never change here.
//! - Changing a node's address: Raft memberships keep the address a member
//!   had when it joined, so a node must restart on the same address.

#![warn(missing_docs)]

pub mod clock;
pub mod command;
pub mod config;
pub mod control;
pub mod disk;
pub mod expiry;
pub mod export;
pub mod key_read;
pub mod kv_machine;
pub mod kv_service;
pub mod log_compaction;
pub mod metrics;
pub mod node;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod proposal;
pub mod raft_types;
pub mod read_queue;
pub mod reconfigure;
pub mod replica;
pub mod replica_manager;
mod replica_tasks;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod slow_leader;
pub mod split;
pub mod transfer;
pub mod update;
pub mod write_queue;

pub use config::NodeConfig;
pub use control::{ControlError, ControlPlane};
pub use node::{Node, NodeError};
pub use server::{serve, serve_with};
