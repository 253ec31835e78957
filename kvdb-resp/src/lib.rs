//! KvDB's Redis protocol front door: `redis-cli` and Redis client libraries talk to a KvDB
//! gateway as to a Redis 7.0 server in standalone mode.
//!
//! A connection speaks RESP2 until `HELLO 3`; requests are framed by `redis-protocol` (plus
//! inline commands for people at a terminal), parsed into a [`Command`] by a pure function,
//! and the data commands run over the gateway's [`Executor`](kvdb_client::wire::Executor)
//! exactly as gRPC requests do: strong reads, write ids for exactly-once retries, one
//! deadline per command. `AUTH` checks the cluster's client tokens.
//!
//! Read-modify-write commands (`INCR`, `APPEND`, `EXPIRE`, `SET ... XX GET`...) are one KvDB
//! update each, decided by the key's shard: atomic and exactly once, with no read-then-CAS.
//!
//! `MULTI`/`EXEC` with `WATCH`, `MSETNX` and `RENAME` are one KvDB transaction each, over keys
//! of one slot (hash tags), atomic and exactly once; keys in several slots get `CROSSSLOT`.
//!
//! Hashes (`HSET`, `HGET`, `HGETALL`, `HINCRBY`...) are stored whole in their key's record:
//! their writes are updates like the string ones, their reads one read of the key.
//!
//! `SCAN`, `KEYS`, `DBSIZE` and `RANDOMKEY` walk every shard in slot order (see `scan`).
//!
//! A storage node serves Redis Cluster mode (see `cluster`): it answers the keys of the shards
//! it leads, redirects the others with `MOVED`, and describes the map with `CLUSTER SLOTS`,
//! `SHARDS`, `NODES` and `INFO`, so cluster-aware clients route themselves.
//!
//! Out of scope for now: lists, sets, sorted sets, streams, pub/sub, `ASK` redirections, TLS on this port. `docs/redis.md` lists what
//! differs from Redis and why.
//!
//! # Layout
//! - [`codec`]: framing requests out of a buffer, with Redis's size limits.
//! - [`command`] and `table`: arguments to a [`Command`], with Redis's error texts.
//! - [`reply`]: the [`Reply`] value and its RESP2/RESP3 encodings.
//! - [`error`]: command and protocol errors, and the one mapping of `KvError` to a reply.
//! - `plan`: a data command as KvDB operations, and its reply from their results.
//! - `exec`: running plans over the executor, alone or as one transaction (`EXEC`).
//! - `scan`: scan positions behind cursors, and glob matching.
//! - `update`: the read-modify-write commands, their wire form and their replies.
//! - `hash`: the hash commands' arguments, write actions and replies.
//! - `cluster`: where a slot is served in cluster mode, and the `CLUSTER` replies.
//! - `session`, `info`: connection state and the commands about the server itself.
//! - `server`, `connection`: [`serve`] and one task per connection.

#![warn(missing_docs)]

mod cluster;
pub mod codec;
pub mod command;
mod connection;
pub mod error;
mod exec;
mod hash;
mod info;
mod options;
mod plan;
pub mod reply;
mod scan;
mod server;
mod session;
mod table;
mod update;

pub use command::{Command, parse};
pub use error::{CommandError, ProtocolError, kv_error_reply};
pub use info::REDIS_VERSION;
pub use options::RespOptions;
pub use reply::{Protocol, Reply};
pub use server::serve;
