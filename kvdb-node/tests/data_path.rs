//! The data path on a healthy cluster: 3 nodes, 8 shards, RF 3.

mod common;

use common::{TestCluster, put_req, target, wait_until_async};
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::{Epoch, ShardId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_leaders_are_read_strongly_and_eventually_everywhere() {
    let cluster = TestCluster::start(3, 8, 3).await;

    tracing::info!("--- write 64 keys through the shard leaders");
    let mut versions = Vec::new();
    for i in 0..64u32 {
        let key = format!("key-{i}");
        let put = cluster
            .put(put_req(key.clone(), i.to_be_bytes().to_vec()))
            .await
            .unwrap();
        assert!(put.applied);
        versions.push((key, put.version));
    }

    tracing::info!("--- strong reads see every write");
    for (i, (key, version)) in versions.iter().enumerate() {
        let got = cluster.get(key.as_bytes()).await.unwrap();
        assert!(got.found);
        assert_eq!(got.value.as_ref(), (i as u32).to_be_bytes());
        assert_eq!(got.version, *version);
    }

    tracing::info!("--- eventual reads on every replica converge");
    for (key, version) in &versions {
        let shard = cluster.shard_of(key.as_bytes());
        for node in 0..3 {
            let addr = cluster.address(node);
            wait_until_async("an eventual read to see the write", || async {
                match cluster
                    .get_at(&addr, &shard, key.as_bytes(), pb::Consistency::Eventual)
                    .await
                {
                    Ok(got) => got.found && got.version == *version,
                    // A replica that has not yet applied its group's membership (the leader's
                    // first messages to it can come after a back-off) sends eventual reads
                    // to the leader, as a strong read would.
                    Err(KvError::Routing(RoutingError::NotLeader { .. })) => false,
                    Err(e) => panic!("eventual read at {addr}: {e:?}"),
                }
            })
            .await;
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_and_empty_values_round_trip_and_limits_are_enforced() {
    let cluster = TestCluster::start(3, 8, 3).await;
    let key = vec![0u8, 255, 10, 13, 0];
    let put = cluster.put(put_req(key.clone(), Vec::new())).await.unwrap();
    let got = cluster.get(&key).await.unwrap();
    assert!(got.found && got.value.is_empty() && got.version == put.version);

    tracing::info!("--- oversized key and value are refused, nothing written");
    let too_long = vec![b'k'; kvdb_node::config::DEFAULT_MAX_KEY_BYTES + 1];
    let err = cluster
        .put(put_req(too_long.clone(), "v"))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::InvalidArgument(_)), "{err:?}");
    let big = vec![0u8; kvdb_node::config::DEFAULT_MAX_VALUE_BYTES + 1];
    let err = cluster.put(put_req("small", big)).await.unwrap_err();
    assert!(matches!(err, KvError::InvalidArgument(_)), "{err:?}");
    assert!(!cluster.get(b"small").await.unwrap().found);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misrouted_requests_get_routing_errors_with_hints() {
    let cluster = TestCluster::start(4, 8, 3).await;
    let key = b"routing-key";
    let shard = cluster.shard_of(key);
    let leader = cluster.raft_leader(shard.id).unwrap();
    let leader_addr = cluster.address(leader);

    tracing::info!("--- a follower answers NOT_LEADER with the real leader's address");
    let follower = shard
        .replicas
        .iter()
        .map(|n| cluster.index_of(*n))
        .find(|i| *i != leader)
        .unwrap();
    // A follower learns of a new leader from its first AppendEntries, which may still be on
    // its way when the leader already knows itself elected.
    let leader_id = cluster.node(leader).id();
    wait_until_async("the follower to know the leader", || async {
        cluster
            .node(follower)
            .manager()
            .replica(shard.id)
            .is_some_and(|r| r.leadership().leader == Some(leader_id))
    })
    .await;
    let err = cluster
        .put_at(
            &cluster.address(follower),
            &shard,
            put_req(key.to_vec(), "v"),
        )
        .await
        .unwrap_err();
    let expected = RoutingError::NotLeader {
        shard: shard.id,
        leader: Some(leader_addr.clone()),
    };
    assert_eq!(err, KvError::Routing(expected));

    tracing::info!("--- an old epoch is STALE_EPOCH");
    let mut old = shard.clone();
    old.epoch = Epoch(0);
    let err = cluster
        .put_at(&leader_addr, &old, put_req(key.to_vec(), "v"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::Routing(RoutingError::StaleEpoch { current, .. }) if current == shard.epoch),
        "{err:?}"
    );

    tracing::info!("--- a node without the shard answers SHARD_MOVED with a hint");
    let outsider = (0..4)
        .find(|i| !shard.replicas.contains(&cluster.node(*i).id()))
        .unwrap();
    let err = cluster
        .put_at(
            &cluster.address(outsider),
            &shard,
            put_req(key.to_vec(), "v"),
        )
        .await
        .unwrap_err();
    let KvError::Routing(RoutingError::ShardMoved {
        shard: s,
        to: Some(to),
    }) = err
    else {
        panic!("expected SHARD_MOVED with a hint, got {err:?}");
    };
    assert_eq!(s, shard.id);
    let hosts: Vec<String> = shard
        .replicas
        .iter()
        .map(|n| cluster.address(cluster.index_of(*n)))
        .collect();
    assert!(hosts.contains(&to), "{to} hosts no replica");

    tracing::info!("--- an unknown shard is SHARD_MOVED too");
    let mut unknown = shard.clone();
    unknown.id = ShardId(999);
    let err = cluster
        .get_at(&leader_addr, &unknown, key, pb::Consistency::Eventual)
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::Routing(RoutingError::ShardMoved { .. })),
        "{err:?}"
    );

    tracing::info!("--- a key outside the shard's range is SHARD_MOVED");
    let other_key = (0..1000)
        .map(|i| format!("other-{i}"))
        .find(|k| cluster.shard_of(k.as_bytes()).id != shard.id)
        .unwrap();
    let err = cluster
        .put_at(&leader_addr, &shard, put_req(other_key, "v"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::Routing(RoutingError::ShardMoved { .. })),
        "{err:?}"
    );
    let _ = target(&shard);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_ttl_and_deletes_follow_their_conditions() {
    let cluster = TestCluster::start(3, 8, 3).await;

    tracing::info!("--- if_not_exists creates once");
    let create = pb::PutRequest {
        if_not_exists: true,
        ..put_req("cas", "a")
    };
    let first = cluster.put(create.clone()).await.unwrap();
    assert!(first.applied);
    let again = cluster.put(create).await.unwrap();
    assert_eq!((again.applied, again.version), (false, first.version));

    tracing::info!("--- if_version_equals swaps only on the current version");
    let stale = pb::PutRequest {
        if_version_equals: Some(first.version + 100),
        ..put_req("cas", "b")
    };
    assert!(!cluster.put(stale).await.unwrap().applied);
    let swap = pb::PutRequest {
        if_version_equals: Some(first.version),
        ..put_req("cas", "c")
    };
    let swapped = cluster.put(swap).await.unwrap();
    assert!(swapped.applied && swapped.version > first.version);

    tracing::info!("--- conditional delete");
    let shard = cluster.shard_of(b"cas");
    let leader = cluster.address(cluster.raft_leader(shard.id).unwrap());
    let wrong = pb::DeleteRequest {
        key: b"cas".to_vec().into(),
        if_version_equals: Some(first.version),
        write_id: None,
    };
    let refused = cluster.delete_at(&leader, &shard, wrong).await.unwrap();
    assert!(!refused.applied && refused.existed);
    let right = pb::DeleteRequest {
        key: b"cas".to_vec().into(),
        if_version_equals: Some(swapped.version),
        write_id: None,
    };
    let deleted = cluster.delete_at(&leader, &shard, right).await.unwrap();
    assert!(deleted.applied && deleted.existed);
    assert!(!cluster.get(b"cas").await.unwrap().found);

    tracing::info!("--- a TTL'd key reads as absent once expired, and is purged");
    let short = pb::PutRequest {
        ttl_ms: 300,
        ..put_req("ttl", "x")
    };
    cluster.put(short).await.unwrap();
    let got = cluster.get(b"ttl").await.unwrap();
    assert!(got.found && got.expires_at_ms > 0);
    wait_until_async("the key to expire", || async {
        !cluster.get(b"ttl").await.unwrap().found
    })
    .await;
    let shard = cluster.shard_of(b"ttl");
    wait_until_async("the purger to delete the key on every replica", || async {
        (0..3).all(|i| {
            let replica = cluster.node(i).manager().replica(shard.id).unwrap();
            replica.storage().get(b"ttl").unwrap().is_none()
        })
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_write_is_applied_once() {
    let cluster = TestCluster::start(3, 8, 3).await;
    let write_id = Some(pb::WriteId {
        client_id: "client-a".into(),
        sequence: 7,
        settled_below: 0,
    });
    let first = pb::PutRequest {
        write_id: write_id.clone(),
        ..put_req("dup", "first")
    };
    let applied = cluster.put(first.clone()).await.unwrap();
    cluster.put(put_req("dup", "second")).await.unwrap();

    tracing::info!("--- the retry returns the first result and changes nothing");
    let retried = cluster.put(first).await.unwrap();
    assert_eq!(retried, applied);
    let got = cluster.get(b"dup").await.unwrap();
    assert_eq!(got.value.as_ref(), b"second");
    cluster.shutdown().await;
}
