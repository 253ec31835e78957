//! KvDB coordinator: the control plane.
pub mod admin;
