//! KvDB: a sharded, Raft-replicated, Redis-like key-value store.
//!
//! This facade re-exports the crates a program needs and offers
//! [`cluster::LocalCluster`], a whole cluster inside one process (what
//! `kvdb dev`, the embedded example and the end-to-end tests run).
//!
//! # Layout
//! - [`args`]: command-line vocabulary shared by the binary and drivers.
//! - [`backup`]: backups of every shard into a directory, and restores into an empty cluster.
//! - [`bench`](mod@bench): the closed-loop load generator behind `kvdb bench`.
//! - [`cluster`]: an in-process cluster with fault hooks (stop, restart a node).
//! - [`out`]: stdout of the client commands, which end quietly when it is closed.
//! - [`servers`]: a coordinator serving gRPC and the Admin API, as a unit.

#![warn(missing_docs)]

pub mod args;
pub mod backup;
pub mod bench;
pub mod cluster;
pub mod out;
pub mod servers;

pub use kvdb_client as client;
pub use kvdb_coordinator as coordinator;
pub use kvdb_core as core;
pub use kvdb_gateway as gateway;
pub use kvdb_node as node;
pub use kvdb_resp as resp;
