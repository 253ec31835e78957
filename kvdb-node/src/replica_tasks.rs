//! The background tasks of every [`Replica`](crate::replica::Replica): telling the replica
//! manager about leadership changes, and purging expired keys while leading.

use std::sync::Arc;

use kvdb_core::raft::read_floor::ReadFloor;
use kvdb_core::storage::Storage;
use openraft::ServerState;
use tokio::sync::Notify;

use crate::clock;
use crate::command::{Command, Op};
use crate::config::NodeConfig;
use crate::raft_types::ShardRaft;
use crate::read_queue::observed;

/// Wakes `notify` whenever the group's leader or term changes, and records the read floor of
/// each leadership of this replica as soon as it starts (a later record only raises the floor).
/// Watches the server metrics, which change with the vote, state or membership only: the full
/// metrics change with every append and apply, and would wake this task once per replication
/// round.
pub(crate) async fn watch_leadership(
    raft: ShardRaft,
    notify: Arc<Notify>,
    floor: Option<Arc<ReadFloor>>,
) {
    let mut metrics = raft.server_metrics();
    let mut last = None;
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.vote.leader_id().term)
        };
        if let Some(floor) = &floor {
            let full = raft.metrics();
            let m = full.borrow();
            floor.observe(observed(m.id, &m));
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

/// While this node leads, proposes deletes of expired keys in small batches;
/// not during a handover (its entries would refresh the followers' leases).
pub(crate) async fn purge_expired(
    raft: ShardRaft,
    storage: Arc<dyn Storage>,
    config: Arc<NodeConfig>,
    handover: Arc<std::sync::Mutex<Option<String>>>,
) {
    let mut tick = tokio::time::interval(config.purge_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let handing_over = handover
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if handing_over || raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        loop {
            let now_ms = clock::now_ms();
            let limit = config.purge_batch;
            let storage = storage.clone();
            let due = tokio::task::spawn_blocking(move || storage.expired(now_ms, limit)).await;
            let keys = match due {
                Ok(Ok(keys)) if !keys.is_empty() => keys,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "listing expired keys failed");
                    break;
                }
                Err(_) => return,
            };
            let full = keys.len() == limit;
            let purge = Command {
                now_ms,
                op: Op::Purge { keys },
            };
            if raft.client_write(purge).await.is_err() || !full {
                break;
            }
        }
    }
}
