use std::collections::BTreeMap;

use kvdb_core::{Epoch, NodeInfo, NodeStatus};

use super::*;

fn shard(id: u64, start: u16, end: u16, state: ShardState) -> ShardInfo {
    ShardInfo {
        id: ShardId(id),
        slot_start: Slot(start),
        slot_end: Slot(end),
        replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
        leader: Some(NodeId(1)),
        epoch: Epoch(2),
        state,
        leader_term: 1,
    }
}

fn map(shards: Vec<ShardInfo>) -> ShardMap {
    let nodes: BTreeMap<NodeId, NodeInfo> = (1..=4)
        .map(|i| {
            let info = NodeInfo {
                id: NodeId(i),
                name: format!("node-{i}"),
                address: format!("127.0.0.1:{i}"),
                zone: String::new(),
                status: NodeStatus::Alive,
                resp_address: String::new(),
            };
            (NodeId(i), info)
        })
        .collect();
    let map = ShardMap {
        version: kvdb_core::MapVersion(3),
        nodes,
        shards: shards.into_iter().map(|s| (s.id, s)).collect(),
    };
    map.validate().unwrap();
    map
}

fn range(start: u16, end: u16) -> SlotRange {
    SlotRange {
        start: Slot(start),
        end: Slot(end),
    }
}

#[test]
fn a_fence_packs_any_range() {
    for r in [
        SlotRange::ALL,
        range(0, 0),
        range(16383, 16383),
        range(17, 9000),
    ] {
        assert_eq!(Fence::new(r).range(), r);
    }
    let fence = Fence::new(SlotRange::ALL);
    fence.set(range(0, 99));
    assert!(fence.serves(Slot(99)) && !fence.serves(Slot(100)));
}

/// The split shard `parent`'s leader would propose while it serves every slot.
fn pending_of(m: &ShardMap, parent: u64) -> Option<Split> {
    pending_split(
        &splits_by_parent(m),
        &m.shards[&ShardId(parent)],
        SlotRange::ALL,
    )
}

#[test]
fn the_parent_leader_proposes_every_pending_child_in_slot_order() {
    let splitting = |from| ShardState::Splitting {
        from: ShardId(from),
    };
    let m = map(vec![
        shard(1, 0, 4095, ShardState::Stable),
        shard(3, 8192, 16383, splitting(1)),
        shard(2, 4096, 8191, splitting(1)),
    ]);
    let parent = &m.shards[&ShardId(1)];
    let split = pending_of(&m, 1).unwrap();
    let children: Vec<(u64, u16, u16)> = split
        .children
        .iter()
        .map(|c| (c.shard.0, c.slot_start.0, c.slot_end.0))
        .collect();
    assert_eq!(children, vec![(2, 4096, 8191), (3, 8192, 16383)]);
    // Applied already: the replica no longer serves the first child's slots.
    assert!(pending_split(&splits_by_parent(&m), parent, range(0, 4095)).is_none());
    // A settled child is not split again.
    let settled = map(vec![
        shard(1, 0, 4095, ShardState::Stable),
        shard(2, 4096, 16383, ShardState::Stable),
    ]);
    assert!(pending_of(&settled, 1).is_none());
}

#[test]
fn a_child_that_does_not_continue_the_parent_is_not_proposed() {
    let m = map(vec![
        shard(1, 0, 4095, ShardState::Stable),
        shard(2, 4096, 8191, ShardState::Stable),
        shard(3, 8192, 16383, ShardState::Splitting { from: ShardId(1) }),
    ]);
    assert!(pending_of(&m, 1).is_none());
}

#[test]
fn a_child_opens_only_once_the_local_parent_gave_its_slots_up() {
    let m = map(vec![
        shard(1, 0, 8191, ShardState::Stable),
        shard(2, 8192, 16383, ShardState::Splitting { from: ShardId(1) }),
    ]);
    let child = &m.shards[&ShardId(2)];
    // The parent still serves the slots, or is not open here yet: wait.
    assert!(!may_open(&m, NodeId(1), child, Some(SlotRange::ALL)));
    assert!(!may_open(&m, NodeId(1), child, None));
    // The split is applied here (or a snapshot after it was installed).
    assert!(may_open(&m, NodeId(1), child, Some(range(0, 8191))));
    // A node that does not hold the parent opens as usual, as does a settled shard.
    assert!(may_open(&m, NodeId(4), child, None));
    assert!(may_open(&m, NodeId(1), &m.shards[&ShardId(1)], None));
}

/// A nursery over fresh databases in `dir`.
fn nursery(dir: &std::path::Path) -> (Nursery, LogDb, Arc<WriteBuffer>) {
    let log_db = LogDb::open(dir.join("log.redb"), Default::default()).unwrap();
    let kv = redb::Database::create(dir.join("kv.redb")).unwrap();
    let kv_db = WriteBuffer::new(Arc::new(kv));
    (Nursery::new(kv_db.clone(), log_db.clone()), log_db, kv_db)
}

fn has_state(kv_db: &Arc<WriteBuffer>, shard: u64) -> bool {
    let storage = RedbStorage::open_in(kv_db, ShardId(shard), CommitDurability::Deferred).unwrap();
    storage.meta().unwrap().is_some()
}

#[tokio::test]
async fn a_split_recreates_no_shard_that_once_ran_on_the_node() {
    use openraft::storage::RaftLogStorage;

    let dir = tempfile::tempdir().unwrap();
    let (nursery, log_db, kv_db) = nursery(dir.path());
    let create = |shard: u64| {
        nursery
            .create(
                ShardId(shard),
                Vec::new(),
                b"meta".to_vec(),
                AuxRows::default(),
            )
            .unwrap()
    };

    assert!(
        create(7),
        "a shard new to this node is created by its split"
    );
    assert!(has_state(&kv_db, 7));

    // A replica of shard 8 ran here (it voted), and was removed since.
    let mut store = log_db.group::<ShardRaftConfig>(8);
    store
        .save_vote(&openraft::Vote::new_committed(2, 1))
        .await
        .unwrap();
    assert!(!create(8), "a shard that ran here is not recreated");
    log_db.remove_group::<ShardRaftConfig>(8).await.unwrap();
    assert!(!create(8), "nor once its replica was removed");
    assert!(!has_state(&kv_db, 8));

    // A claimed shard is not written either.
    nursery.claim(ShardId(9));
    assert!(!create(9));
    nursery.release(ShardId(9));
    assert!(create(9));
}
