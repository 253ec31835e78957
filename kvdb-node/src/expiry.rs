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

use crate::clock;
use crate::command::{Command, Op};
use crate::config::NodeConfig;
use crate::raft_types::ShardRaft;
use crate::replica_tasks::LeaderRounds;

/// The absolute expiry of a write proposed at `now_ms` with `ttl_ms` (0: never expires).
pub fn expire_at(now_ms: u64, ttl_ms: u64) -> Option<u64> {
    (ttl_ms > 0).then(|| now_ms.saturating_add(ttl_ms))
}

/// Whether a purge decided for `version` may delete `current` at `now_ms`: the key still
/// holds that version and it has expired.
pub fn is_purgeable(current: Option<&StoredValue>, version: Version, now_ms: u64) -> bool {
    current.is_some_and(|v| v.version == version && !v.is_live(now_ms))
}

/// While this node leads, proposes deletes of expired keys in small batches, every purge
/// interval (see `replica_tasks::LeaderRounds`). The listing is a short read of
/// the expiry index, so it runs on this task rather than costing a hand-off to a blocking
/// thread per shard per interval.
pub(crate) async fn purge_expired(
    raft: ShardRaft,
    storage: Arc<dyn Storage>,
    config: Arc<NodeConfig>,
    handover: Arc<std::sync::Mutex<Option<String>>>,
) {
    let mut rounds = LeaderRounds::new(&raft, config.purge_interval, handover);
    while rounds.next().await {
        purge_due(&raft, storage.as_ref(), &config).await;
    }
}

/// Proposes deletes of the keys due now, a batch at a time, until none is left or a proposal
/// fails (leadership lost: the next leader's purger takes over).
async fn purge_due(raft: &ShardRaft, storage: &dyn Storage, config: &NodeConfig) {
    loop {
        let now_ms = clock::now_ms();
        let limit = config.purge_batch;
        let keys = match storage.expired(now_ms, limit) {
            Ok(keys) if !keys.is_empty() => keys,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listing expired keys failed");
                return;
            }
        };
        let full = keys.len() == limit;
        let purge = Command {
            now_ms,
            op: Op::Purge { keys },
        };
        if raft.client_write(purge).await.is_err() || !full {
            return;
        }
    }
}
