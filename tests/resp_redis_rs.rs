//! The `redis` crate (redis-rs), as a Rust application would use it, against a gateway's
//! Redis port: typed commands, an atomic pipeline (`MULTI`/`EXEC`), an optimistic
//! transaction with `WATCH`, `SCAN` through its iterator, errors as its error kinds, and
//! RESP3.

mod common;

use std::net::SocketAddr;

use common::TestCluster;
use redis::AsyncCommands;

async fn connection(addr: SocketAddr, resp3: bool) -> redis::aio::MultiplexedConnection {
    let protocol = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://{addr}/{protocol}")).expect("a URL");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_works_against_the_gateway() {
    let test = TestCluster::start_with(3, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");
    let mut con = connection(addr, false).await;

    // --- typed commands
    let () = con.set("greeting", "hello").await.unwrap();
    let got: String = con.get("greeting").await.unwrap();
    assert_eq!(got, "hello");
    let missing: Option<String> = con.get("nobody").await.unwrap();
    assert_eq!(missing, None);
    let n: i64 = con.incr("visits", 5).await.unwrap();
    assert_eq!(n, 5);
    let () = con.mset(&[("{u}a", "1"), ("{u}b", "2")]).await.unwrap();
    let both: Vec<String> = con.mget(&["{u}a", "{u}b"]).await.unwrap();
    assert_eq!(both, ["1", "2"]);
    let set: bool = con.expire("greeting", 100).await.unwrap();
    assert!(set);
    let ttl: i64 = con.ttl("greeting").await.unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let deleted: i64 = con.del(&["{u}a", "{u}b", "{u}none"]).await.unwrap();
    assert_eq!(deleted, 2);

    // --- an error comes back as the kind redis-rs knows
    let () = con.set("text", "abc").await.unwrap();
    let err = con.incr::<_, _, i64>("text", 1).await.unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::ResponseError);
    assert!(err.to_string().contains("not an integer"), "{err}");

    // --- an atomic pipeline is MULTI/EXEC: one transaction over one slot
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("{p}a", 1)
        .incr("{p}b", 2)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let refused = redis::pipe()
        .atomic()
        .incr("{p}a", 1)
        .incr("elsewhere", 1)
        .query_async::<(i64, i64)>(&mut con)
        .await
        .unwrap_err();
    // redis-rs reports EXEC's CROSSSLOT as a response error of the pipeline.
    assert_eq!(refused.kind(), redis::ErrorKind::ResponseError, "{refused}");
    let unchanged: i64 = con.get("{p}a").await.unwrap();
    assert_eq!(unchanged, 1);

    // --- WATCH: a key changed by someone else makes EXEC answer nil
    let mut watcher = connection(addr, false).await;
    let () = redis::cmd("WATCH")
        .arg("{p}a")
        .query_async(&mut watcher)
        .await
        .unwrap();
    let _: i64 = con.incr("{p}a", 10).await.unwrap();
    let lost: Option<(i64,)> = redis::pipe()
        .atomic()
        .incr("{p}a", 100)
        .query_async(&mut watcher)
        .await
        .unwrap();
    assert_eq!(lost, None, "the watched key changed");
    let now: i64 = con.get("{p}a").await.unwrap();
    assert_eq!(now, 11);

    // --- SCAN through redis-rs's iterator walks every shard
    for i in 0..50 {
        let () = con.set(format!("scan:{i}"), i).await.unwrap();
    }
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter = con.scan_match::<_, String>("scan:*").await.unwrap();
        while let Some(key) = iter.next_item().await {
            keys.push(key);
        }
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 50);

    // --- RESP3
    let mut con3 = connection(addr, true).await;
    let got: String = con3.get("greeting").await.unwrap();
    assert_eq!(got, "hello");
    let both: Vec<Option<String>> = con3.mget(&["greeting", "nobody"]).await.unwrap();
    assert_eq!(both, [Some("hello".to_owned()), None]);
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .incr("{p}a", 1)
        .query_async(&mut con3)
        .await
        .unwrap();
    assert_eq!(n, 12);

    test.stop().await;
}
