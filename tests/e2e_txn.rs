//! Transactions end to end: operations on keys of one slot applied together by the shard,
//! through the smart client, the gateway client and the Redis port.
//!
//! - a transaction's operations see each other's writes, and a watched key that changed
//!   makes it write nothing;
//! - keys in several slots are refused, with Redis's `CROSSSLOT` on the Redis port, and
//!   nothing is written;
//! - concurrent optimistic increments (read, then a transaction watching what was read)
//!   through both clients and through `WATCH`/`MULTI`/`EXEC` lose no increment and count
//!   none twice: the counter ends at exactly the number of transactions that applied.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use kvdb_client::{ClientError, GatewayClient, Kv, KvError, Renamed, Txn, TxnReply, Version};

use common::TestCluster;
use common::resp::{Conn, error_text};

const WORKERS: usize = 3;
const INCREMENTS: usize = 15;

/// The version and integer at `key` (absent: version 0, value 0).
async fn read_counter(kv: &impl Kv, key: &[u8]) -> (Version, i64) {
    match kv.get(key).await.expect("get") {
        Some(value) => (
            value.version,
            String::from_utf8(value.value).unwrap().parse().unwrap(),
        ),
        None => (Version(0), 0),
    }
}

/// Adds one to `key` with read-then-transaction, retrying while another writer got there
/// first; returns how many attempts lost.
async fn increment(kv: &impl Kv, key: &[u8], log: &[u8]) -> usize {
    let mut lost = 0;
    loop {
        let (version, n) = read_counter(kv, key).await;
        let txn = Txn::new()
            .watch(key, version)
            .put(key, (n + 1).to_string().as_bytes())
            .update(log, kvdb_client::Action::Append(b"+".to_vec()));
        match kv.txn(&txn).await.expect("txn") {
            Some(_) => return lost,
            None => lost += 1,
        }
    }
}

async fn transactions_apply_as_one(kv: &impl Kv, p: &str) {
    let key = |name: &str| format!("{{{p}}}{name}").into_bytes();
    // --- operations see each other's writes
    let txn = Txn::new()
        .put(&key("a"), b"1")
        .update(&key("a"), kvdb_client::Action::IncrBy(4))
        .get(&key("a"))
        .delete(&key("none"))
        .rename(&key("a"), &key("b"), false);
    let replies = kv.txn(&txn).await.unwrap().expect("no guard, so applied");
    assert!(matches!(replies[0], TxnReply::Put(Ok(_))));
    match &replies[2] {
        TxnReply::Got(Some(value)) => assert_eq!(value.value, b"5"),
        other => panic!("{other:?}"),
    }
    assert_eq!(replies[3], TxnReply::Deleted(false));
    assert_eq!(replies[4], TxnReply::Renamed(Renamed::Done));
    assert!(kv.get(&key("a")).await.unwrap().is_none());
    let b = kv.get(&key("b")).await.unwrap().unwrap();
    assert_eq!(b.value, b"5");

    // --- a watched key that changed: nothing written
    kv.put(&key("b"), b"6").await.unwrap();
    let stale = Txn::new().watch(&key("b"), b.version).put(&key("c"), b"x");
    assert_eq!(kv.txn(&stale).await.unwrap(), None);
    assert!(kv.get(&key("c")).await.unwrap().is_none());

    // --- keys in two slots: refused before anything is written
    let cross = Txn::new().put(&key("d"), b"1").put(b"elsewhere", b"2");
    match kv.txn(&cross).await {
        Err(ClientError::Kv(KvError::InvalidArgument(why))) => {
            assert!(why.starts_with("CROSSSLOT"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(kv.get(&key("d")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_through_both_clients_lose_and_double_nothing() {
    let test = TestCluster::start(3).await;
    let smart = Arc::new(test.cluster.client().await.expect("a smart client"));
    let gateway = test.cluster.gateway_address().expect("a gateway");
    let thin = Arc::new(GatewayClient::connect(&gateway.to_string()).expect("a gateway client"));
    transactions_apply_as_one(smart.as_ref(), "smart").await;
    transactions_apply_as_one(thin.as_ref(), "gateway").await;

    // --- concurrent optimistic increments, half through each client
    let (key, log) = (b"{ctr}n".as_slice(), b"{ctr}log".as_slice());
    let mut tasks = Vec::new();
    for worker in 0..WORKERS * 2 {
        let (smart, thin) = (smart.clone(), thin.clone());
        tasks.push(tokio::spawn(async move {
            let mut lost = 0;
            for _ in 0..INCREMENTS {
                lost += if worker % 2 == 0 {
                    increment(smart.as_ref(), key, log).await
                } else {
                    increment(thin.as_ref(), key, log).await
                };
            }
            lost
        }));
    }
    let mut lost = 0;
    for task in tasks {
        lost += task.await.unwrap();
    }
    let total = (WORKERS * 2 * INCREMENTS) as i64;
    assert_eq!(read_counter(smart.as_ref(), key).await.1, total);
    // Each applied transaction appended once to the log key, in the same entry.
    let appended = smart.get(log).await.unwrap().unwrap().value;
    assert_eq!(appended.len() as i64, total);
    println!("{total} increments applied, {lost} attempts lost to a concurrent writer");
    test.stop().await;
}

/// `WATCH`, `GET`, `MULTI`, `SET`, `EXEC` until the `EXEC` applies; returns the attempts lost.
fn resp_increment(conn: &mut Conn, key: &[u8]) -> usize {
    use redis_protocol::resp2::types::OwnedFrame;
    let mut lost = 0;
    loop {
        conn.call(&[b"WATCH", key]);
        let n: i64 = match conn.call(&[b"GET", key]) {
            OwnedFrame::BulkString(v) => String::from_utf8(v).unwrap().parse().unwrap(),
            OwnedFrame::Null => 0,
            other => panic!("{other:?}"),
        };
        conn.call(&[b"MULTI"]);
        conn.call(&[b"SET", key, (n + 1).to_string().as_bytes()]);
        match conn.call(&[b"EXEC"]) {
            OwnedFrame::Array(replies) if replies.len() == 1 => return lost,
            OwnedFrame::Null => lost += 1,
            other => panic!("EXEC answered {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_multi_exec_over_the_redis_port_is_atomic() {
    let test = TestCluster::start_with(3, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");

    // --- keys in several slots are refused, and nothing is written
    let mut conn = Conn::connect(addr);
    let crossslot = "CROSSSLOT Keys in request don't hash to the same slot";
    assert_eq!(
        error_text(conn.call(&[b"MSETNX", b"a", b"1", b"b", b"2"])),
        crossslot
    );
    conn.call(&[b"SET", b"a", b"1"]);
    assert_eq!(error_text(conn.call(&[b"RENAME", b"a", b"b"])), crossslot);
    conn.call(&[b"MULTI"]);
    conn.call(&[b"SET", b"c", b"1"]);
    conn.call(&[b"SET", b"d", b"1"]);
    assert_eq!(error_text(conn.call(&[b"EXEC"])), crossslot);
    for key in [b"b", b"c", b"d"] {
        assert_eq!(
            conn.call(&[b"EXISTS", key]),
            redis_protocol::resp2::types::OwnedFrame::Integer(0)
        );
    }
    // MSETNX inside MULTI is refused when queued, and dooms the transaction.
    conn.call(&[b"MULTI"]);
    let refused = error_text(conn.call(&[b"MSETNX", b"{x}a", b"1"]));
    assert!(refused.starts_with("ERR"), "{refused}");
    assert!(error_text(conn.call(&[b"EXEC"])).starts_with("EXECABORT"));

    // --- concurrent WATCH-based increments on separate connections
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let mut conn = Conn::connect(addr);
                (0..INCREMENTS)
                    .map(|_| resp_increment(&mut conn, b"counter"))
                    .sum::<usize>()
            })
        })
        .collect();
    let mut lost = 0;
    for worker in workers {
        lost += worker.await.unwrap();
    }
    let total = (WORKERS * INCREMENTS).to_string();
    assert_eq!(
        conn.call(&[b"GET", b"counter"]),
        redis_protocol::resp2::types::OwnedFrame::BulkString(total.clone().into_bytes())
    );
    println!("{total} increments over RESP, {lost} EXECs lost to a concurrent writer");
    test.stop().await;
}
