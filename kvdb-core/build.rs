//! Compiles proto/kvdb/v1 with protox (pure Rust), so a machine with only the
//! Rust toolchain builds KvDB: no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Absolute, `..`-free paths: protox resolves relative file names against
    // the working directory, and matches files to include paths by prefix.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../proto")
        .canonicalize()?;
    let files = [
        "gateway.proto",
        "node.proto",
        "coordinator.proto",
        "backup.proto",
    ]
    .map(|name| root.join("kvdb/v1").join(name));
    let descriptors = protox::compile(&files, [&root])?;
    // Kept for tests that enumerate every RPC (the auth table must cover each one).
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("kvdb_descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
