//! Availability under a network fault on one node: a measurement for `make availability`,
//! ignored by `cargo test` (it asserts no timing; see `chaos::availability`).

mod chaos;

use std::time::Duration;

use chaos::availability::{LinkFault, measure};
use chaos::cluster::ChaosOptions;
use kvdb_node::config::DEFAULT_SLOW_LEADER;
use kvdb_node::slow_leader::SlowLeaderPolicy;

/// How long each fault is held.
const HELD: Duration = Duration::from_secs(8);
/// Delay on every link of one node, each way, as in the fault test that motivated the report.
const DELAY: Duration = Duration::from_millis(150);
/// Shards, as in the fault test that motivated the report.
const SHARDS: u32 = 8;

fn options(slow_leader: Option<SlowLeaderPolicy>) -> ChaosOptions {
    ChaosOptions {
        shards: SHARDS,
        slow_leader,
        ..ChaosOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: make availability"]
async fn isolating_one_node() {
    measure(LinkFault::Isolate, HELD, options(Some(DEFAULT_SLOW_LEADER))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: make availability"]
async fn delaying_one_node_by_150ms() {
    measure(
        LinkFault::Delay(DELAY),
        HELD,
        options(Some(DEFAULT_SLOW_LEADER)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: make availability"]
async fn delaying_one_node_by_150ms_without_slow_leader_hand_over() {
    measure(LinkFault::Delay(DELAY), HELD, options(None)).await;
}
