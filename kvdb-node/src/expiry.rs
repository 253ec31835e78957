//! Expiry (TTL), in one place. A value's expiry is an absolute instant fixed by the leader
//! when it proposes the write ([`expire_at`], from the request's TTL and the command's clock,
//! see [`crate::proposal`]), so every replica agrees on it and apply never reads a clock.
//! From that instant on the value is invisible: conditional writes treat it as absent as of
//! the command's clock, and reads as of the serving replica's wall clock
//! (`StoredValue::is_live` in core's storage). The space is given back by the shard leader's
//! purger (the crate-internal `purge_expired`), which proposes `Purge` commands for keys
//! whose expiry has passed; each key is deleted on apply only if it still holds the version
//! the leader saw expire, so a key rewritten in between survives ([`is_purgeable`]).
//!
//! Out of scope: giving the space back sooner than one purge interval after expiry, and
//! per-key expiry notifications.

use std::sync::Arc;

use kvdb_core::Version;
use kvdb_core::storage::{Storage, StoredValue};
use openraft::ServerState;

use crate::clock;
use crate::command::{Command, Op};
use crate::config::NodeConfig;
use crate::raft_types::ShardRaft;

/// The absolute expiry of a write proposed at `now_ms` with `ttl_ms` (0: never expires).
pub fn expire_at(now_ms: u64, ttl_ms: u64) -> Option<u64> {
    (ttl_ms > 0).then(|| now_ms.saturating_add(ttl_ms))
}

/// Whether a purge decided for `version` may delete `current` at `now_ms`: the key still
/// holds that version and it has expired.
pub fn is_purgeable(current: Option<&StoredValue>, version: Version, now_ms: u64) -> bool {
    current.is_some_and(|v| v.version == version && !v.is_live(now_ms))
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
                // The runtime is shutting down.
                Err(e) if e.is_cancelled() => return,
                Err(e) => {
                    // A panic while listing: say so, and try again next round rather than
                    // leaving this leader without a purger.
                    tracing::error!(error = %e, "listing expired keys panicked");
                    break;
                }
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
