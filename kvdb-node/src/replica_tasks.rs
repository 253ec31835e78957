//! Background tasks of every [`Replica`](crate::replica::Replica): the leadership watcher,
//! telling the replica manager about leadership changes and recording each leadership's read
//! floor; the sweeper of removed collections' rows; and the loop that runs the leader's
//! periodic work (it and the expiry purger of [`crate::expiry`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kvdb_core::raft::read_floor::ReadFloor;
use openraft::ServerState;
use tokio::sync::Notify;

use crate::clock;
use crate::command::{Command, Op};
use crate::kv_machine::leftovers::{Leftovers, SWEEP_ROWS};
use crate::raft_types::{RaftId, ShardNode, ShardRaft};
use crate::read_queue::observed;

/// The most sweep commands one round proposes (each of [`SWEEP_ROWS`] rows), so that a round
/// ends and the next starts from the current leadership.
const SWEEPS_PER_ROUND: usize = 256;

/// The rounds of a leader's periodic work: one every `interval` while this replica leads,
/// but none during a handover (its entries would refresh the followers' leases). A follower
/// sleeps until its replica leads rather than waking every interval: a node hosts hundreds of
/// replicas.
pub(crate) struct LeaderRounds {
    server: tokio::sync::watch::Receiver<openraft::metrics::RaftServerMetrics<RaftId, ShardNode>>,
    interval: Duration,
    handover: Arc<Mutex<Option<String>>>,
    tick: Option<tokio::time::Interval>,
}

impl LeaderRounds {
    pub(crate) fn new(
        raft: &ShardRaft,
        interval: Duration,
        handover: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            server: raft.server_metrics(),
            interval,
            handover,
            tick: None,
        }
    }

    /// Waits for the next round; `false` once the group has shut down.
    pub(crate) async fn next(&mut self) -> bool {
        loop {
            if self.server.borrow().state != ServerState::Leader {
                self.tick = None;
                let leads = self
                    .server
                    .wait_for(|m| m.state == ServerState::Leader)
                    .await
                    .is_ok();
                if !leads {
                    return false;
                }
            }
            let interval = self.interval;
            let tick = self.tick.get_or_insert_with(|| {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            tick.tick().await;
            let handing_over = self
                .handover
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
            if !handing_over && self.server.borrow().state == ServerState::Leader {
                return true;
            }
        }
    }
}

/// While this replica leads, removes the member rows of removed collections, one
/// [`Op::Sweep`] of [`SWEEP_ROWS`] rows at a time, each waiting for the one before (see
/// `kv_machine::leftovers`). Applying a sweep takes its collection out of `leftovers` once no
/// row is left, on every replica, so the next leader resumes where this one stopped.
pub(crate) async fn sweep_leftovers(
    raft: ShardRaft,
    leftovers: Arc<Leftovers>,
    interval: Duration,
    handover: Arc<Mutex<Option<String>>>,
) {
    let mut rounds = LeaderRounds::new(&raft, interval, handover);
    loop {
        // Asleep, leader or not, while nothing waits: almost always.
        leftovers.wait_for_some().await;
        if !rounds.next().await {
            return;
        }
        for _ in 0..SWEEPS_PER_ROUND {
            let Some((key, generation)) = leftovers.first() else {
                break;
            };
            let sweep = Command {
                now_ms: clock::now_ms(),
                op: Op::Sweep {
                    key,
                    generation,
                    limit: SWEEP_ROWS,
                },
            };
            if let Err(e) = raft.client_write(sweep).await {
                // Leadership lost, typically: the next leader's sweeper takes over.
                tracing::debug!(error = %e, "sweep not applied");
                break;
            }
        }
    }
}

/// Wakes `notify` whenever the group's leader or term changes, counts in `leader_changes` each
/// time a leader other than the last one known takes over, and records the read floor of each
/// leadership of this replica as soon as it starts (a later record only raises the floor).
/// Watches the server metrics, which change with the vote, state or membership only: the full
/// metrics change with every append and apply, and would wake this task once per replication
/// round.
pub(crate) async fn watch_leadership(
    raft: ShardRaft,
    notify: Arc<Notify>,
    floor: Arc<ReadFloor>,
    leader_changes: Arc<AtomicU64>,
) {
    let mut metrics = raft.server_metrics();
    let mut last = None;
    let mut last_leader = None;
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.vote.leader_id().term)
        };
        {
            let full = raft.metrics();
            let m = full.borrow();
            floor.observe(observed(m.id, &m));
        }
        if now.0.is_some() && now.0 != last_leader {
            last_leader = now.0;
            leader_changes.fetch_add(1, Ordering::Relaxed);
        }
        if last != Some(now) {
            last = Some(now);
            notify.notify_one();
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
