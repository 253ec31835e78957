use std::collections::{BTreeMap, BTreeSet};

use kvdb_core::{Epoch, NodeId, NodeInfo, NodeStatus, ShardId, ShardInfo, ShardMap, ShardState};
use proptest::prelude::*;

use super::plan::{Limits, Load, Operation, OperationKind, Reason, Recent, plan};

mod split;

const LIMITS: Limits = Limits {
    max_moves: 4,
    max_leader_transfers: 8,
    split_keys: None,
    split_rate: None,
};

fn node(id: u64, status: NodeStatus, zone: &str) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        name: format!("node-{id}"),
        address: format!("127.0.0.1:{}", 7000 + id),
        zone: zone.to_owned(),
        status,
        resp_address: String::new(),
    }
}

/// A map with `nodes` and one shard per entry of `shards` (its replicas, the
/// first leading).
fn map(nodes: Vec<NodeInfo>, shards: &[&[u64]]) -> ShardMap {
    let mut map = ShardMap::default();
    for n in nodes {
        map.nodes.insert(n.id, n);
    }
    for (i, replicas) in shards.iter().enumerate() {
        let replicas: Vec<NodeId> = replicas.iter().map(|&r| NodeId(r)).collect();
        let id = ShardId(i as u64);
        map.shards.insert(
            id,
            ShardInfo {
                id,
                slot_start: kvdb_core::Slot(i as u16),
                slot_end: kvdb_core::Slot(i as u16),
                leader: replicas.first().copied(),
                replicas,
                epoch: Epoch(1),
                state: ShardState::Stable,
                leader_term: 1,
            },
        );
    }
    map
}

/// Facts with `nodes` repairable and nothing else.
fn repairing(nodes: &BTreeSet<NodeId>) -> Recent {
    Recent {
        repairable: nodes.clone(),
        ..none()
    }
}

/// A calm cluster with nothing to remember.
fn none() -> Recent {
    Recent {
        calm: true,
        ..Recent::default()
    }
}

fn alive(ids: std::ops::RangeInclusive<u64>) -> Vec<NodeInfo> {
    ids.map(|i| node(i, NodeStatus::Alive, "z")).collect()
}

fn with_status(mut map: ShardMap, id: u64, status: NodeStatus) -> ShardMap {
    map.nodes.get_mut(&NodeId(id)).unwrap().status = status;
    map
}

/// Carries out `operations` at once, as if every move and transfer finished.
fn finish(map: &mut ShardMap, operations: &[Operation]) {
    for op in operations {
        let shard = map.shards.get_mut(&op.shard).unwrap();
        assert_eq!(shard.epoch, op.epoch, "planned against the current epoch");
        match &op.kind {
            OperationKind::MoveReplica { from, to, replicas } => {
                assert_eq!(replicas.len(), shard.replicas.len(), "a move never shrinks");
                let heading = match &shard.state {
                    ShardState::Moving { target } => target.clone(),
                    ShardState::Stable | ShardState::Splitting { .. } => shard.replicas.clone(),
                };
                assert!(heading.contains(from) && !heading.contains(to));
                shard.replicas = replicas.clone();
                shard.state = ShardState::Stable;
                shard.epoch = shard.epoch.next();
                if shard.leader == Some(*from) {
                    shard.leader = Some(*to);
                }
            }
            OperationKind::TransferLeader { from, to } => {
                assert_eq!(shard.leader, Some(*from));
                assert!(shard.replicas.contains(to));
                shard.leader = Some(*to);
            }
            OperationKind::Split { .. } => panic!("no figures, so no split: {op:?}"),
        }
    }
}

/// Plans and finishes rounds until the plan is empty; returns every round.
fn settle(map: &mut ShardMap, repairable: &BTreeSet<NodeId>) -> Vec<Vec<Operation>> {
    let mut rounds = Vec::new();
    for _ in 0..1000 {
        let ops = plan(map, &repairing(repairable), LIMITS);
        if ops.is_empty() {
            return rounds;
        }
        let shards: BTreeSet<ShardId> = ops.iter().map(|o| o.shard).collect();
        assert_eq!(shards.len(), ops.len(), "one operation per shard: {ops:?}");
        let moves = ops
            .iter()
            .filter(|o| matches!(o.kind, OperationKind::MoveReplica { .. }))
            .count();
        assert!(moves <= LIMITS.max_moves);
        finish(map, &ops);
        rounds.push(ops);
    }
    panic!("the plan did not converge");
}

/// Max minus min of `count` over the alive nodes of `map`.
fn spread(map: &ShardMap, count: &BTreeMap<NodeId, usize>) -> usize {
    let alive: Vec<usize> = map
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Alive)
        .map(|n| count[&n.id])
        .collect();
    alive.iter().max().unwrap() - alive.iter().min().unwrap()
}

#[test]
fn a_balanced_cluster_needs_nothing() {
    let m = map(alive(1..=3), &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    assert!(plan(&m, &none(), LIMITS).is_empty());
}

#[test]
fn a_dead_node_is_repaired_only_once_repairable() {
    let m = with_status(
        map(alive(1..=4), &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]),
        3,
        NodeStatus::Dead,
    );
    // Dead but not for long enough: no replica is replaced, and balancing
    // leaves shards with a dead replica alone.
    assert!(plan(&m, &none(), LIMITS).is_empty());
    let ops = plan(&m, &repairing(&BTreeSet::from([NodeId(3)])), LIMITS);
    assert_eq!(ops.len(), 3, "{ops:?}");
    for op in &ops {
        assert_eq!(op.reason, Reason::Repair);
        let OperationKind::MoveReplica { from, to, .. } = &op.kind else {
            panic!("{op:?}")
        };
        assert_eq!((*from, *to), (NodeId(3), NodeId(4)));
    }
}

#[test]
fn the_move_limit_counts_shards_already_moving() {
    let mut m = with_status(
        map(alive(1..=4), &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]),
        3,
        NodeStatus::Dead,
    );
    let limits = Limits {
        max_moves: 2,
        ..LIMITS
    };
    m.shards.get_mut(&ShardId(0)).unwrap().state = ShardState::Moving {
        target: vec![NodeId(1), NodeId(2), NodeId(4)],
    };
    let ops = plan(&m, &repairing(&BTreeSet::from([NodeId(3)])), limits);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].shard, ShardId(1));
}

#[test]
fn a_move_headed_for_a_node_that_died_gets_a_new_target() {
    // Shard 0 was moving node 3's replica to node 4, and node 4 died.
    let mut m = map(
        vec![
            node(1, NodeStatus::Alive, "z"),
            node(2, NodeStatus::Alive, "z"),
            node(3, NodeStatus::Dead, "z"),
            node(4, NodeStatus::Dead, "z"),
            node(5, NodeStatus::Alive, "z"),
        ],
        &[&[1, 2, 3]],
    );
    m.shards.get_mut(&ShardId(0)).unwrap().state = ShardState::Moving {
        target: vec![NodeId(1), NodeId(2), NodeId(4)],
    };
    // Not before node 4 is repairable.
    assert!(plan(&m, &repairing(&BTreeSet::from([NodeId(3)])), LIMITS).is_empty());
    let ops = plan(
        &m,
        &repairing(&BTreeSet::from([NodeId(3), NodeId(4)])),
        LIMITS,
    );
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(
        ops[0].kind,
        OperationKind::MoveReplica {
            from: NodeId(4),
            to: NodeId(5),
            replicas: vec![NodeId(1), NodeId(2), NodeId(5)],
        }
    );
    assert_eq!(ops[0].epoch, m.shards[&ShardId(0)].epoch);
}

#[test]
fn a_move_that_does_not_finish_in_time_gets_a_new_target() {
    let mut m = map(alive(1..=5), &[&[1, 2, 3]]);
    m.shards.get_mut(&ShardId(0)).unwrap().state = ShardState::Moving {
        target: vec![NodeId(1), NodeId(2), NodeId(4)],
    };
    assert!(
        plan(&m, &none(), LIMITS).is_empty(),
        "a running move is left alone"
    );
    let stuck = Recent {
        stuck: BTreeSet::from([ShardId(0)]),
        ..none()
    };
    let ops = plan(&m, &stuck, LIMITS);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].reason, Reason::Stuck);
    assert_eq!(
        ops[0].kind,
        OperationKind::MoveReplica {
            from: NodeId(4),
            to: NodeId(5),
            replicas: vec![NodeId(1), NodeId(2), NodeId(5)],
        }
    );
}

#[test]
fn a_shard_without_a_live_majority_is_left_alone() {
    let m = map(
        vec![
            node(1, NodeStatus::Alive, "z"),
            node(2, NodeStatus::Dead, "z"),
            node(3, NodeStatus::Dead, "z"),
            node(4, NodeStatus::Alive, "z"),
            node(5, NodeStatus::Alive, "z"),
        ],
        &[&[1, 2, 3]],
    );
    let repairable = BTreeSet::from([NodeId(2), NodeId(3)]);
    assert!(plan(&m, &repairing(&repairable), LIMITS).is_empty());
}

#[test]
fn repair_prefers_a_zone_the_shard_does_not_use() {
    let m = map(
        vec![
            node(1, NodeStatus::Alive, "a"),
            node(2, NodeStatus::Alive, "b"),
            node(3, NodeStatus::Dead, "c"),
            // Emptier, but in a zone the shard already uses.
            node(4, NodeStatus::Alive, "a"),
            node(5, NodeStatus::Alive, "c"),
        ],
        &[&[1, 2, 3], &[5, 1, 2]],
    );
    let ops = plan(&m, &repairing(&BTreeSet::from([NodeId(3)])), LIMITS);
    let OperationKind::MoveReplica { to, .. } = &ops[0].kind else {
        panic!("{ops:?}")
    };
    assert_eq!(*to, NodeId(5));
}

#[test]
fn nothing_is_planned_when_no_node_can_take_the_replica() {
    let m = with_status(
        map(alive(1..=3), &[&[1, 2, 3], &[2, 3, 1]]),
        3,
        NodeStatus::Dead,
    );
    assert!(plan(&m, &repairing(&BTreeSet::from([NodeId(3)])), LIMITS).is_empty());
}

#[test]
fn a_drain_hands_off_leaderships_then_empties_the_node() {
    let mut m = with_status(
        map(
            alive(1..=4),
            &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 3, 2], &[2, 1, 3]],
        ),
        1,
        NodeStatus::Draining,
    );
    let first = plan(&m, &none(), LIMITS);
    assert!(
        first
            .iter()
            .filter(|o| matches!(o.kind, OperationKind::TransferLeader { .. }))
            .all(|o| o.reason == Reason::Drain)
    );
    settle(&mut m, &BTreeSet::new());
    let load = Load::of(&m);
    assert_eq!(load.replicas[&NodeId(1)], 0);
    assert_eq!(load.leaders[&NodeId(1)], 0);
    assert!(spread(&m, &load.replicas) <= 1);
}

#[test]
fn leaders_move_along_a_chain_when_no_direct_transfer_helps() {
    // Node 1 leads two shards, both on nodes 1-3; node 4 leads none and
    // shares a shard only with nodes 2 and 3, which lead one each. No
    // direct transfer lowers the spread: 1 must hand one to 2, and 2 one to 4.
    let mut m = map(
        alive(1..=4),
        &[&[1, 2, 3], &[1, 2, 3], &[2, 4, 3], &[3, 1, 2]],
    );
    let limits = Limits {
        max_moves: 0,
        ..LIMITS
    };
    let ops = plan(&m, &none(), limits);
    assert_eq!(ops.len(), 2, "{ops:?}");
    finish(&mut m, &ops);
    assert!(spread(&m, &Load::of(&m).leaders) <= 1, "{ops:?}");
}

#[test]
fn balancing_skips_cooling_shards_and_unfit_nodes() {
    // Node 1 leads all three shards; nodes 2 and 3 lead none.
    let m = map(alive(1..=3), &[&[1, 2, 3], &[1, 3, 2], &[1, 2, 3]]);
    let transfers = |recent: &Recent| -> Vec<(ShardId, NodeId)> {
        plan(&m, recent, LIMITS)
            .into_iter()
            .filter_map(|op| match op.kind {
                OperationKind::TransferLeader { to, .. } => Some((op.shard, to)),
                OperationKind::MoveReplica { .. } | OperationKind::Split { .. } => None,
            })
            .collect()
    };
    assert_eq!(transfers(&none()).len(), 2, "3-0-0 becomes 1-1-1");
    let cooling = Recent {
        cooling: BTreeSet::from([ShardId(0), ShardId(1), ShardId(2)]),
        ..none()
    };
    assert!(transfers(&cooling).is_empty());
    let unfit = Recent {
        unfit: BTreeSet::from([NodeId(2)]),
        ..none()
    };
    assert_eq!(transfers(&unfit).len(), 1);
    assert_eq!(transfers(&unfit).len(), 1);
    assert!(transfers(&unfit).iter().all(|(_, to)| *to == NodeId(3)));
    let nobody = Recent {
        unfit: BTreeSet::from([NodeId(2), NodeId(3)]),
        ..none()
    };
    assert!(transfers(&nobody).is_empty());
    let busy = Recent {
        calm: false,
        ..none()
    };
    assert!(
        transfers(&busy).is_empty(),
        "no leader balancing until calm"
    );
}

#[test]
fn balancing_keeps_a_shards_zone_spread() {
    let m = map(
        vec![
            node(1, NodeStatus::Alive, "a"),
            node(2, NodeStatus::Alive, "b"),
            node(3, NodeStatus::Alive, "c"),
            node(4, NodeStatus::Alive, "a"),
        ],
        &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]],
    );
    // Node 4 could only take node 1's replicas (zone a), never another zone's.
    for op in plan(&m, &none(), LIMITS) {
        if let OperationKind::MoveReplica { from, to, .. } = op.kind {
            assert_eq!((from, to), (NodeId(1), NodeId(4)));
        }
    }
}

fn arbitrary_cluster() -> impl Strategy<Value = (ShardMap, BTreeSet<NodeId>)> {
    (3u64..=7, 1usize..=24, any::<u64>()).prop_flat_map(|(nodes, shards, seed)| {
        let statuses = proptest::collection::vec(0u8..10, nodes as usize);
        (Just((nodes, shards, seed)), statuses).prop_map(|((nodes, shards, seed), statuses)| {
            let mut infos = Vec::new();
            let mut repairable = BTreeSet::new();
            for (i, s) in statuses.iter().enumerate() {
                let id = i as u64 + 1;
                let status = match s {
                    0 => {
                        repairable.insert(NodeId(id));
                        NodeStatus::Dead
                    }
                    1 => NodeStatus::Draining,
                    _ => NodeStatus::Alive,
                };
                infos.push(node(id, status, "z"));
            }
            // Replicas start crowded on the low ids, so there is work to do.
            let mut state = seed;
            let mut next = || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as usize
            };
            let sets: Vec<Vec<u64>> = (0..shards)
                .map(|_| {
                    let mut set = Vec::new();
                    while set.len() < 3 {
                        let candidate = 1 + (next() % (nodes as usize)).min(next() % 4) as u64;
                        if !set.contains(&candidate) {
                            set.push(candidate);
                        }
                    }
                    set
                })
                .collect();
            let refs: Vec<&[u64]> = sets.iter().map(Vec::as_slice).collect();
            (map(infos, &refs), repairable)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Planning and finishing rounds always terminates with replicas and
    /// leaders within one of each other on the alive nodes, nothing left on
    /// repairable or draining nodes where a live majority allowed a move,
    /// and no shard ever shrinking.
    #[test]
    fn plans_converge_to_a_balanced_repaired_cluster((mut m, repairable) in arbitrary_cluster()) {
        let alive = m.nodes.values().filter(|n| n.status == NodeStatus::Alive).count();
        settle(&mut m, &repairable);
        let load = Load::of(&m);
        for shard in m.shards.values() {
            prop_assert_eq!(shard.replicas.len(), 3);
            let live = shard
                .replicas
                .iter()
                .filter(|r| m.nodes[r].status != NodeStatus::Dead)
                .count();
            let on_leaving = shard.replicas.iter().any(|r| {
                repairable.contains(r) || m.nodes[r].status == NodeStatus::Draining
            });
            // A replica may stay on a leaving node only when no alive node
            // outside the shard could take it or no live majority exists.
            if on_leaving && live >= 2 {
                let outside = m
                    .nodes
                    .values()
                    .filter(|n| n.status == NodeStatus::Alive && !shard.replicas.contains(&n.id))
                    .count();
                prop_assert_eq!(outside, 0, "shard {:?} left on a leaving node", shard);
            }
        }
        if alive >= 3
            && m.shards.values().all(|s| s.replicas.iter().all(|r| m.nodes[r].status == NodeStatus::Alive))
        {
            prop_assert!(spread(&m, &load.replicas) <= 1, "replicas {:?}", load.replicas);
            prop_assert!(spread(&m, &load.leaders) <= 1, "leaders {:?}", load.leaders);
        }
    }
}

mod memory {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::scheduler::{SchedulerConfig, SchedulerMemory};
    use crate::shard_stats::ShardStatsBook;

    /// The facts `memory` gives at `now` for leadership `term`, with no figures.
    fn facts(memory: &SchedulerMemory, m: &ShardMap, term: u64, now: Instant) -> Recent {
        memory.recent_facts(m, term, now, &config(), &ShardStatsBook::default())
    }

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            move_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        }
    }

    #[test]
    fn a_transfer_that_does_not_take_marks_its_target_once() {
        let memory = SchedulerMemory::default();
        let m = map(alive(1..=3), &[&[1, 2, 3]]);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        facts(&memory, &m, 1, t0);
        memory.transferred(&m.shards[&ShardId(0)], NodeId(2), t0);

        let soon = facts(&memory, &m, 1, at(1));
        assert!(soon.unfit.is_empty(), "within the grace period");
        assert_eq!(soon.cooling, BTreeSet::from([ShardId(0)]));
        let judged = facts(&memory, &m, 1, at(6));
        assert_eq!(judged.unfit, BTreeSet::from([NodeId(2)]));
        let later = facts(&memory, &m, 1, at(27));
        assert!(later.unfit.is_empty(), "20 s after, and not marked again");
        assert_eq!(later.cooling, BTreeSet::from([ShardId(0)]));
        assert!(facts(&memory, &m, 1, at(31)).cooling.is_empty());
    }

    #[test]
    fn a_transfer_that_takes_marks_nothing() {
        let memory = SchedulerMemory::default();
        let mut m = map(alive(1..=3), &[&[1, 2, 3]]);
        let t0 = Instant::now();
        memory.transferred(&m.shards[&ShardId(0)], NodeId(2), t0);
        let shard = m.shards.get_mut(&ShardId(0)).unwrap();
        shard.leader = Some(NodeId(2));
        shard.leader_term = 2;
        let facts = facts(&memory, &m, 1, t0 + Duration::from_secs(6));
        assert!(facts.unfit.is_empty());
    }

    #[test]
    fn calm_stuck_and_repairable_follow_their_clocks() {
        let memory = SchedulerMemory::default();
        let mut m = with_status(map(alive(1..=4), &[&[1, 2, 3]]), 3, NodeStatus::Dead);
        m.shards.get_mut(&ShardId(0)).unwrap().state = ShardState::Moving {
            target: vec![NodeId(1), NodeId(2), NodeId(4)],
        };
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let first = facts(&memory, &m, 1, t0);
        assert!(!first.calm && first.stuck.is_empty() && first.repairable.is_empty());
        let ten = facts(&memory, &m, 1, at(10));
        assert!(ten.calm, "nothing changed for 10 s");
        let thirty = facts(&memory, &m, 1, at(30));
        assert_eq!(thirty.repairable, BTreeSet::from([NodeId(3)]));
        assert!(thirty.stuck.is_empty());
        assert_eq!(
            facts(&memory, &m, 1, at(60)).stuck,
            BTreeSet::from([ShardId(0)])
        );
        // A new leadership starts every clock again.
        let fresh = facts(&memory, &m, 2, at(61));
        assert!(fresh.repairable.is_empty() && fresh.stuck.is_empty() && !fresh.calm);
    }
}
