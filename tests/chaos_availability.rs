//! Availability under a network fault on one node: a measurement for `make availability`,
//! ignored by `cargo test` (it asserts no timing; see `chaos::availability`).

mod chaos;

use std::time::Duration;

use chaos::availability::{LinkFault, measure};

/// How long each fault is held.
const HELD: Duration = Duration::from_secs(8);
/// Shards, as in the fault test that motivated the report.
const SHARDS: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: make availability"]
async fn isolating_one_node() {
    measure(LinkFault::Isolate, HELD, SHARDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: make availability"]
async fn delaying_one_node_by_150ms() {
    measure(LinkFault::Delay(Duration::from_millis(150)), HELD, SHARDS).await;
}
