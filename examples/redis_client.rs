//! A Redis client library (redis-rs) against KvDB: the gateway's Redis port, and, when given,
//! the nodes' Redis Cluster ports.
//!
//! Start a cluster first (`cargo run --release -- dev`, or `cargo run --release -- dev
//! --cluster-resp-port 6390` for cluster mode too), then:
//! `cargo run --example redis_client [GATEWAY_RESP_ADDR [NODE_RESP_ADDR]]`
//! (default 127.0.0.1:6380, the dev cluster's gateway; no cluster mode unless a node's
//! address is given, e.g. 127.0.0.1:6390).

use std::collections::HashMap;

use redis::AsyncCommands;

#[tokio::main]
async fn main() -> redis::RedisResult<()> {
    let mut args = std::env::args().skip(1);
    let gateway = args.next().unwrap_or_else(|| "127.0.0.1:6380".to_owned());
    let client = redis::Client::open(format!("redis://{gateway}/"))?;
    let mut con = client.get_multiplexed_async_connection().await?;

    // Every write is a Raft entry, committed on a majority before the reply.
    let () = con.set_ex("greeting", "hello", 60).await?;
    let greeting: String = con.get("greeting").await?;
    let ttl: i64 = con.ttl("greeting").await?;
    println!("GET greeting: {greeting} (expires in {ttl} s)");

    // Read-modify-write commands are applied by the shard itself, once, however often the
    // gateway retries them.
    let visits: i64 = con.incr("visits", 1).await?;
    println!("INCR visits: {visits}");

    // A hash is one key: its fields live with it in the key's shard.
    let () = con
        .hset_multiple("user:7", &[("name", "grace"), ("lang", "COBOL")])
        .await?;
    let user: HashMap<String, String> = con.hgetall("user:7").await?;
    println!("HGETALL user:7: {user:?}");

    // MULTI/EXEC over keys that share a hash tag (one slot) is one atomic Raft entry; keys in
    // several slots are refused with CROSSSLOT, as Redis Cluster refuses them.
    let (from, to): (i64, i64) = redis::pipe()
        .atomic()
        .decr("{acct}alice", 30)
        .incr("{acct}bob", 30)
        .query_async(&mut con)
        .await?;
    println!("transfer in one transaction: alice {from}, bob {to}");
    let refused = redis::pipe()
        .atomic()
        .incr("{acct}alice", 1)
        .incr("elsewhere", 1)
        .query_async::<(i64, i64)>(&mut con)
        .await;
    let elsewhere: Option<i64> = con.get("elsewhere").await?;
    println!(
        "a transaction across slots: refused ({}), elsewhere = {elsewhere:?}",
        if refused.is_err() {
            "CROSSSLOT"
        } else {
            "applied?!"
        }
    );

    // Cluster mode: the client reads CLUSTER SLOTS and sends each key to its shard's leader.
    if let Some(node) = args.next() {
        let cluster = redis::cluster::ClusterClient::new(vec![format!("redis://{node}/")])?;
        let mut con = cluster.get_async_connection().await?;
        for i in 0..10 {
            let () = con.set(format!("key:{i}"), i).await?;
        }
        let mut sum = 0;
        for i in 0..10 {
            sum += con.get::<_, i64>(format!("key:{i}")).await?;
        }
        println!(
            "cluster mode via {node}: key:0..key:9 written and read at their leaders, sum {sum}"
        );
    }
    Ok(())
}
