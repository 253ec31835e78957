//! KvDB client library: one async API ([`Kv`]) with two ways in.
//!
//! - [`Client`] (smart): follows the coordinators' shard map and sends each
//!   request straight to the node that serves it.
//! - [`GatewayClient`] (thin): sends everything to a gateway.
//!
//! # Public API
//! Everything a program needs is at the crate root, in domain types only:
//! - the clients: [`Client`] (`connect`, `connect_with`, `cache`) and [`GatewayClient`]
//!   (`connect`, `with_timeout`), both implementing [`Kv`] (`get`, `put`, `delete`,
//!   `compare_and_swap`, the `*_with` forms taking options, and read-modify-write updates:
//!   `update_with` with an [`Action`], and `incr_by`, `append`, `get_set`, `get_del`,
//!   `expire_at`, `persist`);
//! - per-request options: [`GetOptions`] with [`Consistency`], [`PutOptions`] (TTL,
//!   `if_version`, `if_not_exists`), [`DeleteOptions`], each with an optional timeout;
//! - results and errors: [`Value`], [`Version`], [`ClientError`], [`KvError`];
//! - tuning: [`ExecutorConfig`] (deadline, backoff, cool-down, address rewrite) with
//!   [`Backoff`], [`Jitter`] and [`AddressRewrite`].
//!
//! With the `wire` feature, the `wire` module also exposes the request executor over protobuf
//! messages, for servers that relay requests (the gateway); applications do not need it.
//!
//! # Layout
//! - `api`: the [`Kv`] trait, and requests and replies to and from the wire.
//! - `options`, `value`: request options, values and errors.
//! - `executor`: routing, retries on routing hints, backoff, deadlines.
//! - `pool`: one connection per node, failure cool-downs.
//! - `call_link`: the call stream all requests to one node (or gateway) share.
//! - `update`: read-modify-write [`Action`]s and what they answer.
//! - `write_id`: (client id, sequence) pairs for exactly-once retries.
//! - `smart`, `gateway_client`: the two clients.

#![warn(missing_docs)]

mod api;
mod call_link;
mod executor;
mod gateway_client;
mod options;
mod pool;
mod scan;
mod smart;
mod txn;
mod update;
mod value;
mod write_id;

pub use api::Kv;
pub use executor::ExecutorConfig;
pub use gateway_client::GatewayClient;
pub use kvdb_core::AddressRewrite;
pub use kvdb_core::Version;
pub use kvdb_core::backoff::{Backoff, Jitter};
pub use kvdb_core::error::KvError;
/// Prometheus metrics, for [`Client::with_metrics`] and serving them.
pub use kvdb_core::metrics;
pub use options::{Consistency, DeleteOptions, GetOptions, PutOptions, UpdateOptions};
pub use scan::{ScanCursor, ScanPage};
pub use smart::Client;
pub use txn::{Renamed, Txn, TxnReply};
pub use update::{Action, ExpireWhen, Expiry, OnlyIf, Refusal, Updated};
pub use value::{ClientError, HashPairs, Value};

/// The request executor over protobuf messages, for servers that relay requests as they
/// arrive (the gateway). Not for applications: [`Client`] wraps it in domain types.
#[cfg(feature = "wire")]
pub mod wire {
    pub use crate::executor::Executor;
    pub use crate::write_id::{WriteIds, WriteTicket};
}
