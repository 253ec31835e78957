//! Compiles proto/kvdb/v1 with protox (pure Rust), so a machine with only the
//! Rust toolchain builds KvDB: no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let files = [
        "kvdb/v1/gateway.proto",
        "kvdb/v1/node.proto",
        "kvdb/v1/coordinator.proto",
    ];
    let descriptors = protox::compile(files, [root])?;
    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
