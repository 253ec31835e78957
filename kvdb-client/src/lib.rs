//! KvDB client library: one async API ([`Kv`]) with two ways in.
//!
//! - [`Client`] (smart): follows the coordinators' shard map and sends each
//!   request straight to the node that serves it.
//! - [`GatewayClient`] (thin): sends everything to a gateway.
//!
//! # Layout
//! - [`api`]: the [`Kv`] trait.
//! - [`options`], [`value`]: request options, values and errors.
//! - [`executor`]: routing, retries on routing hints, backoff, deadlines.
//! - [`pool`]: one connection per node, failure cool-downs.
//! - [`call_link`]: the call stream all requests to one node (or gateway) share.
//! - [`backoff`]: exponential backoff with jitter as a value (core's, re-exported).
//! - [`write_id`]: (client id, sequence) pairs for exactly-once retries.
//! - [`smart`], [`gateway_client`]: the two clients.

#![warn(missing_docs)]

pub mod api;
pub mod call_link;
pub mod executor;
pub mod gateway_client;
pub mod options;
pub mod pool;
pub mod smart;
pub mod value;
pub mod write_id;

pub use api::Kv;
pub use executor::{Executor, ExecutorConfig};
pub use gateway_client::GatewayClient;
pub use kvdb_core::backoff;
pub use options::{Consistency, DeleteOptions, GetOptions, PutOptions};
pub use smart::Client;
pub use value::{ClientError, Value};
pub use write_id::WriteIds;
