//! Test support for KvDB: record what clients saw, check it is linearizable,
//! and break the network between processes on loopback.
//!
//! This crate depends on no other KvDB crate, so the tests of any crate (and
//! the end-to-end suite in `tests/`) can use it.
//!
//! # Layout
//!
//! - `op`: the per-key vocabulary: [`Op`], [`Outcome`], [`Output`], [`Version`].
//! - `history`: [`Recorder`], shared by client tasks, producing a [`History`]
//!   of invoke/complete events in real-time order.
//! - `model`: the register-with-versions-and-CAS specification.
//! - `checker`: [`check`], per-key linearizability with a step budget.
//! - `reduce`: compiles a key's operations and narrows the windows of
//!   unknown outcomes.
//! - `search`: the Wing-Gong-Lowe search with memoisation.
//! - `report`: [`CheckReport`] and [`Violation`], printable explanations.
//! - `proxy`: [`FaultProxy`], a TCP proxy whose [`Fault`] mode can be
//!   switched at run time (pass, blackhole, reset, delay, one-way cut).
//! - `partition`: [`Partition`], named proxied links cut by node sets.
//! - `wait`: [`wait_until`] a condition with a deadline; [`init_tracing`] for test logs.

#![warn(missing_docs)]

mod checker;
mod history;
mod model;
mod op;
mod partition;
mod proxy;
mod reduce;
mod report;
mod search;
mod wait;

pub use checker::{CheckConfig, check, check_key};
pub use history::{Event, EventKind, History, Operation, PendingOp, Recorder, Summary};
pub use model::LastIndex;
pub use op::{ClientId, Key, Op, OpId, Outcome, Output, Value, Version};
pub use partition::Partition;
pub use proxy::{Direction, Fault, FaultProxy, ProxyError};
pub use report::{CheckReport, Inconclusive, KeyReport, KeyState, PlacedOp, Verdict, Violation};
pub use wait::{DEADLINE, init_tracing, wait_until, wait_until_async, wait_until_or_report};
