//! gRPC client of the coordinator group. In progress.

/// Trailer with the coordinator leader's Raft id on a `NOT_LEADER` error
/// (next to [`crate::status::LEADER_HINT`] with its gRPC address).
pub const LEADER_ID_HEADER: &str = "x-leader-id";
