//! A whole KvDB cluster inside one program: a coordinator, three storage
//! nodes and a gateway on ephemeral loopback ports, then a few operations
//! (strings, compare-and-swap, a TTL, a hash) through the smart client and
//! the gateway client.
//!
//! Run: `cargo run --example embedded_cluster` (needs nothing else running).

use std::time::Duration;

use kvdb::client::{Kv, PutOptions};
use kvdb::cluster::{ClusterConfig, LocalCluster};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join(format!("kvdb-embedded-{}", std::process::id()));
    let cluster = LocalCluster::start(ClusterConfig::ephemeral(&data, 3)).await?;
    println!(
        "cluster up: coordinator {}, gateway {}",
        cluster.coordinator_address(),
        cluster
            .gateway_address()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );

    // The smart client routes each key straight to its shard's leader.
    let client = cluster.client().await?;
    let v1 = client.put(b"user:1", b"ada").await?;
    let read = client.get(b"user:1").await?.expect("just written");
    println!(
        "user:1 = {} (version {})",
        String::from_utf8_lossy(&read.value),
        read.version
    );

    // Compare-and-swap: only the writer holding the current version wins.
    let v2 = client
        .compare_and_swap(b"user:1", v1, b"ada lovelace")
        .await?;
    let stale = client
        .compare_and_swap(b"user:1", v1, b"someone else")
        .await;
    println!(
        "cas with {v1} -> {v2}; again with {v1}: {}",
        stale.unwrap_err()
    );

    // A value with a time to live.
    let ttl = PutOptions {
        ttl: Some(Duration::from_secs(60)),
        ..PutOptions::default()
    };
    client.put_with(b"session:42", b"token", ttl).await?;

    // A hash: fields under one key, changed in place at the key's shard.
    let pairs: [(&[u8], &[u8]); 2] = [(b"name", b"ada"), (b"lang", b"en")];
    client.hset(b"user:1:profile", &pairs).await?;
    let visits = client.hincr_by(b"user:1:profile", b"visits", 1).await?;
    let profile = client.hgetall(b"user:1:profile").await?;
    let fields: Vec<String> = profile
        .iter()
        .map(|(f, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(f),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    println!("user:1:profile ({visits} visits): {}", fields.join(" "));

    // The same API through the gateway.
    let gateway = cluster.gateway_client()?;
    let via_gateway = gateway.get(b"user:1").await?.expect("present");
    println!(
        "via gateway: {}",
        String::from_utf8_lossy(&via_gateway.value)
    );

    cluster.shutdown().await;
    std::fs::remove_dir_all(&data)?;
    Ok(())
}
