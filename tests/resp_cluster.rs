//! Redis Cluster mode on storage nodes, with the real Redis tools and the redis-rs cluster
//! client: `CLUSTER SLOTS` names each shard's leader, a node answers the keys it leads and
//! sends the others away with `MOVED`, `redis-cli -c` and `redis-benchmark --cluster` route
//! themselves, and redis-rs's cluster client follows a failover when a leader's node dies.
//! A large hash deleted through the gateway is gone at once, and its rows are swept on every
//! replica, across a leader's stop and restart.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::resp::{Conn, bulk, error_text};
use common::{TestCluster, node_index, shard_of, wait_until};
use kvdb::cluster::LocalCluster;
use kvdb::core::{NodeId, ShardId, slot};
use redis::AsyncCommands;
use redis_protocol::resp2::types::OwnedFrame as Frame;

const NODES: usize = 3;

async fn start() -> TestCluster {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let test = TestCluster::start_with(NODES, |config| {
        config.node_resp = vec![any; NODES];
        config.resp = Some(any);
    })
    .await;
    wait_for_routes(&test.cluster).await;
    test
}

/// Waits until every running node's map names a leader with a RESP address for every shard,
/// as the coordinator's map does: what a node redirects by.
async fn wait_for_routes(cluster: &LocalCluster) {
    wait_until(
        "every node to route every slot to a leader's RESP port",
        || {
            let Some(map) = cluster.map() else {
                return false;
            };
            let led = map.shards.values().all(|s| {
                s.leader
                    .and_then(|l| map.nodes.get(&l))
                    .is_some_and(|n| !n.resp_address.is_empty())
            });
            led && (0..cluster.node_count())
                .filter_map(|i| cluster.node(i))
                .all(|n| n.manager().cache().current().as_ref() == map.as_ref())
        },
    )
    .await;
}

fn resp_port_of(cluster: &LocalCluster, node: NodeId) -> u16 {
    let i = node_index(cluster, node).expect("a running node");
    cluster
        .node_resp_address(i)
        .expect("a RESP listener")
        .port()
}

async fn on(addr: SocketAddr, argv: &[&[u8]]) -> Frame {
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        Conn::connect(addr).call(&argv)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_redis_cluster_mode() {
    let test = start().await;
    let cluster = &test.cluster;
    let map = cluster.map().unwrap();
    let node0 = cluster.node_resp_address(0).unwrap();

    // --- CLUSTER SLOTS: every shard's range, its leader's RESP port first
    let Frame::Array(ranges) = on(node0, &[b"CLUSTER", b"SLOTS"]).await else {
        panic!("CLUSTER SLOTS is an array")
    };
    assert_eq!(ranges.len(), map.shards.len());
    let mut covered = 0;
    for (range, shard) in ranges.iter().zip(map.shards.values()) {
        let Frame::Array(fields) = range else {
            panic!("a range is an array")
        };
        assert_eq!(fields[0], Frame::Integer(i64::from(shard.slot_start.0)));
        assert_eq!(fields[1], Frame::Integer(i64::from(shard.slot_end.0)));
        covered += shard.slot_end.0 as usize - shard.slot_start.0 as usize + 1;
        let Frame::Array(master) = &fields[2] else {
            panic!("a node is an array")
        };
        let leader = shard.leader.unwrap();
        assert_eq!(
            master[1],
            Frame::Integer(i64::from(resp_port_of(cluster, leader)))
        );
        assert_eq!(fields.len(), 2 + 3, "the leader and two other replicas");
    }
    assert_eq!(covered, 16384);

    // --- a key is answered by its leader and redirected by the others
    let key = b"user:42";
    let shard = &map.shards[&shard_of(&map, key)];
    let leader = shard.leader.unwrap();
    let leader_addr = cluster
        .node_resp_address(node_index(cluster, leader).unwrap())
        .unwrap();
    let follower = (0..NODES).find(|&i| cluster.node_id(i) != leader).unwrap();
    let follower_addr = cluster.node_resp_address(follower).unwrap();
    assert_eq!(
        on(leader_addr, &[b"SET", key, b"ada"]).await,
        Frame::SimpleString(b"OK".to_vec())
    );
    let moved = error_text(on(follower_addr, &[b"GET", key]).await);
    assert_eq!(moved, format!("MOVED {} {leader_addr}", slot::slot(key).0));
    // READONLY: a replica answers reads of its shards, and still redirects writes.
    let replica_reads = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(follower_addr);
        assert_eq!(
            conn.call(&[b"READONLY"]),
            Frame::SimpleString(b"OK".to_vec())
        );
        let read = bulk(conn.call(&[b"GET", key]));
        let write = error_text(conn.call(&[b"SET", key, b"x"]));
        (read, write)
    })
    .await
    .unwrap();
    assert_eq!(replica_reads.0, b"ada");
    assert!(replica_reads.1.starts_with("MOVED "), "{}", replica_reads.1);

    // --- keys of several slots in one command: CROSSSLOT, as a Redis Cluster node says
    let crossed = error_text(on(node0, &[b"MGET", b"a", b"b"]).await);
    assert_eq!(
        crossed,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );

    // --- the small CLUSTER commands
    assert_eq!(
        on(node0, &[b"CLUSTER", b"KEYSLOT", b"foo"]).await,
        Frame::Integer(12182)
    );
    let id = bulk(on(node0, &[b"CLUSTER", b"MYID"]).await);
    assert_eq!(id.len(), 40);
    let info = String::from_utf8(bulk(on(node0, &[b"CLUSTER", b"INFO"]).await)).unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
    let nodes = String::from_utf8(bulk(on(node0, &[b"CLUSTER", b"NODES"]).await)).unwrap();
    assert_eq!(nodes.lines().count(), NODES, "{nodes}");
    assert_eq!(
        nodes
            .lines()
            .filter(|l| l.contains("myself,master"))
            .count(),
        1,
        "{nodes}"
    );
    // The gateway is a standalone server, as a Redis without cluster support answers.
    let gateway = cluster.resp_address().unwrap();
    assert_eq!(
        error_text(on(gateway, &[b"CLUSTER", b"SLOTS"]).await),
        "ERR This instance has cluster support disabled"
    );

    // --- redis-cli -c follows MOVED from whichever node it asks
    let cli = |port: u16, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let ports: Vec<u16> = (0..NODES)
        .map(|i| cluster.node_resp_address(i).unwrap().port())
        .collect();
    for i in 0..30 {
        let key = format!("cli:{i}");
        assert_eq!(cli(ports[i % NODES], &["SET", &key, &i.to_string()]), "OK");
    }
    for i in 0..30 {
        let key = format!("cli:{i}");
        assert_eq!(cli(ports[(i + 1) % NODES], &["GET", &key]), i.to_string());
    }

    // --- keyless commands cover the slots a node leads, so their sums are the cluster's
    let Frame::Integer(total) = on(gateway, &[b"DBSIZE"]).await else {
        panic!("DBSIZE is an integer")
    };
    let map = cluster.map().unwrap();
    let mut sum = 0;
    let mut listed = std::collections::BTreeSet::new();
    let mut scanned_all = std::collections::BTreeSet::new();
    for i in 0..NODES {
        let addr = cluster.node_resp_address(i).unwrap();
        let Frame::Integer(n) = on(addr, &[b"DBSIZE"]).await else {
            panic!("DBSIZE is an integer")
        };
        sum += n;
        let Frame::Array(keys) = on(addr, &[b"KEYS", b"*"]).await else {
            panic!("KEYS is an array")
        };
        assert_eq!(keys.len() as i64, n);
        for key in keys {
            let key = bulk(key);
            let owner = &map.shards[&shard_of(&map, &key)];
            assert_eq!(
                owner.leader,
                Some(cluster.node_id(i)),
                "{key:?} listed by node {i}"
            );
            listed.insert(key);
        }
        // redis-cli's SCAN loop on one node lists its share of the cli: keys.
        let scanned = cli(addr.port(), &["--scan", "--pattern", "cli:*"]);
        for key in scanned.lines().filter(|l| !l.is_empty()) {
            let owner = &map.shards[&shard_of(&map, key.as_bytes())];
            assert_eq!(
                owner.leader,
                Some(cluster.node_id(i)),
                "{key} scanned on node {i}"
            );
            assert!(scanned_all.insert(key.to_owned()), "{key} scanned twice");
        }
    }
    assert_eq!(scanned_all.len(), 30);
    assert_eq!(sum, total);
    assert_eq!(listed.len() as i64, total);

    // --- redis-benchmark --cluster finds the masters and runs against them, pipelined too
    for pipeline in ["1", "16"] {
        let out = Command::new("redis-benchmark")
            .args(["--cluster", "-h", "127.0.0.1", "-p", &ports[0].to_string()])
            .args(["-t", "set,get,incr,mset,hset", "-n", "600", "-c", "6", "-q"])
            .args(["-P", pipeline])
            .output()
            .expect("redis-benchmark runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "-P {pipeline}: {out:?}");
        assert!(stdout.contains("Cluster has 3 master nodes"), "{stdout}");
        for test in ["SET", "GET", "INCR", "MSET (10 keys)", "HSET"] {
            assert!(
                stdout.contains(&format!("{test}: ")),
                "-P {pipeline}: no {test:?} in {stdout}"
            );
        }
        assert!(
            !stdout.to_lowercase().contains("error"),
            "-P {pipeline}: {stdout}"
        );
    }

    test.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_rs_cluster_client_routes_itself_and_follows_a_failover() {
    let mut test = start().await;
    let urls: Vec<String> = (0..NODES)
        .map(|i| format!("redis://{}/", test.cluster.node_resp_address(i).unwrap()))
        .collect();
    let client = redis::cluster::ClusterClient::builder(urls)
        .retries(20)
        .build()
        .unwrap();
    let mut con = client.get_async_connection().await.expect("connects");

    // --- keys on every shard, each routed to its leader
    for i in 0..100 {
        let () = con.set(format!("k{i}"), i).await.unwrap();
    }
    // --- hashes too, each at the leader of its key's slot
    for i in 0..20 {
        let () = con
            .hset_multiple(format!("h{i}"), &[("a", i), ("b", i + 1)])
            .await
            .unwrap();
        let sum: i64 = con.hincr(format!("h{i}"), "a", 10).await.unwrap();
        assert_eq!(sum, i + 10);
    }
    for i in 0..20 {
        let all: std::collections::HashMap<String, i64> =
            con.hgetall(format!("h{i}")).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all["a"], all["b"]), (i + 10, i + 1));
    }
    for i in 0..100 {
        let got: i64 = con.get(format!("k{i}")).await.unwrap();
        assert_eq!(got, i);
    }
    let n: i64 = con.incr("{counter}", 5).await.unwrap();
    assert_eq!(n, 5);
    let () = con.mset(&[("{t}a", "1"), ("{t}b", "2")]).await.unwrap();
    let both: Vec<String> = con.mget(&["{t}a", "{t}b"]).await.unwrap();
    assert_eq!(both, ["1", "2"]);

    // --- the node leading "k0"'s shard dies: its shard elects a leader on the other two
    // nodes, and the client, refused by the dead node, asks the others where it went.
    let map = test.cluster.map().unwrap();
    let shard = shard_of(&map, b"k0");
    let leader = map.shards[&shard].leader.unwrap();
    let index = node_index(&test.cluster, leader).unwrap();
    test.cluster.stop_node(index).await;
    wait_until("another node to lead the shard", || {
        test.cluster
            .map()
            .and_then(|m| m.shards[&shard].leader)
            .is_some_and(|l| l != leader)
    })
    .await;
    for i in 0..100 {
        let () = con.set(format!("k{i}"), i + 1000).await.unwrap();
    }
    for i in 0..100 {
        let got: i64 = con.get(format!("k{i}")).await.unwrap();
        assert_eq!(got, i + 1000);
    }
    test.stop().await;
}

/// The member rows a node's replica of `shard` stores, and the collections it has left to
/// sweep; `None` while the node is down.
fn sweep_state(cluster: &LocalCluster, i: usize, shard: ShardId) -> Option<(usize, usize)> {
    use kvdb::core::member_rows::all_member_rows;
    let replica = cluster.node(i)?.manager().replica(shard)?;
    let rows = replica
        .storage()
        .aux_range(all_member_rows().bounds(), usize::MAX)
        .unwrap()
        .len();
    Some((rows, replica.collections_to_sweep()))
}

/// A large hash's `DEL` removes its key row only: the hash is gone for every reader at once,
/// a new hash under the key starts empty, and the shard leader's sweeper then removes the old
/// field rows on every replica, a bounded batch per Raft entry. The leader's node stops
/// before the sweep is done: the next leader finishes it, and the stopped node, restarted,
/// ends with no row left either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_large_hash_is_gone_at_once_and_its_rows_are_swept_on_every_replica() {
    const FIELDS: usize = 3000;

    let mut test = start().await;
    let gateway = test.cluster.resp_address().unwrap();
    let key = b"big:{sweep}".as_slice();
    let pairs: Vec<Vec<u8>> = (0..FIELDS)
        .flat_map(|i| {
            [
                format!("field:{i}").into_bytes(),
                format!("value:{i}").into_bytes(),
            ]
        })
        .collect();
    let mut hset: Vec<&[u8]> = vec![b"HSET", key];
    hset.extend(pairs.iter().map(Vec::as_slice));
    assert_eq!(on(gateway, &hset).await, Frame::Integer(FIELDS as i64));

    let shard = shard_of(&test.cluster.map().unwrap(), key);
    wait_until("every replica to hold the hash's rows", || {
        (0..NODES).all(|i| sweep_state(&test.cluster, i, shard) == Some((FIELDS, 0)))
    })
    .await;

    assert_eq!(on(gateway, &[b"DEL", key]).await, Frame::Integer(1));
    assert_eq!(on(gateway, &[b"EXISTS", key]).await, Frame::Integer(0));
    assert_eq!(on(gateway, &[b"HLEN", key]).await, Frame::Integer(0));
    assert_eq!(
        on(gateway, &[b"HGET", key, b"field:7"]).await,
        Frame::Null,
        "a deleted field reads as absent"
    );
    // A new hash under the key holds only what is written to it.
    assert_eq!(
        on(gateway, &[b"HSET", key, b"field:7", b"new"]).await,
        Frame::Integer(1)
    );
    assert_eq!(on(gateway, &[b"HLEN", key]).await, Frame::Integer(1));

    // The leader stops (its sweeper's first round comes a purge interval after it leads).
    let leader = test.cluster.leader_of(shard).expect("a leader");
    test.cluster.stop_node(leader).await;
    let others: Vec<usize> = (0..NODES).filter(|i| *i != leader).collect();
    wait_until(
        "the next leader to sweep the old rows on the running replicas",
        || {
            others
                .iter()
                .all(|i| sweep_state(&test.cluster, *i, shard) == Some((0, 0)))
        },
    )
    .await;
    test.cluster.restart_node(leader).await.unwrap();
    wait_until("the restarted replica to end with no old row", || {
        sweep_state(&test.cluster, leader, shard) == Some((0, 0))
    })
    .await;
    assert_eq!(on(gateway, &[b"HLEN", key]).await, Frame::Integer(1));
    assert_eq!(bulk(on(gateway, &[b"HGET", key, b"field:7"]).await), b"new");
    test.stop().await;
}
