//! The thin client: every request goes to a gateway, which routes it.
//!
//! Start a cluster first (`cargo run --release -- dev`), then:
//! `cargo run --example gateway_client [GATEWAY_ADDR]`
//! (default 127.0.0.1:7379, the dev cluster's gateway).

use kvdb::client::{ClientError, GatewayClient, Kv, PutOptions};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let gateway = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7379".to_owned());
    let client = GatewayClient::connect(&gateway)?;

    // Create-only write: succeeds the first time, fails the second.
    let create = PutOptions {
        if_not_exists: true,
        ..PutOptions::default()
    };
    match client.put_with(b"counter", b"0", create.clone()).await {
        Ok(v) => println!("created counter at version {v}"),
        Err(ClientError::ConditionFailed { current }) => {
            println!("counter already exists at version {current}")
        }
        Err(e) => return Err(e),
    }

    // Increment with compare-and-swap, retrying on conflicts.
    loop {
        let current = client.get(b"counter").await?.expect("created above");
        let n: u64 = String::from_utf8_lossy(&current.value).parse().unwrap_or(0);
        let next = (n + 1).to_string();
        match client
            .compare_and_swap(b"counter", current.version, next.as_bytes())
            .await
        {
            Ok(v) => {
                println!("counter = {next} (version {v})");
                break;
            }
            Err(ClientError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
