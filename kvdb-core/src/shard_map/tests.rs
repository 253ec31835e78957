//! Tests of `ShardMap::apply` and `ShardMap::validate`, and the property the
//! watch protocol relies on: replaying every delta over the first snapshot
//! yields the last snapshot, and a delta applied twice changes nothing.

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

use super::*;
use crate::ids::{Epoch, MapVersion, NodeId, SLOT_COUNT, ShardId, Slot};

const LAST_SLOT: u16 = SLOT_COUNT - 1;

fn node(id: u64) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        name: format!("node-{id}"),
        address: format!("127.0.0.1:{}", 7000 + id),
        zone: "z1".into(),
        status: NodeStatus::Alive,
        resp_address: String::new(),
    }
}

fn shard(id: u64, start: u16, end: u16, replicas: &[u64]) -> ShardInfo {
    ShardInfo {
        id: ShardId(id),
        slot_start: Slot(start),
        slot_end: Slot(end),
        replicas: replicas.iter().copied().map(NodeId).collect(),
        leader: replicas.first().copied().map(NodeId),
        epoch: Epoch(1),
        state: ShardState::Stable,
        leader_term: 1,
    }
}

/// Version 3: nodes 1..=3, shard 1 on the low half, shard 2 on the high half.
fn two_shards() -> ShardMap {
    let mut map = ShardMap {
        version: MapVersion(3),
        ..ShardMap::default()
    };
    for id in 1..=3 {
        map.nodes.insert(NodeId(id), node(id));
    }
    for s in [
        shard(1, 0, 8191, &[1, 2, 3]),
        shard(2, 8192, LAST_SLOT, &[3, 2, 1]),
    ] {
        map.shards.insert(s.id, s);
    }
    map
}

// --- apply

#[test]
fn apply_upserts_and_removes_records() {
    let mut map = two_shards();
    let mut moved = map.shards[&ShardId(2)].clone();
    moved.replicas = vec![NodeId(4), NodeId(2)];
    moved.leader = Some(NodeId(4));
    moved.epoch = Epoch(2);
    let delta = ShardMapDelta {
        version: MapVersion(4),
        nodes: vec![node(4)],
        shards: vec![moved.clone()],
        removed_nodes: vec![NodeId(3)],
        removed_shards: vec![],
    };
    map.apply(&delta).unwrap();
    assert_eq!(map.version, MapVersion(4));
    assert_eq!(map.nodes.get(&NodeId(4)), Some(&node(4)));
    assert!(!map.nodes.contains_key(&NodeId(3)));
    assert_eq!(map.shards[&ShardId(2)], moved);
    assert_eq!(map.shards[&ShardId(1)], two_shards().shards[&ShardId(1)]);
}

#[test]
fn apply_removes_shards() {
    let mut map = two_shards();
    let delta = ShardMapDelta {
        version: MapVersion(4),
        shards: vec![shard(1, 0, LAST_SLOT, &[1])],
        removed_shards: vec![ShardId(2)],
        ..ShardMapDelta::default()
    };
    map.apply(&delta).unwrap();
    assert_eq!(map.shards.keys().copied().collect::<Vec<_>>(), [ShardId(1)]);
    assert_eq!(map.validate(), Ok(()));
}

#[test]
fn an_empty_delta_only_bumps_the_version() {
    let mut map = two_shards();
    let delta = ShardMapDelta {
        version: MapVersion(4),
        ..ShardMapDelta::default()
    };
    map.apply(&delta).unwrap();
    let expected = ShardMap {
        version: MapVersion(4),
        ..two_shards()
    };
    assert_eq!(map, expected);
}

#[test]
fn an_old_or_current_delta_is_stale_and_ignored() {
    for version in [1, 3] {
        let mut map = two_shards();
        let delta = ShardMapDelta {
            version: MapVersion(version),
            removed_shards: vec![ShardId(1)],
            ..ShardMapDelta::default()
        };
        let expected = DeltaError::Stale {
            map: MapVersion(3),
            delta: MapVersion(version),
        };
        assert_eq!(map.apply(&delta), Err(expected));
        assert_eq!(map, two_shards());
    }
}

#[test]
fn a_skipped_version_is_a_gap_and_ignored() {
    let mut map = two_shards();
    let delta = ShardMapDelta {
        version: MapVersion(5),
        removed_nodes: vec![NodeId(1)],
        ..ShardMapDelta::default()
    };
    let expected = DeltaError::Gap {
        map: MapVersion(3),
        delta: MapVersion(5),
    };
    assert_eq!(map.apply(&delta), Err(expected));
    assert_eq!(map, two_shards());
}

// --- validate

/// `two_shards` with `edit` applied, validated.
fn validate_with(edit: impl FnOnce(&mut ShardMap)) -> Result<(), MapError> {
    let mut map = two_shards();
    edit(&mut map);
    map.validate()
}

fn edit_shard(map: &mut ShardMap, id: u64) -> &mut ShardInfo {
    map.shards.get_mut(&ShardId(id)).expect("shard exists")
}

#[test]
fn valid_maps_pass() {
    assert_eq!(ShardMap::default().validate(), Ok(()), "uninitialized");
    assert_eq!(two_shards().validate(), Ok(()));
    let moving = validate_with(|m| {
        let s = edit_shard(m, 1);
        s.state = moving(&[2, 3]);
        s.leader = Some(NodeId(3));
    });
    assert_eq!(moving, Ok(()), "a leader from the target set");
}

fn moving(target: &[u64]) -> ShardState {
    ShardState::Moving {
        target: target.iter().copied().map(NodeId).collect(),
    }
}

#[test]
fn each_broken_invariant_is_reported() {
    use MapError::*;
    let (s1, s2) = (ShardId(1), ShardId(2));
    type Edit = fn(&mut ShardMap);
    #[rustfmt::skip]
    let cases: [(&str, Edit, MapError); 12] = [
        ("gap at slot 0", |m| edit_shard(m, 1).slot_start = Slot(1), Uncovered(Slot(0))),
        ("gap between", |m| edit_shard(m, 1).slot_end = Slot(8000), Uncovered(Slot(8001))),
        ("gap at the end", |m| edit_shard(m, 2).slot_end = Slot(LAST_SLOT - 1), Uncovered(Slot(LAST_SLOT))),
        ("overlap", |m| edit_shard(m, 2).slot_start = Slot(8000), Overlap { slot: Slot(8000), first: s1, second: s2 }),
        ("inverted range", |m| edit_shard(m, 2).slot_end = Slot(8191),
            BadRange { shard: s2, start: Slot(8192), end: Slot(8191) }),
        ("past the last slot", |m| edit_shard(m, 2).slot_end = Slot(SLOT_COUNT),
            BadRange { shard: s2, start: Slot(8192), end: Slot(SLOT_COUNT) }),
        ("no replicas", |m| { edit_shard(m, 1).replicas.clear(); edit_shard(m, 1).leader = None; },
            NoReplicas { shard: s1 }),
        ("unknown replica", |m| edit_shard(m, 1).replicas.push(NodeId(9)), UnknownNode { shard: s1, node: NodeId(9) }),
        ("duplicate replica", |m| edit_shard(m, 2).replicas.push(NodeId(2)), DuplicateReplica { shard: s2, node: NodeId(2) }),
        ("unknown target", |m| edit_shard(m, 1).state = moving(&[1, 8]), UnknownNode { shard: s1, node: NodeId(8) }),
        ("duplicate target", |m| edit_shard(m, 1).state = moving(&[3, 3]), DuplicateReplica { shard: s1, node: NodeId(3) }),
        ("leader not a member", |m| edit_shard(m, 1).leader = Some(NodeId(9)),
            LeaderNotReplica { shard: s1, node: NodeId(9) }),
    ];
    for (case, edit, expected) in cases {
        assert_eq!(validate_with(edit), Err(expected), "{case}");
    }
}

// --- property: deltas replay to the final snapshot

/// One coordinator-style change; indices pick among what exists at the time.
#[derive(Debug, Clone)]
enum Mutation {
    RegisterNode,
    SetNodeStatus { node: usize, status: NodeStatus },
    SetReplicas { shard: usize, picks: Vec<usize> },
    SetLeader { shard: usize, pick: Option<usize> },
    StartMove { shard: usize, picks: Vec<usize> },
    RemoveUnusedNode { node: usize },
}

fn status() -> impl Strategy<Value = NodeStatus> {
    prop::sample::select(vec![
        NodeStatus::Alive,
        NodeStatus::Suspect,
        NodeStatus::Dead,
        NodeStatus::Draining,
    ])
}

fn picks() -> impl Strategy<Value = Vec<usize>> {
    vec(any::<usize>(), 1..4)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::RegisterNode),
        (any::<usize>(), status())
            .prop_map(|(node, status)| Mutation::SetNodeStatus { node, status }),
        (any::<usize>(), picks()).prop_map(|(shard, picks)| Mutation::SetReplicas { shard, picks }),
        (any::<usize>(), any::<Option<usize>>())
            .prop_map(|(shard, pick)| Mutation::SetLeader { shard, pick }),
        (any::<usize>(), picks()).prop_map(|(shard, picks)| Mutation::StartMove { shard, picks }),
        any::<usize>().prop_map(|node| Mutation::RemoveUnusedNode { node }),
    ]
}

/// Distinct existing nodes chosen by `picks`, in pick order; never empty
/// while the map has nodes.
fn pick_nodes(map: &ShardMap, picks: &[usize]) -> Vec<NodeId> {
    let ids: Vec<NodeId> = map.nodes.keys().copied().collect();
    let mut chosen = Vec::new();
    for p in picks {
        let id = ids[p % ids.len()];
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    chosen
}

/// A valid map: 1..=5 nodes, shards cut at random slots, random replicas.
fn initial_map() -> impl Strategy<Value = ShardMap> {
    let per_shard = (picks(), any::<Option<usize>>(), 0u64..5);
    (1u64..=5, btree_set(1..SLOT_COUNT, 0..8), vec(per_shard, 8)).prop_map(
        |(nodes, cuts, per_shard)| {
            let mut map = ShardMap {
                version: MapVersion(1),
                ..ShardMap::default()
            };
            for id in 1..=nodes {
                map.nodes.insert(NodeId(id), node(id));
            }
            let starts = std::iter::once(0).chain(cuts.iter().copied());
            let ends = cuts.iter().map(|c| c - 1).chain([LAST_SLOT]);
            for (i, ((start, end), (picks, leader, epoch))) in
                starts.zip(ends).zip(per_shard).enumerate()
            {
                let replicas = pick_nodes(&map, &picks);
                let mut s = shard(i as u64 + 1, start, end, &[]);
                s.leader = leader.map(|p| replicas[p % replicas.len()]);
                s.replicas = replicas;
                s.epoch = Epoch(epoch);
                map.shards.insert(s.id, s);
            }
            map
        },
    )
}

/// The map after `m`, at the next version.
fn mutate(map: &ShardMap, m: &Mutation) -> ShardMap {
    let mut next = map.clone();
    next.version = map.version.next();
    let shard_ids: Vec<ShardId> = map.shards.keys().copied().collect();
    let node_ids: Vec<NodeId> = map.nodes.keys().copied().collect();
    match m {
        Mutation::RegisterNode => {
            let id = node_ids.last().map_or(1, |n| n.0 + 1);
            next.nodes.insert(NodeId(id), node(id));
        }
        Mutation::SetNodeStatus { node, status } => {
            let id = node_ids[node % node_ids.len()];
            next.nodes.get_mut(&id).expect("picked from the map").status = *status;
        }
        Mutation::SetReplicas { shard, picks } => {
            let replicas = pick_nodes(map, picks);
            let s = shard_at(&mut next, &shard_ids, *shard);
            s.leader = s.leader.filter(|l| replicas.contains(l));
            s.replicas = replicas;
            s.state = ShardState::Stable;
            s.epoch = s.epoch.next();
        }
        Mutation::SetLeader { shard, pick } => {
            let s = shard_at(&mut next, &shard_ids, *shard);
            let members = s.members();
            s.leader = pick.map(|p| members[p % members.len()]);
            s.leader_term += 1;
        }
        Mutation::StartMove { shard, picks } => {
            let target = pick_nodes(map, picks);
            let s = shard_at(&mut next, &shard_ids, *shard);
            s.leader = s
                .leader
                .filter(|l| s.replicas.contains(l) || target.contains(l));
            s.state = ShardState::Moving { target };
            s.epoch = s.epoch.next();
        }
        Mutation::RemoveUnusedNode { node } => {
            let used: Vec<NodeId> = map.shards.values().flat_map(ShardInfo::members).collect();
            let unused: Vec<NodeId> = node_ids.into_iter().filter(|n| !used.contains(n)).collect();
            if !unused.is_empty() {
                next.nodes.remove(&unused[node % unused.len()]);
            }
        }
    }
    next
}

fn shard_at<'a>(map: &'a mut ShardMap, ids: &[ShardId], i: usize) -> &'a mut ShardInfo {
    map.shards
        .get_mut(&ids[i % ids.len()])
        .expect("picked from the map")
}

/// The delta from `old` to `new`: full records of what changed.
fn diff(old: &ShardMap, new: &ShardMap) -> ShardMapDelta {
    ShardMapDelta {
        version: new.version,
        nodes: new
            .nodes
            .values()
            .filter(|n| old.nodes.get(&n.id) != Some(*n))
            .cloned()
            .collect(),
        shards: new
            .shards
            .values()
            .filter(|s| old.shards.get(&s.id) != Some(*s))
            .cloned()
            .collect(),
        removed_nodes: old
            .nodes
            .keys()
            .filter(|id| !new.nodes.contains_key(id))
            .copied()
            .collect(),
        removed_shards: old
            .shards
            .keys()
            .filter(|id| !new.shards.contains_key(id))
            .copied()
            .collect(),
    }
}

proptest! {
    #[test]
    fn replaying_deltas_yields_the_final_snapshot(
        initial in initial_map(),
        mutations in vec(mutation(), 0..40),
    ) {
        prop_assert_eq!(initial.validate(), Ok(()));

        // Record a snapshot and a delta per mutation.
        let mut snapshots = vec![initial.clone()];
        let mut deltas = Vec::new();
        for m in &mutations {
            let prev = snapshots.last().expect("starts with the initial map");
            let next = mutate(prev, m);
            prop_assert_eq!(next.validate(), Ok(()), "after {:?}", m);
            deltas.push(diff(prev, &next));
            snapshots.push(next);
        }

        // Replay: every step matches its snapshot; a repeat is stale and inert.
        let mut replay = initial.clone();
        for (delta, expected) in deltas.iter().zip(&snapshots[1..]) {
            prop_assert_eq!(replay.apply(delta), Ok(()));
            prop_assert_eq!(&replay, expected);
            let stale = DeltaError::Stale { map: delta.version, delta: delta.version };
            prop_assert_eq!(replay.apply(delta), Err(stale));
            prop_assert_eq!(&replay, expected);
        }
        prop_assert_eq!(Some(&replay), snapshots.last());

        // Skipping a delta is a gap, and leaves the map alone.
        if let Some(second) = deltas.get(1) {
            let mut skipped = initial.clone();
            let gap = matches!(skipped.apply(second), Err(DeltaError::Gap { .. }));
            prop_assert!(gap, "skipping version {} was not a gap", deltas[0].version);
            prop_assert_eq!(&skipped, &initial);
        }
    }
}
