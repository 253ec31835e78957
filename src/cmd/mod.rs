//! One module per group of subcommands.

pub mod admin;
pub mod dev;
pub mod kv;
pub mod servers;
pub mod shell;
