//! Node failure detection.
//!
//! Heartbeats are not Raft commands: only the coordinator leader keeps the
//! time it last heard from each node, in memory. When a node misses its
//! deadlines the leader proposes `SetNodeStatus` (alive -> suspect -> dead);
//! a heartbeat from a suspect or dead node proposes alive again. Draining
//! nodes are the operator's business and are never changed here.
//!
//! A new leader knows nothing of the old leader's clocks, so it starts every
//! node's clock fresh from the moment it took over: a node is only declared
//! suspect after this leader itself has waited `suspect_after` for it.
//!
//! [`LivenessTracker`] is the pure part (time is passed in); `run` is the
//! leader-side loop that turns its verdicts into proposals.

use std::collections::HashMap;
use std::time::Duration;

use kvdb_core::{NodeId, NodeStatus, ShardMap};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::coordinator::Coordinator;

/// Last-heard times of the nodes, as seen by the current leader.
#[derive(Debug, Clone)]
pub struct LivenessTracker {
    suspect_after: Duration,
    dead_after: Duration,
    /// When this member's clocks started (it became leader).
    since: Instant,
    /// The Raft term of the leadership the clocks belong to.
    term: Option<u64>,
    last_seen: HashMap<NodeId, Instant>,
}

impl LivenessTracker {
    /// A tracker whose clocks all start at `now`.
    pub fn new(suspect_after: Duration, dead_after: Duration, now: Instant) -> Self {
        Self {
            suspect_after,
            dead_after,
            since: now,
            term: None,
            last_seen: HashMap::new(),
        }
    }

    /// Notes that this member leads in `term`; the first call for a new term
    /// starts every clock fresh at `now`.
    pub fn lead(&mut self, term: u64, now: Instant) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.reset(now);
        }
    }

    /// Forgets every heartbeat and starts all clocks at `now` (a new leadership).
    pub fn reset(&mut self, now: Instant) {
        self.since = now;
        self.last_seen.clear();
    }

    /// Records a heartbeat of `node` at `now`.
    pub fn record(&mut self, node: NodeId, now: Instant) {
        self.last_seen.insert(node, now);
    }

    /// The status changes due at `now` for the nodes of `map`: alive nodes
    /// silent for `suspect_after` become suspect, alive or suspect nodes
    /// silent for `dead_after` become dead.
    pub fn due(&self, map: &ShardMap, now: Instant) -> Vec<(NodeId, NodeStatus)> {
        map.nodes
            .values()
            .filter_map(|node| {
                let heard = self.last_seen.get(&node.id).copied().unwrap_or(self.since);
                let silent = now.saturating_duration_since(heard);
                let next = match node.status {
                    NodeStatus::Alive | NodeStatus::Suspect if silent >= self.dead_after => {
                        NodeStatus::Dead
                    }
                    NodeStatus::Alive if silent >= self.suspect_after => NodeStatus::Suspect,
                    _ => return None,
                };
                Some((node.id, next))
            })
            .collect()
    }
}

/// The status a heartbeat should move a node to, if any: suspect and dead
/// nodes come back alive; alive and draining nodes stay as they are.
pub fn after_heartbeat(status: NodeStatus) -> Option<NodeStatus> {
    match status {
        NodeStatus::Suspect | NodeStatus::Dead => Some(NodeStatus::Alive),
        NodeStatus::Alive | NodeStatus::Draining => None,
    }
}

/// The leader-side loop: every `interval`, while this member leads, proposes
/// the status changes that are due. Ends when `stop` turns true.
pub(crate) async fn run(
    coordinator: Coordinator,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if !coordinator.is_leader() {
            continue;
        }
        let due = coordinator.liveness_due(Instant::now());
        for (node, status) in due {
            tracing::info!(%node, ?status, "node missed its heartbeat deadline");
            if let Err(e) = coordinator.propose_status(node, status).await {
                tracing::warn!(%node, ?status, error = %e, "could not change node status");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kvdb_core::NodeInfo;

    use super::*;

    const SUSPECT: Duration = Duration::from_secs(2);
    const DEAD: Duration = Duration::from_secs(6);

    fn map(statuses: &[NodeStatus]) -> ShardMap {
        let mut map = ShardMap::default();
        for (i, status) in statuses.iter().enumerate() {
            let id = NodeId(i as u64 + 1);
            let node = NodeInfo {
                id,
                name: format!("node-{id}"),
                address: format!("h:{}", 7000 + i),
                zone: String::new(),
                status: *status,
                resp_address: String::new(),
            };
            map.nodes.insert(id, node);
        }
        map
    }

    #[test]
    fn silent_nodes_go_suspect_then_dead() {
        let t0 = Instant::now();
        let mut tracker = LivenessTracker::new(SUSPECT, DEAD, t0);
        let alive = map(&[NodeStatus::Alive, NodeStatus::Alive]);
        tracker.record(NodeId(2), t0 + Duration::from_secs(1));
        assert!(
            tracker
                .due(&alive, t0 + Duration::from_millis(1999))
                .is_empty()
        );
        assert_eq!(
            tracker.due(&alive, t0 + SUSPECT),
            vec![(NodeId(1), NodeStatus::Suspect)]
        );
        let suspect = map(&[NodeStatus::Suspect, NodeStatus::Alive]);
        assert_eq!(
            tracker.due(&suspect, t0 + DEAD),
            vec![
                (NodeId(1), NodeStatus::Dead),
                (NodeId(2), NodeStatus::Suspect)
            ]
        );
    }

    #[test]
    fn dead_and_draining_nodes_are_left_alone() {
        let t0 = Instant::now();
        let tracker = LivenessTracker::new(SUSPECT, DEAD, t0);
        let quiet = map(&[NodeStatus::Dead, NodeStatus::Draining]);
        assert!(tracker.due(&quiet, t0 + DEAD * 10).is_empty());
        assert_eq!(after_heartbeat(NodeStatus::Draining), None);
        assert_eq!(after_heartbeat(NodeStatus::Alive), None);
        assert_eq!(after_heartbeat(NodeStatus::Dead), Some(NodeStatus::Alive));
        assert_eq!(
            after_heartbeat(NodeStatus::Suspect),
            Some(NodeStatus::Alive)
        );
    }

    #[test]
    fn a_new_leadership_starts_every_clock_fresh() {
        let t0 = Instant::now();
        let mut tracker = LivenessTracker::new(SUSPECT, DEAD, t0);
        let alive = map(&[NodeStatus::Alive]);
        tracker.lead(3, t0);
        tracker.record(NodeId(1), t0);
        let t1 = t0 + Duration::from_secs(60);
        tracker.lead(3, t1);
        assert_eq!(tracker.due(&alive, t1).len(), 1, "same term: clocks kept");
        tracker.lead(4, t1);
        assert!(tracker.due(&alive, t1 + Duration::from_secs(1)).is_empty());
        assert_eq!(tracker.due(&alive, t1 + SUSPECT).len(), 1);
    }
}
