use kvdb_core::{Epoch, MapVersion, NodeId, NodeStatus, ShardId, ShardState};

use super::*;

pub(super) fn register(state: &mut MetaState, name: &str, port: u16) -> NodeInfo {
    match state.apply(Command::RegisterNode {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        zone: "z1".into(),
    }) {
        Ok(Outcome::Node { node, .. }) => node,
        other => panic!("register {name}: {other:?}"),
    }
}

fn init(state: &mut MetaState, num_shards: u32, rf: u32) -> CommandResult {
    state.apply(Command::InitShards {
        num_shards,
        replication_factor: rf,
    })
}

/// Three nodes and 8 shards with RF 3.
pub(super) fn cluster() -> MetaState {
    let mut state = MetaState::default();
    for i in 1..=3 {
        register(&mut state, &format!("node-{i}"), 7000 + i);
    }
    init(&mut state, 8, 3).unwrap();
    state
}

#[test]
fn registration_assigns_ids_from_one_and_is_idempotent() {
    let mut state = MetaState::default();
    assert_eq!(register(&mut state, "node-1", 7001).id, NodeId(1));
    assert_eq!(register(&mut state, "node-2", 7002).id, NodeId(2));
    let version = state.version();
    assert_eq!(register(&mut state, "node-1", 7001).id, NodeId(1));
    assert_eq!(
        state.version(),
        version,
        "re-registering unchanged is a no-op"
    );

    let moved = register(&mut state, "node-1", 7101);
    assert_eq!(moved.id, NodeId(1));
    assert_eq!(moved.address, "127.0.0.1:7101");
    assert_eq!(state.version(), version.next());
}

#[test]
fn a_resp_address_is_recorded_kept_and_validated() {
    let mut state = MetaState::default();
    let with = |resp: &str| Command::RegisterNodeResp {
        name: "node-1".into(),
        address: "127.0.0.1:7001".into(),
        zone: "z1".into(),
        resp_address: resp.into(),
    };
    let Ok(Outcome::Node { node, .. }) = state.apply(with("127.0.0.1:6379")) else {
        panic!("registers")
    };
    assert_eq!(node.resp_address, "127.0.0.1:6379");
    // A registration that does not say (the Admin API's) keeps it.
    let kept = register(&mut state, "node-1", 7001);
    assert_eq!(kept.resp_address, "127.0.0.1:6379");
    // Saying none clears it; a malformed one changes nothing.
    let version = state.version();
    let refused = state.apply(with("no-port"));
    assert!(
        matches!(refused, Err(CoordinatorError::InvalidArgument(ref why)) if why.contains("RESP address")),
        "{refused:?}"
    );
    assert_eq!(state.version(), version);
    let Ok(Outcome::Node { node, .. }) = state.apply(with("")) else {
        panic!("registers")
    };
    assert_eq!(node.resp_address, "");
}

#[test]
fn registration_rejects_bad_input_and_taken_addresses() {
    let mut state = MetaState::default();
    register(&mut state, "node-1", 7001);
    for (name, address) in [("", "h:1"), ("a b", "h:1"), ("n", "nohost"), ("n", "h:0")] {
        let err = state
            .apply(Command::RegisterNode {
                name: name.into(),
                address: address.into(),
                zone: String::new(),
            })
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{name:?} {address:?}");
    }
    let err = state
        .apply(Command::RegisterNode {
            name: "node-2".into(),
            address: "127.0.0.1:7001".into(),
            zone: String::new(),
        })
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::AddressInUse { .. }));
    assert_eq!(state.version(), MapVersion(1));
}

#[test]
fn init_builds_a_valid_map_and_repeating_it_is_a_no_op() {
    let mut state = cluster();
    state.map().validate().unwrap();
    assert_eq!(state.map().shards.len(), 8);
    assert!(state.map().shards.values().all(|s| s.replicas.len() == 3));
    let version = state.version();

    assert_eq!(init(&mut state, 8, 3).unwrap(), Outcome::Version(version));
    assert_eq!(state.version(), version);
    assert_eq!(
        init(&mut state, 4, 3).unwrap_err(),
        CoordinatorError::AlreadyInitialized {
            num_shards: 8,
            replication_factor: 3
        }
    );
}

#[test]
fn init_rejects_bad_parameters() {
    let mut state = MetaState::default();
    register(&mut state, "node-1", 7001);
    register(&mut state, "node-2", 7002);
    let invalid = ["INVALID_ARGUMENT"; 3];
    for ((n, rf), code) in [(0, 1), (16385, 1), (8, 0)].into_iter().zip(invalid) {
        assert_eq!(init(&mut state, n, rf).unwrap_err().code(), code);
    }
    assert_eq!(
        init(&mut state, 8, 3).unwrap_err(),
        CoordinatorError::NotEnoughNodes {
            alive: 2,
            replication_factor: 3
        }
    );
    assert!(!state.map().is_initialized());
    assert_eq!(state.version(), MapVersion(2));
}

#[test]
fn init_uses_only_alive_nodes() {
    let mut state = MetaState::default();
    for i in 1..=3 {
        register(&mut state, &format!("node-{i}"), 7000 + i);
    }
    let dead = Command::SetNodeStatus {
        node: NodeId(2),
        status: NodeStatus::Dead,
    };
    state.apply(dead).unwrap();
    init(&mut state, 4, 2).unwrap();
    let uses_dead = state
        .map()
        .shards
        .values()
        .any(|s| s.replicas.contains(&NodeId(2)));
    assert!(!uses_dead);
}

#[test]
fn status_changes_bump_the_version_once() {
    let mut state = cluster();
    let set = |status| Command::SetNodeStatus {
        node: NodeId(1),
        status,
    };
    let v = state.version();
    assert_eq!(
        state.apply(set(NodeStatus::Suspect)).unwrap().version(),
        v.next()
    );
    assert_eq!(
        state.apply(set(NodeStatus::Suspect)).unwrap().version(),
        v.next()
    );
    let missing = Command::SetNodeStatus {
        node: NodeId(9),
        status: NodeStatus::Dead,
    };
    assert!(matches!(
        state.apply(missing),
        Err(CoordinatorError::NodeNotFound(_))
    ));
}

#[test]
fn a_move_stays_moving_until_the_new_config_is_reported() {
    let mut state = cluster();
    register(&mut state, "node-4", 7004);
    let shard = ShardId(0);
    let target = vec![NodeId(1), NodeId(2), NodeId(4)];
    let moved = state
        .apply(Command::SetShardReplicas {
            shard,
            epoch: Some(Epoch(1)),
            replicas: target.clone(),
        })
        .unwrap();
    let Outcome::Shard { shard: info, .. } = moved else {
        panic!("{moved:?}")
    };
    assert_eq!(info.epoch, Epoch(2));
    assert_eq!(info.replicas, vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(
        info.state,
        ShardState::Moving {
            target: target.clone()
        }
    );
    state.map().validate().unwrap();

    let report = |epoch, replicas| Command::ReportShardConfig {
        shard,
        epoch: Epoch(epoch),
        replicas,
    };
    let stale = state.apply(report(1, target.clone())).unwrap();
    assert!(matches!(
        stale,
        Outcome::Report {
            accepted: false,
            ..
        }
    ));
    let wrong = state.apply(report(2, vec![NodeId(1)])).unwrap();
    assert!(matches!(
        wrong,
        Outcome::Report {
            accepted: false,
            ..
        }
    ));

    let v = state.version();
    let ok = state
        .apply(report(2, vec![NodeId(4), NodeId(2), NodeId(1)]))
        .unwrap();
    assert_eq!(
        ok,
        Outcome::Report {
            accepted: true,
            version: v.next()
        }
    );
    let settled = &state.map().shards[&shard];
    assert_eq!(settled.state, ShardState::Stable);
    assert_eq!(settled.replicas, target);
    assert_eq!(settled.epoch, Epoch(2));

    let again = state.apply(report(2, target)).unwrap();
    assert_eq!(
        again,
        Outcome::Report {
            accepted: true,
            version: v.next()
        }
    );
}

#[test]
fn replica_changes_are_checked() {
    let mut state = cluster();
    let set = |epoch, replicas: Vec<u64>| Command::SetShardReplicas {
        shard: ShardId(1),
        epoch,
        replicas: replicas.into_iter().map(NodeId).collect(),
    };
    let cases = [
        (set(Some(Epoch(5)), vec![1]), "CONFLICT"),
        (set(None, vec![]), "INVALID_ARGUMENT"),
        (set(None, vec![1, 1]), "INVALID_ARGUMENT"),
        (set(None, vec![1, 2]), "INVALID_ARGUMENT"),
        (set(None, vec![1, 2, 9]), "NOT_FOUND"),
    ];
    let v = state.version();
    for (command, code) in cases {
        assert_eq!(state.apply(command).unwrap_err().code(), code);
    }
    // The same set (any order) is a no-op.
    state.apply(set(Some(Epoch(1)), vec![3, 2, 1])).unwrap();
    assert_eq!(state.version(), v);
    let missing = Command::SetShardReplicas {
        shard: ShardId(99),
        epoch: None,
        replicas: vec![NodeId(1)],
    };
    assert_eq!(
        state.apply(missing).unwrap_err(),
        CoordinatorError::ShardNotFound(ShardId(99))
    );
}

#[test]
fn leader_reports_need_the_current_epoch_and_a_newer_term() {
    let mut state = cluster();
    let shard = ShardId(2);
    let report = |epoch, leader, term| Command::ReportShardLeader {
        shard,
        epoch: Epoch(epoch),
        leader: NodeId(leader),
        term,
    };
    let accepted = |o: CommandResult| matches!(o, Ok(Outcome::Report { accepted: true, .. }));
    assert!(accepted(state.apply(report(1, 2, 5))));
    let v = state.version();
    assert!(
        accepted(state.apply(report(1, 2, 5))),
        "a retry is accepted"
    );
    assert_eq!(state.version(), v, "and changes nothing");
    assert!(!accepted(state.apply(report(1, 3, 4))), "older term");
    assert!(!accepted(state.apply(report(0, 3, 6))), "stale epoch");
    assert!(!accepted(state.apply(report(1, 9, 6))), "not a member");
    assert_eq!(state.version(), v);
    assert!(accepted(state.apply(report(1, 3, 6))));
    assert_eq!(state.map().shards[&shard].leader, Some(NodeId(3)));
    assert!(!accepted(state.apply(report(1, 2, 5))), "older term again");
    assert_eq!(state.map().shards[&shard].leader, Some(NodeId(3)));
    assert_eq!(
        state.map().shards[&shard].epoch,
        Epoch(1),
        "leaders never bump epochs"
    );
}

#[test]
fn the_real_leader_of_the_same_term_heals_a_transfer_that_did_not_happen() {
    let mut state = cluster();
    let shard = ShardId(2);
    let report = |leader, term| Command::ReportShardLeader {
        shard,
        epoch: Epoch(1),
        leader: NodeId(leader),
        term,
    };
    let accepted = |o: CommandResult| matches!(o, Ok(Outcome::Report { accepted: true, .. }));
    assert!(accepted(state.apply(report(2, 5))));
    let transfer = Command::SetShardLeader {
        shard,
        epoch: Epoch(1),
        node: NodeId(3),
    };
    state.apply(transfer).unwrap();
    let s = &state.map().shards[&shard];
    assert_eq!((s.leader, s.leader_term), (Some(NodeId(3)), 5));
    assert!(
        accepted(state.apply(report(2, 5))),
        "term 5's leader reclaims the entry"
    );
    let s = &state.map().shards[&shard];
    assert_eq!((s.leader, s.leader_term), (Some(NodeId(2)), 5));
    assert!(!accepted(state.apply(report(3, 4))), "an older term never");
    assert_eq!(state.map().shards[&shard].leader, Some(NodeId(2)));
}

#[test]
fn leader_transfer_names_the_target() {
    let mut state = cluster();
    let shard = ShardId(0);
    let transfer = |epoch, node| Command::SetShardLeader {
        shard,
        epoch: Epoch(epoch),
        node: NodeId(node),
    };
    assert_eq!(state.apply(transfer(2, 2)).unwrap_err().code(), "CONFLICT");
    assert_eq!(state.apply(transfer(1, 9)).unwrap_err().code(), "NOT_FOUND");
    register(&mut state, "node-4", 7004);
    assert_eq!(
        state.apply(transfer(1, 4)).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    let v = state.version();
    assert_eq!(
        state.apply(transfer(1, 2)).unwrap(),
        Outcome::Version(v.next())
    );
    assert_eq!(state.map().shards[&shard].leader, Some(NodeId(2)));
    assert_eq!(
        state.apply(transfer(1, 2)).unwrap(),
        Outcome::Version(v.next())
    );
}

#[test]
fn history_serves_contiguous_deltas_and_forgets_old_ones() {
    let mut state = MetaState::new(4);
    for i in 1..=6 {
        register(&mut state, &format!("node-{i}"), 7000 + i);
    }
    assert_eq!(state.version(), MapVersion(6));
    let deltas = state.deltas_after(MapVersion(2)).unwrap();
    let versions: Vec<u64> = deltas.iter().map(|d| d.version.0).collect();
    assert_eq!(versions, vec![3, 4, 5, 6]);
    assert!(state.deltas_after(MapVersion(1)).is_none());
    assert!(state.deltas_after(MapVersion(6)).unwrap().is_empty());
    assert!(state.deltas_after(MapVersion(60)).unwrap().is_empty());

    // Replaying the deltas over an old map gives the current map.
    let mut old = MetaState::new(4);
    for i in 1..=2 {
        register(&mut old, &format!("node-{i}"), 7000 + i);
    }
    let mut map = ShardMap::clone(old.map());
    for d in &deltas {
        map.apply(d).unwrap();
    }
    assert_eq!(&map, state.map().as_ref());
}

#[test]
fn export_and_import_round_trip() {
    let mut state = cluster();
    state
        .apply(Command::AnnounceMember {
            id: 1,
            grpc_address: "127.0.0.1:6000".into(),
            admin_address: Some("127.0.0.1:8000".into()),
        })
        .unwrap();
    let bytes = state.export().unwrap();
    let mut copy = MetaState::default();
    copy.import(&bytes).unwrap();
    assert_eq!(copy.map(), state.map());
    assert_eq!(copy.init_params(), state.init_params());
    assert_eq!(copy.member(1), state.member(1));
    assert_eq!(
        copy.deltas_after(MapVersion(0)).unwrap().len(),
        state.version().0 as usize
    );
    assert_eq!(
        init(&mut copy, 8, 3).unwrap(),
        Outcome::Version(state.version())
    );
}
