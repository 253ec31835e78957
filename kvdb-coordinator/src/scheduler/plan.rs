//! The scheduler's decisions: a pure function from the shard map (and what
//! the leader remembers: which dead nodes have waited long enough, the shards'
//! figures) to the operations worth starting now.
//!
//! Priorities, highest first: replace replicas on nodes dead for
//! `repair_after`, move replicas and leaderships off draining nodes, split
//! shards whose leader reports more keys or requests than the split
//! thresholds, then even out replicas and leaders per alive node. Every
//! operation names the epoch it was planned against, so one planned from a map
//! that has since changed is refused by the coordinator instead of acting on
//! stale facts.
//!
//! Invariants the plan keeps (tests check them):
//! - at most `max_moves` shards moving or splitting cluster-wide, counting
//!   those already `Moving` and each unsettled split, and never two operations
//!   for one shard in one plan;
//! - both shards of an unsettled split are left alone (no move, no transfer,
//!   no second split): the new shard's group is built from the parent's
//!   replicas as they were at the split;
//! - a shard is split at the middle of its range, never when it has one slot,
//!   and at most once per `SHARD_COOLDOWN` (its figures are stale until its
//!   leader reports again);
//! - a move never shrinks a shard: it swaps one replica for one new one, and
//!   the node's Raft leader adds the new one as a learner and lets it catch up
//!   before the old one leaves (see the node's `reconfigure`);
//! - a shard without a majority on nodes that are not dead is left alone: its
//!   membership cannot change until a majority returns;
//! - a move stuck on its way to a node that has since died or started
//!   draining, or that has not finished within the move timeout, gets a new
//!   target in place of that node (a learner that never catches up would
//!   keep the shard moving, and short a replica, for good);
//! - balancing only moves a replica from a node holding at least two more
//!   than the target, so every move lowers the spread and the plan converges.

use std::collections::{BTreeMap, BTreeSet};

use kvdb_core::{Epoch, NodeId, NodeStatus, ShardId, ShardInfo, ShardMap, ShardState, Slot};
use serde::{Deserialize, Serialize};

use crate::shard_stats::ShardLoad;
use crate::state::split_midpoint;

/// What one plan may start, and when it splits a shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Shards moving or splitting at once, cluster-wide (those already moving
    /// or splitting count).
    pub max_moves: usize,
    /// Leader transfers started by one plan.
    pub max_leader_transfers: usize,
    /// Split a shard whose leader reports more keys than this; `None` never does.
    pub split_keys: Option<u64>,
    /// Split a shard whose leader reports more reads and writes per second, together,
    /// than this; `None` never does.
    pub split_rate: Option<f64>,
}

/// One operation the scheduler starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The shard it changes.
    pub shard: ShardId,
    /// The shard's epoch when planned; the command carries it.
    pub epoch: Epoch,
    /// What changes.
    pub kind: OperationKind,
    /// Why.
    pub reason: Reason,
}

/// What an [`Operation`] changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperationKind {
    /// Replace the replica on `from` with a new one on `to`.
    MoveReplica {
        /// The replica leaving.
        from: NodeId,
        /// The node receiving a new replica.
        to: NodeId,
        /// The whole target set (the current set with `from` swapped for `to`).
        replicas: Vec<NodeId>,
    },
    /// Hand the shard's leadership from `from` to `to`.
    TransferLeader {
        /// The current leader (as the map says).
        from: NodeId,
        /// The replica that should lead.
        to: NodeId,
    },
    /// Split the shard: it keeps the slots below `at`, a new shard takes the rest.
    Split {
        /// The new shard's first slot (the middle of the range).
        at: Slot,
    },
}

/// Why the scheduler started an [`Operation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The source node has been dead for `repair_after`.
    Repair,
    /// The source node is draining.
    Drain,
    /// The source node holds more than its share.
    Balance,
    /// The shard's move to the source node did not finish within the move
    /// timeout (its new replica never caught up).
    Stuck,
    /// The shard holds more keys than the split threshold.
    Size,
    /// The shard serves more requests per second than the split threshold.
    Load,
}

/// Replicas and leaderships per node, counting moving shards at their target
/// (where they are headed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Load {
    /// Replicas per node, for every node in the map.
    pub replicas: BTreeMap<NodeId, usize>,
    /// Leaderships per node, for every node in the map.
    pub leaders: BTreeMap<NodeId, usize>,
}

impl Load {
    /// The load of every node of `map`.
    pub fn of(map: &ShardMap) -> Load {
        let mut load = Load {
            replicas: map.nodes.keys().map(|&n| (n, 0)).collect(),
            leaders: map.nodes.keys().map(|&n| (n, 0)).collect(),
        };
        for shard in map.shards.values() {
            for node in eventual_replicas(shard) {
                *load.replicas.entry(*node).or_default() += 1;
            }
            if let Some(leader) = shard.leader {
                *load.leaders.entry(leader).or_default() += 1;
            }
        }
        load
    }
}

/// What the leader remembers that the map does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recent {
    /// Dead nodes whose replicas may be replaced (dead for `repair_after`).
    pub repairable: BTreeSet<NodeId>,
    /// Shards whose leadership the scheduler moved lately: balancing leaves
    /// them alone for a while, so that no shard's leadership keeps moving.
    pub cooling: BTreeSet<ShardId>,
    /// Nodes a recent transfer failed to reach (the old leader took its
    /// leadership back): a node its peers cannot hear, say. They get no
    /// balancing transfers or moves for a while; repair and drain still use
    /// them when nothing else can take a replica.
    pub unfit: BTreeSet<NodeId>,
    /// Moving shards whose move has run longer than the move timeout: their
    /// new replica goes elsewhere.
    pub stuck: BTreeSet<ShardId>,
    /// Whether leaderships may be balanced: only once the cluster has been
    /// calm for a while (see `scheduler::LEADER_SETTLE`), since every
    /// balancing transfer stalls its shard's writes for a moment.
    pub calm: bool,
    /// Each shard's latest figures from its leader (keys, request rates), as
    /// heartbeats brought them to this leader; the input of automatic splits.
    pub loads: BTreeMap<ShardId, ShardLoad>,
    /// Shards this leadership split, or made by a split, lately: they are not
    /// split again until their leader's figures describe the narrower range.
    pub recently_split: BTreeSet<ShardId>,
}

/// The operations worth starting on `map` now.
pub fn plan(map: &ShardMap, recent: &Recent, limits: Limits) -> Vec<Operation> {
    let mut planner = Planner::new(map, recent, limits);
    let repairable = &recent.repairable;
    planner.retarget(|_, n| repairable.contains(&n.id), Reason::Repair);
    planner.retarget(|_, n| n.status == NodeStatus::Draining, Reason::Drain);
    planner.retarget(|s, _| recent.stuck.contains(&s.id), Reason::Stuck);
    planner.evacuate(|n| repairable.contains(&n.id), Reason::Repair);
    planner.transfer_off_draining();
    planner.evacuate(|n| n.status == NodeStatus::Draining, Reason::Drain);
    planner.split_oversized();
    planner.balance_replicas();
    if recent.calm {
        planner.balance_leaders();
    }
    planner.operations
}

struct Planner<'a> {
    map: &'a ShardMap,
    recent: &'a Recent,
    limits: Limits,
    load: Load,
    /// Shards that already have an operation in this plan, are moving, or
    /// take part in an unsettled split.
    busy: BTreeSet<ShardId>,
    /// Moving shards that got an operation in this plan.
    planned: BTreeSet<ShardId>,
    moves_in_flight: usize,
    transfers: usize,
    operations: Vec<Operation>,
}

impl<'a> Planner<'a> {
    fn new(map: &'a ShardMap, recent: &'a Recent, limits: Limits) -> Self {
        let mut busy = BTreeSet::new();
        let mut in_flight = 0;
        for shard in map
            .shards
            .values()
            .filter(|s| s.state != ShardState::Stable)
        {
            busy.insert(shard.id);
            in_flight += 1;
            // A split holds its parent too, but counts once, by its new shard.
            if let ShardState::Splitting { from } = shard.state {
                busy.insert(from);
            }
        }
        Planner {
            map,
            recent,
            limits,
            load: Load::of(map),
            moves_in_flight: in_flight,
            busy,
            planned: BTreeSet::new(),
            transfers: 0,
            operations: Vec::new(),
        }
    }

    fn status(&self, node: NodeId) -> Option<NodeStatus> {
        self.map.nodes.get(&node).map(|n| n.status)
    }

    fn is_alive(&self, node: NodeId) -> bool {
        self.status(node) == Some(NodeStatus::Alive)
    }

    fn zone(&self, node: NodeId) -> &str {
        self.map.nodes.get(&node).map_or("", |n| n.zone.as_str())
    }

    fn can_move(&self) -> bool {
        self.moves_in_flight < self.limits.max_moves
    }

    /// Stable shards with no operation yet, in id order.
    fn idle_shards(&self) -> impl Iterator<Item = &'a ShardInfo> + use<'a, '_> {
        self.map
            .shards
            .values()
            .filter(|s| s.state == ShardState::Stable && !self.busy.contains(&s.id))
    }

    /// Whether a majority of `shard`'s replicas are on nodes that are not
    /// dead, so that its membership can change.
    fn has_live_majority(&self, shard: &ShardInfo) -> bool {
        let live = shard
            .replicas
            .iter()
            .filter(|&&r| matches!(self.status(r), Some(s) if s != NodeStatus::Dead))
            .count();
        live > shard.replicas.len() / 2
    }

    /// The best alive node outside `outside` to receive a replica in place of
    /// `leaving`, for a shard headed for the replica set `heading`: first one
    /// no transfer or move failed to reach lately, then one whose zone the
    /// rest of `heading` does not use, then the least loaded, then the lowest id.
    fn target_for(
        &self,
        heading: &[NodeId],
        outside: &[NodeId],
        leaving: NodeId,
    ) -> Option<NodeId> {
        self.map
            .nodes
            .values()
            .filter(|n| n.status == NodeStatus::Alive && !outside.contains(&n.id))
            .min_by_key(|n| {
                let shared_zones = heading
                    .iter()
                    .filter(|&&r| r != leaving && self.zone(r) == n.zone)
                    .count();
                let unfit = self.recent.unfit.contains(&n.id);
                (unfit, shared_zones, self.load.replicas[&n.id], n.id)
            })
            .map(|n| n.id)
    }

    /// Starts moving one of `shard`'s replicas from `from` to `to`.
    fn push_move(&mut self, shard: &ShardInfo, from: NodeId, to: NodeId, reason: Reason) {
        self.push_swap(shard, &shard.replicas, from, to, reason);
        self.busy.insert(shard.id);
        self.moves_in_flight += 1;
    }

    /// Plans `shard` to head for `heading` with `from` swapped for `to`.
    fn push_swap(
        &mut self,
        shard: &ShardInfo,
        heading: &[NodeId],
        from: NodeId,
        to: NodeId,
        reason: Reason,
    ) {
        let replicas: Vec<NodeId> = heading
            .iter()
            .map(|&r| if r == from { to } else { r })
            .collect();
        *self.load.replicas.entry(from).or_default() -= 1;
        *self.load.replicas.entry(to).or_default() += 1;
        self.operations.push(Operation {
            shard: shard.id,
            epoch: shard.epoch,
            kind: OperationKind::MoveReplica { from, to, replicas },
            reason,
        });
    }

    fn push_transfer(&mut self, shard: &ShardInfo, from: NodeId, to: NodeId, reason: Reason) {
        *self.load.leaders.entry(from).or_default() -= 1;
        *self.load.leaders.entry(to).or_default() += 1;
        self.busy.insert(shard.id);
        self.transfers += 1;
        self.operations.push(Operation {
            shard: shard.id,
            epoch: shard.epoch,
            kind: OperationKind::TransferLeader { from, to },
            reason,
        });
    }

    /// Re-targets moves headed for a node `leaving` selects (one that is not
    /// already a replica, so only a learner is waiting for it): that node is
    /// swapped for the best alive node outside the shard. The shard already
    /// counts against the move limit.
    fn retarget(
        &mut self,
        leaving: impl Fn(&ShardInfo, &kvdb_core::NodeInfo) -> bool,
        reason: Reason,
    ) {
        for shard in self.map.shards.values() {
            let ShardState::Moving { target } = &shard.state else {
                continue;
            };
            if self.planned.contains(&shard.id) || !self.has_live_majority(shard) {
                continue;
            }
            let from = target.iter().copied().find(|n| {
                !shard.replicas.contains(n)
                    && self
                        .map
                        .nodes
                        .get(n)
                        .is_some_and(|info| leaving(shard, info))
            });
            let Some(from) = from else { continue };
            let outside: Vec<NodeId> = shard.replicas.iter().chain(target).copied().collect();
            let Some(to) = self.target_for(target, &outside, from) else {
                continue;
            };
            self.push_swap(shard, target, from, to, reason);
            self.planned.insert(shard.id);
        }
    }

    /// Moves one replica of each shard off the nodes `leaving` selects.
    fn evacuate(&mut self, leaving: impl Fn(&kvdb_core::NodeInfo) -> bool, reason: Reason) {
        let shards: Vec<&ShardInfo> = self.idle_shards().collect();
        for shard in shards {
            if !self.can_move() {
                return;
            }
            let from = shard
                .replicas
                .iter()
                .copied()
                .find(|r| self.map.nodes.get(r).is_some_and(&leaving));
            let Some(from) = from else { continue };
            if !self.has_live_majority(shard) {
                continue;
            }
            if let Some(to) = self.target_for(&shard.replicas, &shard.replicas, from) {
                self.push_move(shard, from, to, reason);
            }
        }
    }

    /// Hands leaderships held by draining nodes to their least-leading
    /// alive replica, so a drain never waits for a move to depose a leader.
    fn transfer_off_draining(&mut self) {
        let shards: Vec<&ShardInfo> = self.idle_shards().collect();
        for shard in shards {
            if self.transfers >= self.limits.max_leader_transfers {
                return;
            }
            let Some(leader) = shard.leader else { continue };
            if self.status(leader) != Some(NodeStatus::Draining) {
                continue;
            }
            let to = shard
                .replicas
                .iter()
                .copied()
                .filter(|&r| self.is_alive(r))
                .min_by_key(|r| (self.recent.unfit.contains(r), self.load.leaders[r], *r));
            if let Some(to) = to {
                self.push_transfer(shard, leader, to, Reason::Drain);
            }
        }
    }

    /// Splits the idle shards whose figures are over a split threshold, the
    /// furthest over first, while the move limit allows. A split puts no new
    /// replica anywhere (the new shard starts on its parent's replicas), so
    /// node loads are unchanged; balancing spreads the new shard later.
    fn split_oversized(&mut self) {
        let mut wanted: Vec<(f64, &'a ShardInfo, Slot, Reason)> = self
            .idle_shards()
            .filter(|s| !self.recent.recently_split.contains(&s.id) && self.has_live_majority(s))
            .filter_map(|s| {
                let load = self.recent.loads.get(&s.id)?;
                let (over, reason) = over_threshold(load, &self.limits)?;
                Some((over, s, split_midpoint(s)?, reason))
            })
            .collect();
        wanted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        for (_, shard, at, reason) in wanted {
            if !self.can_move() {
                return;
            }
            self.busy.insert(shard.id);
            self.moves_in_flight += 1;
            self.operations.push(Operation {
                shard: shard.id,
                epoch: shard.epoch,
                kind: OperationKind::Split { at },
                reason,
            });
        }
    }

    /// Alive nodes by ascending `count`, ties by id.
    fn alive_by(&self, count: &BTreeMap<NodeId, usize>) -> Vec<NodeId> {
        let mut alive = self.map.alive_nodes();
        alive.sort_by_key(|n| (count[n], *n));
        alive
    }

    /// Moves replicas from the fullest alive nodes to the emptiest until no
    /// two alive nodes differ by more than one, or the move limit is hit.
    fn balance_replicas(&mut self) {
        while self.can_move() {
            let Some((shard, from, to)) = self.best_balancing_move() else {
                return;
            };
            self.push_move(shard, from, to, Reason::Balance);
        }
    }

    /// The balancing move from the fullest possible source to the emptiest
    /// possible target: a stable shard whose replicas are all alive, on the
    /// source and not on the target, that keeps its zone spread. Prefers
    /// shards the source does not lead, which need no leader change.
    fn best_balancing_move(&self) -> Option<(&'a ShardInfo, NodeId, NodeId)> {
        let alive = self.alive_by(&self.load.replicas);
        for &from in alive.iter().rev() {
            for &to in &alive {
                if self.load.replicas[&from] < self.load.replicas[&to] + 2 {
                    break;
                }
                if self.recent.unfit.contains(&to) {
                    continue;
                }
                let candidates = self.idle_shards().filter(|s| {
                    s.replicas.contains(&from)
                        && !s.replicas.contains(&to)
                        && s.replicas.iter().all(|&r| self.is_alive(r))
                        && self.keeps_zone_spread(s, from, to)
                });
                let best = candidates.min_by_key(|s| (s.leader == Some(from), s.id));
                if let Some(shard) = best {
                    return Some((shard, from, to));
                }
            }
        }
        None
    }

    /// Whether swapping `from` for `to` leaves `shard` in at least as many
    /// zones as before.
    fn keeps_zone_spread(&self, shard: &ShardInfo, from: NodeId, to: NodeId) -> bool {
        let zones = |set: &mut dyn Iterator<Item = NodeId>| -> usize {
            set.map(|n| self.zone(n)).collect::<BTreeSet<_>>().len()
        };
        let before = zones(&mut shard.replicas.iter().copied());
        let after = zones(
            &mut shard
                .replicas
                .iter()
                .map(|&r| if r == from { to } else { r }),
        );
        after >= before
    }

    /// Transfers leaderships from the alive nodes leading the most shards to
    /// those leading the fewest, until no two differ by more than one.
    fn balance_leaders(&mut self) {
        while let Some(path) = self.best_transfer_path() {
            if self.transfers + path.len() > self.limits.max_leader_transfers {
                return;
            }
            for (shard, from, to) in path {
                self.push_transfer(shard, from, to, Reason::Balance);
            }
        }
    }

    /// A chain of transfers that takes one leadership off the most-leading
    /// node possible and gives one to a node leading at least two fewer:
    /// `a` hands a shard to `b`, `b` hands another to `c`, and so on, so
    /// only the ends change count. A direct transfer is the chain of one; a
    /// longer one is needed when no shard the busiest node leads has a
    /// replica on the idlest. Found breadth-first, so chains are shortest.
    fn best_transfer_path(&self) -> Option<Vec<(&'a ShardInfo, NodeId, NodeId)>> {
        let alive = self.alive_by(&self.load.leaders);
        for &source in alive.iter().rev() {
            let wanted = self.load.leaders[&source].checked_sub(2)?;
            let mut came_from: BTreeMap<NodeId, (&'a ShardInfo, NodeId)> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([source]);
            while let Some(node) = queue.pop_front() {
                let led = self
                    .idle_shards()
                    .filter(|s| s.leader == Some(node) && !self.recent.cooling.contains(&s.id));
                for shard in led {
                    for &next in &shard.replicas {
                        if next == source
                            || came_from.contains_key(&next)
                            || !self.is_alive(next)
                            || self.recent.unfit.contains(&next)
                        {
                            continue;
                        }
                        came_from.insert(next, (shard, node));
                        if self.load.leaders[&next] <= wanted {
                            return Some(unwind(&came_from, source, next));
                        }
                        queue.push_back(next);
                    }
                }
            }
        }
        None
    }
}

/// How far `load` is over the split thresholds of `limits` (the larger ratio
/// of figure to threshold) and the reason that ratio gives, when over either.
fn over_threshold(load: &ShardLoad, limits: &Limits) -> Option<(f64, Reason)> {
    let size = limits
        .split_keys
        .filter(|&max| load.keys > max)
        .map(|max| (load.keys as f64 / max as f64, Reason::Size));
    let rate = match (load.reads_per_sec, load.writes_per_sec) {
        (None, None) => None,
        (reads, writes) => Some(reads.unwrap_or(0.0) + writes.unwrap_or(0.0)),
    };
    let busy = limits
        .split_rate
        .zip(rate)
        .filter(|&(max, rate)| rate > max)
        .map(|(max, rate)| (rate / max, Reason::Load));
    match (size, busy) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The transfers from `source` to `end` recorded by a breadth-first search.
fn unwind<'a>(
    came_from: &BTreeMap<NodeId, (&'a ShardInfo, NodeId)>,
    source: NodeId,
    end: NodeId,
) -> Vec<(&'a ShardInfo, NodeId, NodeId)> {
    let mut path = Vec::new();
    let mut node = end;
    while node != source {
        let (shard, from) = came_from[&node];
        path.push((shard, from, node));
        node = from;
    }
    path.reverse();
    path
}

/// Where `shard`'s replicas are headed: the move's target, or the replicas.
fn eventual_replicas(shard: &ShardInfo) -> &[NodeId] {
    match &shard.state {
        ShardState::Moving { target } => target,
        ShardState::Stable | ShardState::Splitting { .. } => &shard.replicas,
    }
}
