//! Bugs planted on purpose, so the fault-injection suite can prove it fails
//! when the node breaks its promises. Compiled only with the `planted-bugs`
//! cargo feature (enabled by KvDB's own chaos tests) and, even then, active
//! only when [`NodeConfig::planted_bug`](crate::config::NodeConfig) names one.
//!
//! Each bug is one small, marked branch (in `kv_service`, and in `replica`
//! for the read floor); this module holds the switch and the one branch too
//! long to inline.
//!
//! Out of scope: anything a production build could reach.

use kvdb_core::Version;

use crate::command::{Command, CommandResult, Op};
use crate::replica::Replica;

/// A deliberate violation of a node guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Answer a write as applied as soon as it is proposed, before a
    /// majority has committed it.
    AckBeforeCommit,
    /// Accept a request whatever shard epoch it was routed with.
    SkipEpochCheck,
    /// Serve STRONG reads from this replica's applied state, on a follower
    /// or a deposed leader, without a read-index round.
    LocalStrongReads,
    /// Trust the read lease for as long as this replica believes it leads,
    /// however old the last acknowledgement from a majority is.
    EndlessLease,
    /// Split off a new shard without the keys of its first slot: the copy starts one slot
    /// after the split point, while the parent gives the slot up all the same.
    SplitSkipsBoundary,
}

impl PlantedBug {
    /// The environment variable that switches a bug on in a node process (the chaos suite's
    /// process schedules), read only in builds with the `planted-bugs` feature.
    pub const ENV: &'static str = "KVDB_PLANTED_BUG";

    /// The bug named by [`Self::ENV`], if any (its variant name, as `Debug` prints it).
    pub fn from_env() -> Option<PlantedBug> {
        let name = std::env::var(Self::ENV).ok()?;
        let all = [
            PlantedBug::AckBeforeCommit,
            PlantedBug::SkipEpochCheck,
            PlantedBug::LocalStrongReads,
            PlantedBug::EndlessLease,
            PlantedBug::SplitSkipsBoundary,
        ];
        all.into_iter().find(|bug| format!("{bug:?}") == name)
    }
}

/// PLANTED BUG (AckBeforeCommit): proposes `command` in the background and
/// answers at once with the log index the entry would get if it committed.
pub fn ack_before_commit(replica: &Replica, command: Command) -> CommandResult {
    let raft = replica.raft().clone();
    let version = Version(raft.metrics().borrow().last_log_index.unwrap_or(0) + 1);
    let is_put = matches!(command.op, Op::Put(_));
    tokio::spawn(async move {
        let _ = raft.client_write(command).await;
    });
    if is_put {
        CommandResult::Put {
            applied: true,
            version,
        }
    } else {
        CommandResult::Delete {
            applied: true,
            existed: true,
            version,
        }
    }
}
