//! KvDB core: everything the servers and clients share, with no servers in it.
//!
//! # Layout
//! - [`address_rewrite`]: [`AddressRewrite`], a dial-time address hook (fault-injection proxies).
//! - [`ids`]: newtypes (`NodeId`, `ShardId`, `Slot`, `Epoch`, `MapVersion`, `Version`).
//! - [`slot`]: key -> slot hashing (CRC16-XMODEM with Redis hash tags).
//! - [`shard_map`]: the shard map, deltas and the validity check.
//! - [`shard_stats`]: the per-replica figures nodes send with their heartbeats.
//! - [`convert`]: shard-map types to and from protobuf.
//! - [`coordinator_client`]: gRPC client of the coordinator group (leader-following, a `ShardMapSource`).
//! - [`router`]: key -> shard, epoch, leader and replica addresses.
//! - [`epoch`]: the node-side request validation (`EpochValidator`).
//! - [`error`]: data-plane errors (`KvError`) and the retry decision.
//! - [`coordinator_error`]: control-plane errors (`CoordinatorError`).
//! - [`data_format`]: the stamp that says which server and on-disk format own a data directory.
//! - [`reopen`]: reopening a database that a stopped instance in this process still holds.
//! - [`status`]: the one mapping of both to and from `tonic::Status` + trailers.
//! - [`backoff`]: the one retry backoff, as a value.
//! - [`call_stream`], [`call_link`]: the serving and calling halves of a stream of many calls
//!   (`KvNode.Calls`, `KvGateway.Calls`, Raft's AppendEntries between nodes).
//! - [`cache`]: lock-free shard-map cache fed by a `ShardMapSource`.
//! - [`incoming`]: accepting server connections (TCP_NODELAY on).
//! - [`local_node`]: a node's KV service called from its own process (`LocalNode`).
//! - [`storage`]: a shard's key-value state (`Storage`), on redb or in memory.
//! - [`raft`]: openraft log and state-machine storage on redb, shared by the
//!   coordinator and the shard groups.
//! - [`proto`]: generated protobuf and gRPC code.
//! - [`redis_numbers`]: integers and floats in strings, as Redis reads and prints them.

#![warn(missing_docs)]

pub mod address_rewrite;
pub mod auth;
pub mod backoff;
pub mod cache;
pub mod call_link;
pub mod call_stream;
pub mod convert;
pub mod coordinator_client;
pub mod coordinator_error;
pub mod data_format;
pub mod epoch;
pub mod error;
pub mod hash_value;
pub mod ids;
pub mod incoming;
pub mod introspection;
pub mod local_node;
pub mod member_rows;
pub mod metrics;
pub mod proto;
pub mod raft;
pub mod redis_numbers;
pub mod reopen;
pub mod router;
pub mod shard_map;
pub mod shard_stats;
pub mod slot;
pub mod status;
pub mod storage;
pub mod tls;

pub use address_rewrite::AddressRewrite;
pub use ids::{Epoch, MapVersion, NodeId, SLOT_COUNT, ShardId, Slot, Version};
pub use shard_map::{NodeInfo, NodeStatus, ShardInfo, ShardMap, ShardMapDelta, ShardState};
