//! Tuning for the shard-map cache, with named defaults and a validity check.

use std::time::Duration;

/// Default for [`CacheConfig::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default for [`CacheConfig::min_refresh_interval`].
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// Default for [`CacheConfig::watch_retry_min`].
pub const DEFAULT_WATCH_RETRY_MIN: Duration = Duration::from_millis(100);
/// Default for [`CacheConfig::watch_retry_max`].
pub const DEFAULT_WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

/// How the cache refreshes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// How often to call `fetch` while the watch stream is down.
    pub poll_interval: Duration,
    /// At most one [`Refresh::Throttled`](super::Refresh::Throttled) fetch
    /// starts per interval; zero disables throttling.
    pub min_refresh_interval: Duration,
    /// First delay before reopening a failed watch; doubles per failure.
    pub watch_retry_min: Duration,
    /// Cap on the delay before reopening a failed watch.
    pub watch_retry_max: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            watch_retry_min: DEFAULT_WATCH_RETRY_MIN,
            watch_retry_max: DEFAULT_WATCH_RETRY_MAX,
        }
    }
}

/// Why a [`CacheConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A zero poll interval would spin on the source.
    #[error("poll_interval must be greater than zero")]
    ZeroPollInterval,
    /// A zero retry delay would spin on a failing watch.
    #[error("watch_retry_min must be greater than zero")]
    ZeroWatchRetry,
    /// The retry range is inverted.
    #[error("watch_retry_min ({min:?}) is greater than watch_retry_max ({max:?})")]
    WatchRetryRange {
        /// The configured `watch_retry_min`.
        min: Duration,
        /// The configured `watch_retry_max`, smaller than `min`.
        max: Duration,
    },
}

impl CacheConfig {
    /// Checks that the values can drive the cache without spinning.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval.is_zero() {
            return Err(ConfigError::ZeroPollInterval);
        }
        if self.watch_retry_min.is_zero() {
            return Err(ConfigError::ZeroWatchRetry);
        }
        if self.watch_retry_min > self.watch_retry_max {
            return Err(ConfigError::WatchRetryRange {
                min: self.watch_retry_min,
                max: self.watch_retry_max,
            });
        }
        Ok(())
    }
}
