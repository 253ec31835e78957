//! Where the shards of a fresh cluster go: contiguous slot ranges, and
//! replicas and initial leaders spread round-robin over the alive nodes.
//!
//! Pure functions over plain data. Later changes to a running cluster
//! (repair, drain, balancing) are the [`crate::scheduler`]'s.

use kvdb_core::{Epoch, NodeId, SLOT_COUNT, ShardId, ShardInfo, ShardState, Slot};

/// The inclusive slot range of shard `index` when the slot space is split
/// into `num_shards` contiguous ranges. The remainder is spread over the
/// first shards, so sizes differ by at most one.
///
/// `num_shards` must be in `1..=SLOT_COUNT` and `index < num_shards`.
pub fn slot_range(index: u32, num_shards: u32) -> (Slot, Slot) {
    let total = u32::from(SLOT_COUNT);
    let base = total / num_shards;
    let extra = total % num_shards;
    let start = index * base + index.min(extra);
    let len = base + u32::from(index < extra);
    // Both ends are below SLOT_COUNT (a u16 range) by construction.
    (Slot(start as u16), Slot((start + len - 1) as u16))
}

/// The shards of a fresh map: shard `i` covers [`slot_range`]`(i)`, its
/// replicas are `rf` consecutive nodes of `nodes` starting at `i` (wrapping),
/// and its initial leader is the first of them, so replicas and leaders are
/// spread evenly. Epochs start at 1, so no shard ever has epoch 0: a data-path
/// request routed with epoch 0 is refused as `STALE_EPOCH`, and only the
/// coordinator's `SetShardReplicas` call reads epoch 0 as "skip the check".
///
/// `nodes` must hold at least `replication_factor` distinct ids, and
/// `num_shards` must be in `1..=SLOT_COUNT`.
pub fn initial_shards(
    num_shards: u32,
    replication_factor: u32,
    nodes: &[NodeId],
) -> Vec<ShardInfo> {
    (0..num_shards)
        .map(|i| {
            let (slot_start, slot_end) = slot_range(i, num_shards);
            let replicas: Vec<NodeId> = (0..replication_factor as usize)
                .map(|j| nodes[(i as usize + j) % nodes.len()])
                .collect();
            ShardInfo {
                id: ShardId(u64::from(i)),
                slot_start,
                slot_end,
                leader: replicas.first().copied(),
                replicas,
                epoch: Epoch(1),
                state: ShardState::Stable,
                leader_term: 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ranges_cover_every_slot_once() {
        for n in [1, 3, 7, 8, 1000, 4096, 16383, 16384] {
            let mut next = 0u32;
            for i in 0..n {
                let (start, end) = slot_range(i, n);
                assert_eq!(u32::from(start.0), next, "n={n} i={i}");
                assert!(start <= end);
                next = u32::from(end.0) + 1;
            }
            assert_eq!(next, u32::from(SLOT_COUNT), "n={n}");
        }
    }

    #[test]
    fn range_sizes_differ_by_at_most_one() {
        let sizes: Vec<u32> = (0..7)
            .map(|i| {
                let (s, e) = slot_range(i, 7);
                u32::from(e.0) - u32::from(s.0) + 1
            })
            .collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }

    #[test]
    fn replicas_and_leaders_spread_evenly() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let shards = initial_shards(10, 3, &nodes);
        let mut replicas = BTreeMap::<NodeId, u32>::new();
        let mut leaders = BTreeMap::<NodeId, u32>::new();
        for s in &shards {
            assert_eq!(s.replicas.len(), 3);
            for r in &s.replicas {
                *replicas.entry(*r).or_default() += 1;
            }
            *leaders.entry(s.leader.unwrap()).or_default() += 1;
        }
        assert!(replicas.values().all(|&c| c == 6), "{replicas:?}");
        assert!(leaders.values().all(|&c| c == 2), "{leaders:?}");
    }
}
