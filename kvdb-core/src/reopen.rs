//! Reopening a database that a stopped instance in this process may still hold.
//!
//! A node or coordinator stopped in process (tests, `kvdb dev`, an in-process cluster) can
//! leave a task that still holds its databases for a moment after it returns: a Raft group's
//! replication tasks and state-machine worker end after the group's shutdown does. redb
//! refuses a second open of a file, so a restart in the same process waits for the first
//! instance to let go instead of failing.

use std::time::{Duration, Instant};

/// How long [`when_free`] waits for a previous instance to close.
pub const REOPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `open` until it succeeds, fails for another reason than `in_use`, or
/// [`REOPEN_TIMEOUT`] has passed. Blocking.
pub fn when_free<T, E>(
    mut open: impl FnMut() -> Result<T, E>,
    in_use: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + REOPEN_TIMEOUT;
    loop {
        match open() {
            Err(e) if in_use(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Whether redb refused to open a database because this process holds it already.
pub fn redb_in_use(e: &redb::DatabaseError) -> bool {
    matches!(e, redb::DatabaseError::DatabaseAlreadyOpen)
}
