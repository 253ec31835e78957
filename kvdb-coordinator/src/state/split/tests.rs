use kvdb_core::{Epoch, MapVersion, NodeId, ShardId, ShardState, Slot};

use super::super::tests::{cluster, register};
use crate::command::{Command, CommandResult, Outcome};
use crate::error::{BusyReason, CoordinatorError};
use crate::state::MetaState;

// `cluster()` has 8 shards of 2048 slots on nodes 1-3, ids 0-7, all at epoch 1.

fn split(state: &mut MetaState, shard: u64, epoch: Option<u64>, at: Option<u16>) -> CommandResult {
    state.apply(Command::SplitShard {
        shard: ShardId(shard),
        epoch: epoch.map(Epoch),
        at: at.map(Slot),
    })
}

fn report_leader(state: &mut MetaState, shard: u64, epoch: u64, leader: u64, term: u64) -> bool {
    let report = Command::ReportShardLeader {
        shard: ShardId(shard),
        epoch: Epoch(epoch),
        leader: NodeId(leader),
        term,
    };
    matches!(
        state.apply(report),
        Ok(Outcome::Report { accepted: true, .. })
    )
}

fn busy(shard: u64, reason: BusyReason) -> CoordinatorError {
    CoordinatorError::ShardBusy {
        shard: ShardId(shard),
        reason,
    }
}

fn message(result: CommandResult) -> String {
    match result.unwrap_err() {
        CoordinatorError::InvalidArgument(m) => m,
        other => panic!("not an invalid argument: {other:?}"),
    }
}

#[test]
fn a_split_narrows_the_shard_and_adds_a_splitting_one_in_one_version() {
    let mut state = cluster();
    let before = state.map().shards[&ShardId(0)].clone();
    let v = state.version();

    let Outcome::Split {
        parent,
        child,
        version,
    } = split(&mut state, 0, Some(1), None).unwrap()
    else {
        panic!("not a split outcome")
    };

    // --- the parent keeps the lower half, its replicas and its leader
    assert_eq!(version, v.next());
    assert_eq!((parent.slot_start, parent.slot_end), (Slot(0), Slot(1023)));
    assert_eq!(parent.epoch, Epoch(2));
    assert_eq!(parent.state, ShardState::Stable);
    assert_eq!(parent.replicas, before.replicas);
    assert_eq!(
        (parent.leader, parent.leader_term),
        (before.leader, before.leader_term)
    );
    // --- the child takes the upper half on the same replicas, leaderless, at the same epoch
    assert_eq!(child.id, ShardId(8), "one past the largest id");
    assert_eq!((child.slot_start, child.slot_end), (Slot(1024), Slot(2047)));
    assert_eq!(child.replicas, before.replicas);
    assert_eq!((child.leader, child.leader_term), (None, 0));
    assert_eq!(child.epoch, Epoch(2));
    assert_eq!(child.state, ShardState::Splitting { from: ShardId(0) });

    // --- both are in the map and in one delta, and the map still covers every slot once
    let map = state.map();
    map.validate().unwrap();
    assert_eq!(map.shards[&ShardId(0)], parent);
    assert_eq!(map.shards[&ShardId(8)], child);
    let delta = &state.deltas_after(v).unwrap()[0];
    assert_eq!(delta.version, version);
    assert_eq!(delta.shards, vec![parent, child]);

    // --- another split gets the next fresh id
    let Outcome::Split { child, .. } = split(&mut state, 5, None, Some(11000)).unwrap() else {
        panic!("not a split outcome")
    };
    assert_eq!(child.id, ShardId(9));
    assert_eq!(
        (child.slot_start, child.slot_end),
        (Slot(11000), Slot(12287))
    );
    state.map().validate().unwrap();
}

#[test]
fn the_split_point_must_leave_a_slot_on_each_side() {
    let mut state = cluster();
    let v = state.version();
    // Shard 1 has slots 2048..=4095.
    assert_eq!(
        message(split(&mut state, 1, None, Some(9000))),
        "slot 9000 is not inside shard 1 (slots 2048..=4095); a split point must be in 2049..=4095"
    );
    for at in [0, 2047, 2048, 4096, 16384, u16::MAX] {
        let err = split(&mut state, 1, None, Some(at)).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "at {at}: {err}");
    }
    assert!(message(split(&mut state, 1, None, Some(2048))).contains("the shard would keep none"));
    assert_eq!(state.version(), v, "refusals change nothing");

    // --- the last slot is a valid split point; the one-slot shard it makes cannot split
    let Outcome::Split { child, .. } = split(&mut state, 1, None, Some(4095)).unwrap() else {
        panic!("not a split outcome")
    };
    assert_eq!((child.slot_start, child.slot_end), (Slot(4095), Slot(4095)));
    assert!(report_leader(&mut state, child.id.0, 2, 1, 1));
    let v = state.version();
    assert_eq!(
        message(split(&mut state, child.id.0, None, None)),
        "shard 8 has a single slot (4095) and cannot be split"
    );
    assert_eq!(state.version(), v);
}

#[test]
fn unknown_shards_and_stale_epochs_are_refused() {
    let mut state = cluster();
    let v = state.version();
    assert_eq!(
        split(&mut state, 99, None, None).unwrap_err(),
        CoordinatorError::ShardNotFound(ShardId(99))
    );
    assert_eq!(
        split(&mut state, 2, Some(7), None).unwrap_err(),
        CoordinatorError::EpochMismatch {
            shard: ShardId(2),
            expected: Epoch(7),
            current: Epoch(1),
        }
    );
    assert_eq!(state.version(), v);
    assert_eq!(
        split(&mut MetaState::default(), 0, None, None).unwrap_err(),
        CoordinatorError::ShardNotFound(ShardId(0)),
        "nothing to split before init"
    );
}

#[test]
fn both_shards_of_an_unsettled_split_are_busy() {
    let mut state = cluster();
    register(&mut state, "node-4", 7004);
    split(&mut state, 0, None, None).unwrap();
    let v = state.version();
    let child = BusyReason::SplitChild { child: ShardId(8) };
    let splitting = BusyReason::Splitting { from: ShardId(0) };

    // --- no second split of either
    assert_eq!(
        split(&mut state, 0, None, None).unwrap_err(),
        busy(0, child)
    );
    assert_eq!(
        split(&mut state, 8, None, None).unwrap_err(),
        busy(8, splitting)
    );
    // --- no replica change of either: the child's group is built from the parent's set
    let move_to = |shard| Command::SetShardReplicas {
        shard: ShardId(shard),
        epoch: None,
        replicas: vec![NodeId(1), NodeId(2), NodeId(4)],
    };
    assert_eq!(state.apply(move_to(0)).unwrap_err(), busy(0, child));
    assert_eq!(state.apply(move_to(8)).unwrap_err(), busy(8, splitting));
    // --- no leader transfer in a group that has no leader yet
    let transfer = |shard| Command::SetShardLeader {
        shard: ShardId(shard),
        epoch: Epoch(2),
        node: NodeId(2),
    };
    assert_eq!(state.apply(transfer(8)).unwrap_err(), busy(8, splitting));
    assert_eq!(state.version(), v, "refusals change nothing");
    // The parent's own leadership may still move: the split entry is in its log either way.
    state.apply(transfer(0)).unwrap();

    // --- a moving shard cannot split either
    state.apply(move_to(3)).unwrap();
    let v = state.version();
    assert_eq!(
        split(&mut state, 3, None, None).unwrap_err(),
        busy(3, BusyReason::Moving)
    );
    assert_eq!(state.version(), v);
    let err = split(&mut state, 3, None, None).unwrap_err();
    assert_eq!(err.code(), "CONFLICT");
    assert!(err.to_string().contains("retry once"), "{err}");
}

#[test]
fn the_first_leader_report_of_the_new_shard_settles_the_split() {
    let mut state = cluster();
    split(&mut state, 0, None, None).unwrap();
    let v = state.version();
    assert!(!report_leader(&mut state, 8, 1, 2, 1), "the old epoch");
    assert!(!report_leader(&mut state, 8, 2, 9, 1), "not a replica");
    assert_eq!(state.version(), v);
    assert_eq!(
        state.map().shards[&ShardId(8)].state,
        ShardState::Splitting { from: ShardId(0) }
    );

    assert!(report_leader(&mut state, 8, 2, 2, 1));
    assert_eq!(state.version(), v.next(), "leader and state in one version");
    let settled = &state.map().shards[&ShardId(8)];
    assert_eq!(settled.state, ShardState::Stable);
    assert_eq!((settled.leader, settled.leader_term), (Some(NodeId(2)), 1));
    assert_eq!(settled.epoch, Epoch(2), "settling keeps the epoch");
    assert!(report_leader(&mut state, 8, 2, 2, 1), "a retry is accepted");
    assert_eq!(state.version(), v.next(), "and changes nothing");

    // --- both shards are free again
    split(&mut state, 0, Some(2), None).unwrap();
    split(&mut state, 8, Some(2), None).unwrap();
    state.map().validate().unwrap();
    assert_eq!(state.map().shards.len(), 11);
    assert_eq!(state.version(), MapVersion(v.0 + 3));
}
