//! KvDB gateway: the `KvGateway` gRPC service as a thin adapter over the
//! client's [`Executor`], plus the standard gRPC health service.
//!
//! Clients that cannot link the smart client talk to a gateway; the gateway
//! owns the shard-map cache, the node connections and the retry policy.
//!
//! # Layout
//! - [`service`]: the `KvGateway` service (decode, execute, map errors).
//! - [`server`]: serving it with health and graceful shutdown.

#![warn(missing_docs)]

pub mod server;
pub mod service;

pub use kvdb_client::wire::Executor;
pub use server::{Gateway, serve};
pub use service::GatewayService;
