//! KvDB coordinator: the control plane.
//!
//! A group of 1, 3 or 5 coordinator members replicates the cluster metadata
//! (storage nodes, shards, their replicas and leaders) through one openraft
//! group. Every change is a Raft command; every command that changes the
//! shard map bumps its version and records a delta, which watchers receive in
//! order. The leader also runs the failure detector for storage nodes.
//!
//! # Layout
//! - [`command`]: the Raft commands and their outcomes.
//! - [`state`]: the metadata state machine as pure logic ([`MetaState`]).
//! - [`placement`]: where the shards of a fresh cluster go.
//! - [`error`]: [`CoordinatorError`] and its gRPC mapping.
//! - [`config`]: [`CoordinatorConfig`] with defaults and validation.
//! - [`raft_group`]: the openraft type config, storage and bootstrap.
//! - [`machine`]: `MetaState` behind core's Raft `Machine` contract.
//! - [`feed`]: the applied state published to readers and watchers.
//! - [`event`]: watch events, shared with their wire encoding built once.
//! - [`watch`]: one watcher's ordered stream of map events.
//! - [`coordinator`]: [`Coordinator`], the handle everything uses.
//! - [`leadership`]: leader and cluster info; leader address announcements.
//! - [`liveness`]: node failure detection on the leader.
//! - [`membership`]: adding and removing coordinator members at run time, on the leader.
//! - [`scheduler`]: replica repair, drain, balancing and splits, run by the leader.
//! - [`shard_stats`]: the replicas' figures nodes send with heartbeats, kept by the leader.
//! - [`forward`]: forwarding mutations from a follower to the leader.
//! - [`service`]: the `kvdb.v1.Coordinator` gRPC service.
//! - [`watch_route`]: WatchShardMap sending pre-encoded shared events.
//! - [`server`]: [`serve`]: Coordinator + Raft transport on one listener.
//! - [`admin`]: the admin HTTP API.

#![warn(missing_docs)]

pub mod admin;
pub mod command;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod event;
pub mod feed;
pub mod forward;
pub mod leadership;
pub mod liveness;
pub mod machine;
pub mod membership;
pub mod metrics;
pub mod placement;
pub mod raft_group;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod shard_stats;
pub mod state;
pub mod watch;
pub mod watch_route;

pub use command::{Command, CommandResult, Outcome};
pub use config::CoordinatorConfig;
pub use coordinator::{Coordinator, Report, ShardSplit};
pub use error::CoordinatorError;
pub use event::{MapEvent, SharedEvent};
pub use leadership::{ClusterInfo, LeaderInfo, MemberInfo};
pub use server::{ServeError, serve};
pub use service::CoordinatorService;
pub use state::MetaState;
pub use watch::Watcher;
