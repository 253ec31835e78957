//! The smart client against a running cluster: it follows the coordinators'
//! shard map and talks to the storage nodes directly.
//!
//! Start a cluster first (`cargo run --release -- dev`), then:
//! `cargo run --example smart_client [COORDINATOR_ADDR]`
//! (default 127.0.0.1:7380, the dev cluster's coordinator).

use kvdb::client::{Action, Client, ClientError, Consistency, GetOptions, Kv, Txn};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let coordinator = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7380".to_owned());
    let client = Client::connect(&[coordinator]).await?;

    let version = client.put(b"{user:7}.name", b"grace").await?;
    client.put(b"{user:7}.lang", b"COBOL").await?; // same hash tag: same shard
    println!("wrote {{user:7}}.name at version {version}");

    let name = client.get(b"{user:7}.name").await?.expect("just written");
    println!("strong read: {}", String::from_utf8_lossy(&name.value));

    // A transaction over keys of one slot: applied whole, in one Raft entry, or not at all
    // when the watched name changed since it was read.
    let txn = Txn::new()
        .watch(b"{user:7}.name", name.version)
        .put(b"{user:7}.name", b"grace hopper")
        .update(b"{user:7}.visits", Action::IncrBy(1));
    match client.txn(&txn).await? {
        Some(_) => println!("transaction applied: renamed and counted a visit"),
        None => println!("{{user:7}}.name changed since it was read: nothing written"),
    }

    // Eventual reads may be served by any replica and may lag.
    let eventual = GetOptions {
        consistency: Consistency::Eventual,
        ..GetOptions::default()
    };
    match client.get_with(b"{user:7}.lang", eventual).await? {
        Some(v) => println!("eventual read: {}", String::from_utf8_lossy(&v.value)),
        None => println!("eventual read: not yet replicated here"),
    }

    let existed = client.delete(b"{user:7}.lang").await?;
    println!("deleted {{user:7}}.lang: {existed}");
    Ok(())
}
