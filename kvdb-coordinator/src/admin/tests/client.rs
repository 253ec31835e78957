//! Happy paths through [`AdminClient`] against a served router.

use axum::http::StatusCode;
use kvdb_core::{Epoch, NodeId, NodeStatus, SLOT_COUNT, ShardId};

use super::Harness;
use crate::admin::AdminConfig;
use crate::admin::api::{DEFAULT_ZONE, NodeSelector};

#[tokio::test]
async fn register_init_and_read_back() {
    let h = Harness::start(AdminConfig::default()).await;
    let (client, _stop) = h.serve().await;
    client.health().await.unwrap();
    client.ready().await.unwrap();

    // --- register three nodes; re-registering updates the address
    for i in 1..=3u16 {
        let zone = (i != 3).then_some("zone-a");
        let node = client
            .register_node(
                &format!("node-{i}"),
                &format!("127.0.0.1:{}", 7000 + i),
                zone,
            )
            .await
            .unwrap();
        assert_eq!(node.name, format!("node-{i}"));
        assert_eq!(node.status, NodeStatus::Alive);
    }
    let moved = client
        .register_node("node-3", "127.0.0.1:7103", None)
        .await
        .unwrap();
    assert_eq!(moved.address, "127.0.0.1:7103");
    assert_eq!(moved.zone, DEFAULT_ZONE);

    // --- init 8 shards with RF 3, twice (the second is a no-op)
    let first = client.init_shards(8, 3).await.unwrap();
    let again = client.init_shards(8, 3).await.unwrap();
    assert_eq!(first.map_version, again.map_version);
    let err = client.init_shards(4, 3).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));

    // --- read it all back
    let nodes = client.nodes().await.unwrap();
    assert_eq!(nodes.nodes.len(), 3);
    assert_eq!(nodes.map_version, first.map_version);
    let by_name = client.node(&"node-2".into()).await.unwrap();
    let by_id = client.node(&NodeSelector::Id(by_name.id)).await.unwrap();
    assert_eq!(by_name, by_id);

    let shards = client.shards().await.unwrap();
    assert_eq!(shards.shards.len(), 8);
    let mut next_slot = 0u32;
    for shard in &shards.shards {
        assert_eq!(u32::from(shard.slot_start), next_slot);
        next_slot = u32::from(shard.slot_end) + 1;
        assert_eq!(shard.replicas.len(), 3);
        assert!(shard.replicas.iter().all(|r| r.address.is_some()));
        assert_eq!(shard.state, "stable");
        let leader = shard.leader.as_ref().unwrap();
        assert!(shard.replicas.contains(leader));
    }
    assert_eq!(next_slot, u32::from(SLOT_COUNT));
    let one = client.shard(shards.shards[3].id).await.unwrap();
    assert_eq!(one, shards.shards[3]);
    h.coordinator.map().validate().unwrap();

    let cluster = client.cluster().await.unwrap();
    assert_eq!(cluster.role, "leader");
    assert_eq!(cluster.leader.id, Some(cluster.member_id));
    assert!(cluster.ready && cluster.initialized);
    assert_eq!(cluster.map_version, h.version());
    assert_eq!(
        (cluster.num_shards, cluster.replication_factor),
        (Some(8), Some(3))
    );
    assert_eq!((cluster.node_count, cluster.shard_count), (3, 8));
    let metrics = client.metrics().await.unwrap();
    assert!(metrics.contains("kvdb_coordinator_nodes{status=\"alive\"} 3\n"));
    assert!(metrics.contains("kvdb_coordinator_shards{state=\"stable\"} 8\n"));
    assert!(metrics.contains("kvdb_coordinator_is_leader 1\n"));
}

#[tokio::test]
async fn mutations_through_the_client() {
    let h = Harness::initialized(AdminConfig::default()).await;
    let (client, _stop) = h.serve().await;
    let shard = client.shard(ShardId(0)).await.unwrap();
    h.register_nodes(4).await;

    // --- status by name
    let before = h.version();
    let changed = client
        .set_node_status(&"node-3".into(), NodeStatus::Draining)
        .await
        .unwrap();
    assert!(changed.map_version > before);
    assert_eq!(
        client.node(&"node-3".into()).await.unwrap().status,
        NodeStatus::Draining
    );
    // A second drain would leave two alive nodes for three replicas a shard.
    let err = client
        .set_node_status(&"node-2".into(), NodeStatus::Draining)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert_eq!(
        client.node(&"node-2".into()).await.unwrap().status,
        NodeStatus::Alive
    );

    // --- leader transfer with the current epoch, then with a stale one
    let target = shard.replicas[1].id;
    client
        .set_shard_leader(shard.id, NodeSelector::Id(target), shard.epoch)
        .await
        .unwrap();
    let err = client
        .set_shard_leader(shard.id, NodeSelector::Id(target), Epoch(shard.epoch.0 + 9))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));

    // --- fewer replicas than the replication factor: refused
    let keep: Vec<NodeSelector> = shard.replicas[..2].iter().map(|r| r.id.into()).collect();
    let err = client
        .set_shard_replicas(shard.id, keep.clone(), Some(shard.epoch))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));

    // --- swap the third replica for node-4: the epoch moves on
    let mut keep = keep;
    keep.push("node-4".into());
    let moved = client
        .set_shard_replicas(shard.id, keep, Some(shard.epoch))
        .await
        .unwrap();
    assert!(moved.epoch > shard.epoch);

    // --- errors carry status and code
    let err = client
        .node(&NodeSelector::Id(NodeId(42)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.code(), Some("NOT_FOUND"));
}
