//! Write throughput of one node with 8 shards, with and without group
//! commit of the Raft log. Ignored by default (it measures, it does not
//! check much); run with
//! `cargo test -p kvdb-node --release --test throughput -- --ignored --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{TestCluster, put_req};

const WRITERS: usize = 64;
const WRITES_PER_WRITER: usize = 100;

async fn measure(group_commit: bool) -> f64 {
    let cluster =
        Arc::new(TestCluster::start_with(1, 8, 1, move |c| c.group_commit = group_commit).await);
    let before = cluster.node(0).log_stats();
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                for i in 0..WRITES_PER_WRITER {
                    let key = format!("w{w}-k{i}");
                    cluster.put(put_req(key, vec![7u8; 100])).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let after = cluster.node(0).log_stats();
    let total = (WRITERS * WRITES_PER_WRITER) as f64;
    let rate = total / elapsed.as_secs_f64();
    eprintln!(
        "group_commit={group_commit}: {total} writes in {elapsed:?} = {rate:.0} writes/s; \
         log appends {} in {} fsync'd commits",
        after.appends - before.appends,
        after.commits - before.commits,
    );
    if let Ok(cluster) = Arc::try_unwrap(cluster) {
        cluster.shutdown().await;
    }
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn write_throughput_with_and_without_group_commit() {
    let with = measure(true).await;
    let without = measure(false).await;
    eprintln!("group commit speed-up: {:.2}x", with / without);
}
