//! A targeted availability scenario: a shard leader stops answering without closing its
//! connections (cut off by a blackhole, as a paused process or a dead link looks), and a
//! client writes to it with a long deadline.
//!
//! The survivors elect a new leader within an election timeout, but a request already on
//! its way to the old one only learns of it if it gives up on that node: the executor's
//! per-attempt timeout does, marks the node failed and asks another replica, which hints at
//! the new leader. Without it the request waits out its whole deadline.

use std::time::Duration;

use kvdb_client::{Kv, PutOptions};

use super::cluster::Endpoint;
use super::stale_read::{KEY, shard_of_key, start_one_shard};

/// Far longer than an attempt timeout plus an election: the write must not need it all.
const DEADLINE: Duration = Duration::from_secs(20);

/// Isolates the leader of a one-shard cluster and writes through a smart client that last
/// talked to it. Returns the write's outcome.
pub async fn write_to_a_hung_leader() -> Result<(), kvdb_client::ClientError> {
    let (cluster, client, _) = start_one_shard(None).await;
    // The client's connection to the leader is open and the leader is in its cache.
    client.put(KEY, b"before").await.expect("a healthy write");
    let shard = shard_of_key(&cluster).id;
    let leader = cluster.elected_leader(shard).await;
    cluster.partition.isolate(&Endpoint::Node(leader));

    let options = PutOptions {
        timeout: Some(DEADLINE),
        ..PutOptions::default()
    };
    let written = client.put_with(KEY, b"after", options).await.map(|_| ());
    cluster.partition.heal();
    cluster.shutdown().await;
    written
}
