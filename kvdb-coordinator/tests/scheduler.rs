//! The scheduler across a coordinator leader change: the moves it starts live in the
//! replicated map, so a new leader counts them against the move limit and plans the rest
//! once they finish. The test stands in for the shards' Raft leaders: it reports each
//! move committed, as a shard leader does once the membership change is done.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, register_nodes, wait_until};
use kvdb_coordinator::Coordinator;
use kvdb_coordinator::scheduler::Load;
use kvdb_core::{NodeId, ShardId, ShardMap, ShardState};

const MAX_MOVES: usize = 2;

fn moving(map: &ShardMap) -> BTreeSet<ShardId> {
    map.shards
        .values()
        .filter(|s| s.state != ShardState::Stable)
        .map(|s| s.id)
        .collect()
}

/// Reports every moving shard's move committed, as its leader would.
async fn finish_moves(coordinator: &Coordinator) {
    let map = coordinator.map();
    for shard in map.shards.values() {
        if let ShardState::Moving { target } = &shard.state {
            let report = coordinator
                .report_shard_config(shard.id, shard.epoch, target.clone())
                .await
                .unwrap();
            assert!(report.accepted, "shard {} settles", shard.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_carries_on_with_the_moves_the_old_one_started() {
    let mut cluster = TestCluster::start_with(3, |c| {
        c.scheduler.interval = Duration::from_millis(100);
        c.scheduler.limits.max_moves = MAX_MOVES;
    })
    .await;
    let old = cluster.leader().await;
    register_nodes(cluster.member(old), 3).await;
    cluster.member(old).init_shards(8, 3).await.unwrap();

    // --- a 4th node joins: the scheduler starts moves toward it, up to the limit
    let joined = cluster
        .member(old)
        .register_node("node-4".into(), "127.0.0.1:7004".into(), "z1".into())
        .await
        .unwrap()
        .id;
    let member = cluster.member(old).clone();
    wait_until("the limit of moves to start", || {
        moving(&member.map()).len() == MAX_MOVES
    })
    .await;
    let started = moving(&member.map());

    // --- the leader dies with its moves unfinished: the new one starts no more of them
    cluster.stop(old).await;
    let new = cluster.leader().await;
    let leader = cluster.member(new).clone();
    assert_eq!(
        moving(&leader.map()),
        started,
        "the moves survive in the map"
    );

    // --- as each finishes, the new leader starts the next, never above the limit
    let balanced = |map: &ShardMap| {
        let load = Load::of(map);
        moving(map).is_empty() && load.replicas[&joined] == 6
    };
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while !balanced(&leader.map()) {
        let map = leader.map();
        assert!(moving(&map).len() <= MAX_MOVES, "{:?}", moving(&map));
        assert!(
            tokio::time::Instant::now() < deadline,
            "not balanced: {:?}",
            Load::of(&map).replicas
        );
        finish_moves(&leader).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = Load::of(&leader.map());
    for node in 1..=4 {
        assert_eq!(load.replicas[&NodeId(node)], 6, "{:?}", load.replicas);
    }
    // The new leader planned the rest itself.
    let planned = leader.recent_operations();
    assert!(
        planned.iter().any(|op| op.error.is_none()),
        "the new leader started moves: {planned:?}"
    );
    cluster.shutdown().await;
}
