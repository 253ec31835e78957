//! Automatic splits: planned from the leaders' figures, at the middle of the
//! range, never for busy, cooling or one-slot shards, within the move limit.

use std::time::Duration;

use kvdb_core::Slot;
use tokio::time::Instant;

use super::*;
use crate::command::{Command, Outcome};
use crate::scheduler::{SHARD_COOLDOWN, SchedulerConfig, SchedulerMemory, command};
use crate::shard_stats::{ShardLoad, ShardStatsBook};

const SPLITTING: Limits = Limits {
    split_keys: Some(1000),
    split_rate: Some(100.0),
    ..LIMITS
};

/// `map` with shard `i` over slots `1000 i..=1000 i + 999`.
fn ranged(nodes: Vec<NodeInfo>, shards: &[&[u64]]) -> ShardMap {
    let mut m = map(nodes, shards);
    for shard in m.shards.values_mut() {
        let start = shard.id.0 as u16 * 1000;
        (shard.slot_start, shard.slot_end) = (Slot(start), Slot(start + 999));
    }
    m
}

fn figures(keys: u64, reads: f64, writes: f64) -> ShardLoad {
    ShardLoad {
        reported_by: NodeId(1),
        age_ms: 0,
        keys,
        applied_index: 0,
        reads_per_sec: Some(reads),
        writes_per_sec: Some(writes),
    }
}

/// Calm facts with `loads` as the leaders' figures.
fn loaded(loads: &[(u64, ShardLoad)]) -> Recent {
    Recent {
        loads: loads.iter().map(|&(s, l)| (ShardId(s), l)).collect(),
        ..none()
    }
}

/// The splits of a plan: shard, split point and reason.
fn splits(m: &ShardMap, recent: &Recent, limits: Limits) -> Vec<(u64, u16, Reason)> {
    plan(m, recent, limits)
        .into_iter()
        .filter_map(|op| match op.kind {
            OperationKind::Split { at } => Some((op.shard.0, at.0, op.reason)),
            _ => None,
        })
        .collect()
}

fn three_shards() -> ShardMap {
    ranged(alive(1..=3), &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]])
}

#[test]
fn a_shard_over_a_threshold_is_split_at_its_middle() {
    let m = three_shards();
    // --- too many keys
    let big = loaded(&[(0, figures(5000, 0.0, 0.0)), (1, figures(1000, 0.0, 0.0))]);
    let ops = plan(&m, &big, SPLITTING);
    assert_eq!(ops.len(), 1, "1000 keys is not over 1000: {ops:?}");
    assert_eq!(
        ops[0],
        Operation {
            shard: ShardId(0),
            epoch: Epoch(1),
            kind: OperationKind::Split { at: Slot(500) },
            reason: Reason::Size,
        }
    );
    // --- too many requests: reads and writes together
    let busy = loaded(&[(2, figures(10, 60.0, 50.0))]);
    assert_eq!(splits(&m, &busy, SPLITTING), vec![(2, 2500, Reason::Load)]);
    let quiet = loaded(&[(2, figures(10, 60.0, 30.0))]);
    assert!(splits(&m, &quiet, SPLITTING).is_empty());
    // --- over both: the reason is the threshold it is furthest over
    let both = loaded(&[(1, figures(1500, 500.0, 0.0))]);
    assert_eq!(splits(&m, &both, SPLITTING), vec![(1, 1500, Reason::Load)]);
    // --- a threshold that is off never splits
    let off = Limits {
        split_keys: None,
        split_rate: None,
        ..SPLITTING
    };
    let everything = loaded(&[(0, figures(5000, 500.0, 500.0))]);
    assert!(splits(&m, &everything, off).is_empty());
    // --- a first report has no rate yet
    let first = ShardLoad {
        reads_per_sec: None,
        writes_per_sec: None,
        ..figures(10, 0.0, 0.0)
    };
    assert!(splits(&m, &loaded(&[(0, first)]), SPLITTING).is_empty());
}

#[test]
fn one_slot_cooling_and_majorityless_shards_are_not_split() {
    let over = [(0, figures(5000, 0.0, 0.0))];
    // Every shard of `map` has one slot.
    let single = map(alive(1..=3), &[&[1, 2, 3]]);
    assert!(splits(&single, &loaded(&over), SPLITTING).is_empty());

    let m = three_shards();
    let cooling = Recent {
        recently_split: BTreeSet::from([ShardId(0)]),
        ..loaded(&over)
    };
    assert!(splits(&m, &cooling, SPLITTING).is_empty());

    let dead = with_status(
        with_status(three_shards(), 2, NodeStatus::Dead),
        3,
        NodeStatus::Dead,
    );
    assert!(
        splits(&dead, &loaded(&over), SPLITTING).is_empty(),
        "no quorum to apply the split"
    );
}

#[test]
fn both_shards_of_an_unsettled_split_are_left_alone() {
    // Shard 3 is being split off shard 0; node 1 drains and leads shard 0.
    let mut m = with_status(three_shards(), 1, NodeStatus::Draining);
    m.nodes.insert(NodeId(4), node(4, NodeStatus::Alive, "z"));
    let parent = m.shards[&ShardId(0)].clone();
    m.shards.get_mut(&ShardId(0)).unwrap().slot_end = Slot(499);
    m.shards.insert(
        ShardId(3),
        ShardInfo {
            id: ShardId(3),
            slot_start: Slot(500),
            slot_end: Slot(999),
            leader: None,
            leader_term: 0,
            state: ShardState::Splitting { from: ShardId(0) },
            ..parent
        },
    );
    let over = loaded(&[(0, figures(5000, 0.0, 0.0)), (3, figures(5000, 0.0, 0.0))]);
    let ops = plan(&m, &over, SPLITTING);
    assert!(!ops.is_empty(), "the other shards drain");
    assert!(
        ops.iter()
            .all(|op| op.shard != ShardId(0) && op.shard != ShardId(3)),
        "{ops:?}"
    );
}

#[test]
fn splits_count_toward_the_move_limit() {
    let mut m = ranged(
        alive(1..=4),
        &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 2, 3]],
    );
    m.shards.get_mut(&ShardId(3)).unwrap().state = ShardState::Moving {
        target: vec![NodeId(1), NodeId(2), NodeId(4)],
    };
    let limits = Limits {
        max_moves: 2,
        ..SPLITTING
    };
    // Shard 2 is the furthest over, so it goes first; the moving shard 3 takes the other slot.
    let over = loaded(&[
        (0, figures(2000, 0.0, 0.0)),
        (1, figures(1500, 0.0, 0.0)),
        (2, figures(9000, 0.0, 0.0)),
    ]);
    let ops = plan(&m, &over, limits);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].shard, ShardId(2));
    // An unsettled split counts once, like a move.
    let wide = Limits {
        max_moves: 3,
        ..limits
    };
    assert_eq!(
        splits(&m, &over, wide),
        vec![(2, 2500, Reason::Size), (0, 500, Reason::Size)]
    );
}

#[test]
fn a_split_operation_is_a_split_command_with_its_epoch() {
    let op = Operation {
        shard: ShardId(4),
        epoch: Epoch(7),
        kind: OperationKind::Split { at: Slot(4500) },
        reason: Reason::Load,
    };
    assert_eq!(
        command(&op),
        Command::SplitShard {
            shard: ShardId(4),
            epoch: Some(Epoch(7)),
            at: Some(Slot(4500)),
        }
    );
    let json = serde_json::to_value(&op).unwrap();
    assert_eq!(json["kind"]["type"], "split");
    assert_eq!(json["kind"]["at"], 4500);
    assert_eq!(json["reason"], "load");
}

#[test]
fn both_halves_of_a_started_split_cool_down_and_figures_come_from_the_book() {
    let memory = SchedulerMemory::default();
    let book = ShardStatsBook::default();
    let config = SchedulerConfig::default();
    let m = three_shards();
    let t0 = Instant::now();
    let stats = kvdb_core::shard_stats::ShardStats {
        shard: ShardId(1),
        leader: true,
        keys: 42,
        ..Default::default()
    };
    book.record(NodeId(2), &[stats], t0);
    let facts = memory.recent_facts(&m, 1, t0, &config, &book);
    assert_eq!(facts.loads[&ShardId(1)].keys, 42);

    let op = Operation {
        shard: ShardId(0),
        epoch: Epoch(1),
        kind: OperationKind::Split { at: Slot(500) },
        reason: Reason::Size,
    };
    let parent = m.shards[&ShardId(0)].clone();
    let outcome = Outcome::Split {
        child: ShardInfo {
            id: ShardId(3),
            ..parent.clone()
        },
        parent,
        version: m.version.next(),
    };
    memory.started(&m, &op, &outcome, t0);
    let cooling = memory.recent_facts(&m, 1, t0 + Duration::from_secs(1), &config, &book);
    assert_eq!(
        cooling.recently_split,
        BTreeSet::from([ShardId(0), ShardId(3)])
    );
    let later = memory.recent_facts(&m, 1, t0 + SHARD_COOLDOWN, &config, &book);
    assert!(later.recently_split.is_empty());
}
