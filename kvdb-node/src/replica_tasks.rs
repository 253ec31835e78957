//! The leadership watcher of every [`Replica`](crate::replica::Replica): telling the replica
//! manager about leadership changes and recording each leadership's read floor. (The other
//! background task, the expiry purger, lives in [`crate::expiry`].)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kvdb_core::raft::read_floor::ReadFloor;
use tokio::sync::Notify;

use crate::raft_types::ShardRaft;
use crate::read_queue::observed;

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
