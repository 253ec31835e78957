//! `SCAN`, `KEYS`, `DBSIZE` and `RANDOMKEY` over the Redis port of a 3-node cluster, and
//! `Kv::scan` on both Rust clients: every shard is walked, and a `SCAN` that goes on while every shard splits still lists every key
//! that was there throughout (perhaps twice, which `SCAN` allows), and nothing else.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use redis_protocol::resp2::types::OwnedFrame;

use common::TestCluster;
use common::resp::{Conn, bulk};
use kvdb_client::{GatewayClient, Kv, ScanCursor};

const KEYS: usize = 300;

/// One `SCAN` call: the next cursor and the keys listed.
fn scan(conn: &mut Conn, cursor: &[u8], count: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    match conn.call(&[b"SCAN", cursor, b"COUNT", count]) {
        OwnedFrame::Array(mut reply) if reply.len() == 2 => {
            let keys = match reply.pop() {
                Some(OwnedFrame::Array(keys)) => keys.into_iter().map(bulk).collect(),
                other => panic!("{other:?}"),
            };
            (bulk(reply.pop().unwrap()), keys)
        }
        other => panic!("SCAN answered {other:?}"),
    }
}

/// Every key, paging through `kv` with `Kv::scan` 50 stored keys at a time.
async fn list_all(kv: &impl Kv) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    let mut cursor = Some(ScanCursor::default());
    let mut pages = 0;
    while let Some(at) = cursor {
        let page = kv.scan(&at, 50).await.expect("scan");
        keys.extend(page.keys);
        cursor = page.next;
        pages += 1;
        assert!(pages < 1_000, "the scan never ends");
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_walk_every_shard_and_survive_splits() {
    let test = TestCluster::start_with(3, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");
    let client = test.cluster.client().await.expect("a smart client");

    // --- an empty keyspace
    let empty = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(addr);
        (
            conn.call(&[b"RANDOMKEY"]),
            conn.call(&[b"DBSIZE"]),
            scan(&mut conn, b"0", b"10"),
        )
    })
    .await
    .unwrap();
    assert_eq!(empty.0, OwnedFrame::Null);
    assert_eq!(empty.1, OwnedFrame::Integer(0));
    assert_eq!(empty.2, (b"0".to_vec(), Vec::new()));

    let written: BTreeSet<Vec<u8>> = (0..KEYS).map(|i| format!("key:{i}").into_bytes()).collect();
    for key in &written {
        client.put(key, b"v").await.expect("put");
    }

    // --- the same walk through the Rust API, on both clients
    let gateway = test.cluster.gateway_address().expect("a gateway");
    let thin = GatewayClient::connect(&gateway.to_string()).expect("a gateway client");
    assert_eq!(list_all(&client).await, written, "smart client");
    assert_eq!(list_all(&thin).await, written, "gateway client");

    // --- whole-keyspace answers
    let expected = written.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(addr);
        let keys = match conn.call(&[b"KEYS", b"key:*"]) {
            OwnedFrame::Array(keys) => keys.into_iter().map(bulk).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let tens = match conn.call(&[b"KEYS", b"key:1?"]) {
            OwnedFrame::Array(keys) => keys.len(),
            other => panic!("{other:?}"),
        };
        let random = bulk(conn.call(&[b"RANDOMKEY"]));
        (keys, tens, conn.call(&[b"DBSIZE"]), random)
    })
    .await
    .unwrap();
    assert_eq!(listed.0.len(), KEYS, "KEYS lists each key once");
    assert_eq!(listed.0.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(listed.1, 10, "key:10 ..= key:19");
    assert_eq!(listed.2, OwnedFrame::Integer(KEYS as i64));
    assert!(expected.contains(&listed.3), "RANDOMKEY names a stored key");

    // --- a SCAN that goes on while every shard splits
    let (first_page, first_page_seen) = tokio::sync::oneshot::channel();
    let (go_on, resume) = std::sync::mpsc::channel::<()>();
    let scanner = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(addr);
        let (mut cursor, mut seen) = scan(&mut conn, b"0", b"25");
        first_page.send(cursor.clone()).unwrap();
        resume.recv().unwrap();
        let mut calls = 1;
        while cursor != b"0" {
            let (next, keys) = scan(&mut conn, &cursor, b"25");
            cursor = next;
            seen.extend(keys);
            calls += 1;
            assert!(calls < 1_000, "the scan never ends");
        }
        (seen, calls)
    });
    let cursor = first_page_seen.await.unwrap();
    assert_ne!(cursor, b"0", "{KEYS} keys take more than one page of 25");
    let map = test.cluster.coordinator().map();
    for shard in map.shards.values() {
        test.cluster
            .coordinator()
            .split_shard(shard.id, Some(shard.epoch), None)
            .await
            .expect("split");
    }
    go_on.send(()).unwrap();
    let (seen, calls) = scanner.await.unwrap();
    let unique: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
    assert_eq!(unique, written, "every key listed, and nothing else");
    println!(
        "SCAN: {calls} calls, {} keys listed for {KEYS} ({} twice)",
        seen.len(),
        seen.len() - unique.len()
    );

    // --- FLUSHDB is refused unless the gateway allows it, and then empties every shard
    let refused = tokio::task::spawn_blocking(move || Conn::connect(addr).call(&[b"FLUSHDB"]))
        .await
        .unwrap();
    assert!(
        matches!(&refused, OwnedFrame::Error(e) if e.contains("--resp-allow-flush")),
        "{refused:?}"
    );
    assert!(
        client.get(b"key:0").await.unwrap().is_some(),
        "nothing deleted"
    );
    test.stop().await;

    let test = TestCluster::start_with(1, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.resp_allow_flush = true;
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");
    let flushed = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(addr);
        for i in 0..40 {
            conn.call(&[b"SET", format!("f:{i}").as_bytes(), b"v"]);
        }
        let before = conn.call(&[b"DBSIZE"]);
        let flush = conn.call(&[b"FLUSHALL", b"ASYNC"]);
        (
            before,
            flush,
            conn.call(&[b"DBSIZE"]),
            conn.call(&[b"KEYS", b"*"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(flushed.0, OwnedFrame::Integer(40));
    assert_eq!(flushed.1, OwnedFrame::SimpleString(b"OK".to_vec()));
    assert_eq!(flushed.2, OwnedFrame::Integer(0));
    assert_eq!(flushed.3, OwnedFrame::Array(Vec::new()));
    test.stop().await;
}
