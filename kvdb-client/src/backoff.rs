//! Backoff as a value: exponential with full jitter, with named presets so
//! tests can pass [`Backoff::none`].

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: the n-th retry waits a random time in
/// `[0, min(max, base * 2^n)]` (full jitter), so clients that failed together
/// do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl Backoff {
    /// The default for KV requests: 5 ms doubling to 500 ms, jittered.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(500),
        jitter: true,
    };

    /// No waiting at all (tests).
    pub const fn none() -> Backoff {
        Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
            jitter: false,
        }
    }

    /// Exponential without jitter, for deterministic tests.
    pub const fn no_jitter(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            jitter: false,
        }
    }

    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_max() {
        let b = Backoff::no_jitter(Duration::from_millis(10), Duration::from_millis(100));
        let delays: Vec<u64> = (0..6).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn jitter_stays_within_ceiling() {
        let b = Backoff::DEFAULT;
        for attempt in 0..30 {
            let ceiling = b.base.saturating_mul(1 << attempt.min(20)).min(b.max);
            assert!(b.delay(attempt) <= ceiling);
        }
    }

    #[test]
    fn none_never_waits() {
        assert_eq!(Backoff::none().delay(7), Duration::ZERO);
    }
}
