//! The wall clock, read in exactly three places: when a leader proposes a
//! write (to fix `now_ms` and expiry instants in the command), when a
//! replica judges whether a value it serves has expired, and when a leader's
//! expiry purger (`purge_expired` in `expiry`) lists the keys due for
//! deletion and stamps the purge command with that instant.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
