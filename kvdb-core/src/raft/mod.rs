//! openraft plumbing shared by the coordinator group and every shard group:
//! log and state-machine storage, and the gRPC transport.
//!
//! # Layout
//! - [`codec`]: the byte encoding of Raft messages, entries and snapshots.
//! - [`lease`]: when a leader may serve linearizable reads without a heartbeat round.
//! - [`read_floor`]: the index a leader must have applied before its first linearizable read.
//! - [`log_store`]: `RaftLogStorage` on one append-only log shared by many groups, group commit.
//! - [`quiesce`]: idle groups stop ticking; one message per peer stands in for their heartbeats.
//! - [`state_machine`]: `RaftStateMachine` over a pluggable [`Machine`](state_machine::Machine).
//! - [`transport`]: `RaftNetworkFactory` over the `RaftTransport` gRPC service, and
//!   the server side that dispatches to the right group.

pub mod codec;
pub mod lease;
pub mod log_store;
pub mod quiesce;
pub mod read_floor;
pub mod state_machine;
pub mod transport;

/// Locks `mutex`, taking over the data of a holder that panicked: the state guarded here is
/// written whole under the lock, so a panic leaves no half-written value behind.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod leader_resumption_tests;
#[cfg(test)]
mod pending_append_tests;
#[cfg(test)]
mod segment_log_tests;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod test_support;
