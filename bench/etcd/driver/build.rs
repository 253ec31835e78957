//! Compiles the hand-written subset of etcd's KV API (proto/kv.proto) with protox, so the
//! driver builds with only the Rust toolchain, as KvDB does.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Absolute paths: protox resolves relative file names against the
    // working directory.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let descriptors = protox::compile([format!("{root}/kv.proto")], [root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .bytes(".")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
