//! [`DiskGuard`]: a node refuses client writes while the filesystem of its data directory
//! has less than a reserve free.
//!
//! A disk that fills up breaks more than writes: a Raft log that cannot append cannot record
//! votes or truncations either, and redb refuses every later transaction after one failed
//! write until the database is reopened. So the node stops taking client writes while the
//! reserve still leaves room for what Raft itself must write, answers them at once with
//! `RESOURCE_EXHAUSTED` (nothing changed, the client is told why), keeps serving reads, and
//! takes writes again as soon as space is freed: no restart, nothing acknowledged lost.
//!
//! The free space is sampled every [`CHECK_INTERVAL`] (one `statvfs`), so the reserve must
//! cover what the node can write in that time; the decision itself is
//! [`refuses_writes`], a pure function.
//!
//! Out of scope: a replica whose disk alone fills while its leader's has room (the leader
//! checks only its own), and shard moves or splits, which are not refused.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvdb_core::error::KvError;

use crate::shutdown::Shutdown;

/// Default reserve: writes are refused below this much free space.
pub const DEFAULT_MIN_FREE_DISK: u64 = 256 << 20;

/// How often the free space is sampled.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Whether a node with `available` bytes free and a `reserve` refuses writes.
pub fn refuses_writes(available: u64, reserve: u64) -> bool {
    available < reserve
}

/// The free space of one data directory, as last sampled, against its reserve.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    available: AtomicU64,
}

impl DiskGuard {
    /// A guard of `dir` keeping `reserve` bytes free (0: never refuses); samples once now.
    pub fn new(dir: impl Into<PathBuf>, reserve: u64) -> io::Result<Arc<DiskGuard>> {
        let guard = DiskGuard {
            dir: dir.into(),
            reserve,
            available: AtomicU64::new(u64::MAX),
        };
        guard.sample()?;
        Ok(Arc::new(guard))
    }

    /// Samples the free space; logs when writes stop or resume.
    pub fn sample(&self) -> io::Result<u64> {
        let stats = rustix::fs::statvfs(&self.dir)?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        let before = self.available.swap(available, Ordering::Relaxed);
        let (was, is) = (
            refuses_writes(before, self.reserve),
            refuses_writes(available, self.reserve),
        );
        if is && !was {
            tracing::error!(
                dir = %self.dir.display(),
                free_mib = available >> 20,
                reserve_mib = self.reserve >> 20,
                "the data directory's disk is nearly full: refusing writes until space is freed \
                 (reads go on); free space or raise the disk"
            );
        } else if was && !is && before != u64::MAX {
            tracing::info!(
                free_mib = available >> 20,
                "disk space is back: taking writes again"
            );
        }
        Ok(available)
    }

    /// The free bytes last sampled, and whether writes are refused for want of them.
    pub fn state(&self) -> (u64, bool) {
        let available = self.available.load(Ordering::Relaxed);
        (available, refuses_writes(available, self.reserve))
    }

    /// `RESOURCE_EXHAUSTED` while the free space is under the reserve.
    pub fn admit_write(&self) -> Result<(), KvError> {
        let available = self.available.load(Ordering::Relaxed);
        if !refuses_writes(available, self.reserve) {
            return Ok(());
        }
        Err(KvError::ResourceExhausted(format!(
            "the node's disk has {} MiB free, under its {} MiB reserve (--min-free-disk-mib); \
             writes resume once space is freed",
            available >> 20,
            self.reserve >> 20
        )))
    }

    /// Samples every [`CHECK_INTERVAL`] until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: Shutdown) {
        loop {
            tokio::select! {
                _ = stop.recv() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
            if let Err(e) = self.sample() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read free disk space");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_refused_only_under_the_reserve() {
        assert!(refuses_writes(10, 11));
        assert!(!refuses_writes(11, 11));
        assert!(!refuses_writes(0, 0), "a zero reserve never refuses");
    }

    #[test]
    fn a_guard_reads_its_directorys_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let open = DiskGuard::new(dir.path(), 0).unwrap();
        assert!(open.admit_write().is_ok());
        let available = open.sample().unwrap();
        assert!(available > 0);
        let full = DiskGuard::new(dir.path(), u64::MAX).unwrap();
        let refused = full.admit_write().unwrap_err();
        assert!(
            matches!(refused, KvError::ResourceExhausted(_)),
            "{refused:?}"
        );
        assert!(DiskGuard::new(dir.path().join("absent"), 1).is_err());
    }
}
