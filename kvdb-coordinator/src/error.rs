//! The errors a coordinator operation can end with: [`CoordinatorError`], defined in core
//! beside its wire codec ([`kvdb_core::status::control`]) so that clients decode exactly what
//! the coordinator sent.

pub use kvdb_core::coordinator_error::{BusyReason, CoordinatorError, codes};
