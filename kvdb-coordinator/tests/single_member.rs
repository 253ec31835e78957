//! One coordinator member: initialization, persistence across a restart,
//! the gRPC surface, and the failure detector.

mod common;

use common::{TestCluster, fast_liveness, register_nodes, wait_until};
use kvdb_coordinator::CoordinatorError;
use kvdb_coordinator::error::BusyReason;
use kvdb_core::proto::v1 as pb;
use kvdb_core::{MapVersion, NodeId, NodeStatus, ShardId, ShardMap};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_builds_a_valid_map_once() {
    let cluster = TestCluster::start(1).await;
    cluster.leader().await;
    let coordinator = cluster.member(1);

    // --- register 3 nodes and init 8 shards with RF 3
    register_nodes(coordinator, 3).await;
    let version = coordinator.init_shards(8, 3).await.unwrap();
    let map = coordinator.map();
    assert_eq!(map.version, version);
    map.validate().unwrap();
    assert_eq!(map.shards.len(), 8);
    assert!(map.shards.values().all(|s| s.replicas.len() == 3));

    // --- the same init again is a no-op
    assert_eq!(coordinator.init_shards(8, 3).await.unwrap(), version);
    assert_eq!(coordinator.map().version, version);

    // --- a different init is refused and changes nothing
    let err = coordinator.init_shards(16, 3).await.unwrap_err();
    assert_eq!(
        err,
        CoordinatorError::AlreadyInitialized {
            num_shards: 8,
            replication_factor: 3
        }
    );
    assert_eq!(err.code(), "CONFLICT");
    assert_eq!(coordinator.map(), map);

    let cluster_info = coordinator.cluster();
    assert_eq!(cluster_info.num_shards, Some(8));
    assert_eq!(cluster_info.leader.id, Some(1));
    assert!(cluster_info.ready);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_recovers_the_map_from_disk() {
    let mut cluster = TestCluster::start(1).await;
    cluster.leader().await;
    // The map must change only when the test changes it: no balancing toward node-4 below.
    cluster.member(1).set_scheduler_paused(true).await.unwrap();
    register_nodes(cluster.member(1), 3).await;
    cluster.member(1).init_shards(8, 3).await.unwrap();
    let before = cluster.member(1).map();

    // --- restart on the same data directory
    cluster.stop(1).await;
    cluster.restart(1).await;
    cluster.leader().await;
    let after = cluster.member(1).map();
    assert_eq!(after, before);

    // --- and it keeps working: ids continue, init is still a no-op
    let node = cluster
        .member(1)
        .register_node("node-4".into(), "127.0.0.1:7004".into(), "z2".into())
        .await
        .unwrap();
    assert_eq!(node.id, NodeId(4));
    assert_eq!(
        cluster.member(1).init_shards(8, 3).await.unwrap(),
        after.version.next()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_serves_reads_and_maps_errors() {
    let cluster = TestCluster::start(1).await;
    cluster.leader().await;
    let mut client = cluster.client(1).await;

    // --- mutations over gRPC
    for i in 1..=3 {
        let request = pb::RegisterNodeRequest {
            name: format!("node-{i}"),
            address: format!("127.0.0.1:{}", 7100 + i),
            zone: "z1".into(),
            resp_address: String::new(),
        };
        let reply = client.register_node(request).await.unwrap().into_inner();
        assert_eq!(reply.node.unwrap().id, i);
    }
    let init = pb::InitShardsRequest {
        num_shards: 4,
        replication_factor: 2,
    };
    let version = client
        .init_shards(init)
        .await
        .unwrap()
        .into_inner()
        .map_version;

    // --- reads
    let map = client
        .get_shard_map(pb::GetShardMapRequest { if_newer_than: 0 })
        .await
        .unwrap()
        .into_inner()
        .map
        .unwrap();
    let map = ShardMap::try_from(&map).unwrap();
    assert_eq!(map.version, MapVersion(version));
    map.validate().unwrap();
    let current = pb::GetShardMapRequest {
        if_newer_than: version,
    };
    let unchanged = client.get_shard_map(current).await.unwrap().into_inner();
    assert!(unchanged.map.is_none());

    let resolved = client
        .resolve_shard(pb::ResolveShardRequest {
            key: b"{user1}.a".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();
    let shard = resolved.shard.unwrap();
    assert_eq!(resolved.replicas.len(), 2);
    assert_eq!(resolved.replicas[0].id, shard.leader, "leader first");

    let nodes = client.list_nodes(pb::ListNodesRequest {}).await.unwrap();
    assert_eq!(nodes.into_inner().nodes.len(), 3);
    let leader = client
        .get_coordinator_leader(pb::GetCoordinatorLeaderRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leader.leader_id, 1);
    assert_eq!(leader.leader_address, cluster.addrs[&1].to_string());

    // --- errors keep their kind across the wire
    let stale = pb::SetShardLeaderRequest {
        shard_id: shard.id,
        epoch: shard.epoch + 7,
        node_id: shard.replicas[0],
    };
    let status = client.set_shard_leader(stale).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(matches!(
        CoordinatorError::from(status),
        CoordinatorError::EpochMismatch { .. }
    ));
    let unknown = pb::HeartbeatRequest {
        node_id: 99,
        shards: Vec::new(),
    };
    let status = client.heartbeat(unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(cluster.member(1).map().version, MapVersion(version));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_splits_a_shard_and_maps_its_refusals() {
    let cluster = TestCluster::start(1).await;
    let member = cluster.member(cluster.leader().await).clone();
    register_nodes(&member, 2).await;
    member.init_shards(4, 2).await.unwrap();
    let mut client = cluster.client(1).await;
    let split = |shard_id, epoch, at| pb::SplitShardRequest {
        shard_id,
        epoch,
        at,
    };

    // --- shard 0 (slots 0..=4095) splits at its middle, in one map version
    let before = member.map().version;
    let reply = client
        .split_shard(split(0, 1, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.map_version, before.0 + 1);
    let (parent, child) = (reply.parent.unwrap(), reply.child.unwrap());
    assert_eq!(
        (parent.slot_start, parent.slot_end, parent.epoch),
        (0, 2047, 2)
    );
    assert_eq!(
        (child.id, child.slot_start, child.slot_end),
        (4, 2048, 4095)
    );
    assert_eq!(child.state(), pb::ShardState::Splitting);
    assert_eq!((child.split_from, child.epoch, child.leader), (0, 2, 0));

    // --- refusals keep their kind across the wire and change nothing
    let version = member.map().version;
    let status = client.split_shard(split(9, 0, None)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    for at in [9000, 70000] {
        let status = client.split_shard(split(1, 0, Some(at))).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    let status = client.split_shard(split(0, 0, None)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        CoordinatorError::from(status),
        CoordinatorError::ShardBusy {
            shard: ShardId(0),
            reason: BusyReason::SplitChild { child: ShardId(4) },
        }
    );
    assert_eq!(member.map().version, version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_drive_suspect_dead_and_back_to_alive() {
    let cluster = TestCluster::start_with(1, fast_liveness).await;
    cluster.leader().await;
    let coordinator = cluster.member(1).clone();
    register_nodes(&coordinator, 2).await;
    let status = |node: u64| coordinator.map().nodes[&NodeId(node)].status;

    // --- node 1 heartbeats, node 2 stays silent
    let beating = tokio::spawn({
        let coordinator = coordinator.clone();
        async move {
            let mut ticker = tokio::time::interval(coordinator.config().heartbeat_interval);
            loop {
                ticker.tick().await;
                let _ = coordinator.heartbeat(NodeId(1), &[]).await;
            }
        }
    });
    wait_until("node 2 suspect", || status(2) == NodeStatus::Suspect).await;
    wait_until("node 2 dead", || status(2) == NodeStatus::Dead).await;
    assert_eq!(status(1), NodeStatus::Alive);

    // --- one heartbeat brings node 2 back
    coordinator.heartbeat(NodeId(2), &[]).await.unwrap();
    assert_eq!(status(2), NodeStatus::Alive);

    // --- draining nodes are left alone
    coordinator
        .set_node_status(NodeId(2), NodeStatus::Draining)
        .await
        .unwrap();
    coordinator.heartbeat(NodeId(2), &[]).await.unwrap();
    assert_eq!(status(2), NodeStatus::Draining);
    beating.abort();
    cluster.shutdown().await;
}
