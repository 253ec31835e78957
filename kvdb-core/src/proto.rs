//! Generated protobuf and gRPC code for `kvdb.v1`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Version 1 of the KvDB wire protocol.
pub mod v1 {
    tonic::include_proto!("kvdb.v1");
}
