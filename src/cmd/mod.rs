//! One module per group of subcommands.

pub mod admin;
pub mod backup;
pub mod dev;
pub mod kv;
pub mod servers;
pub mod shell;
