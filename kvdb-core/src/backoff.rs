//! Backoff as a value: how long the n-th retry waits. Every retry loop in KvDB (client
//! requests, coordinator calls, shard-map watches) draws its pauses from one [`Backoff`], so a
//! fleet that failed together does not retry together, and tests can pass [`Backoff::none`].

use std::time::Duration;

use rand::Rng;

/// How much of each pause is random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the ceiling: deterministic, for tests.
    None,
    /// Anywhere in `[0, ceiling]`: spreads retries the most; for many clients hitting one
    /// server.
    Full,
    /// Anywhere in `[ceiling / 2, ceiling]`: spread, yet never a busy loop; for a few
    /// long-lived loops such as reconnecting to the coordinator.
    Half,
}

/// Exponential backoff: retry number `n` (0-based) waits up to `min(max, base * 2^n)`,
/// spread by [`Jitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first pause.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
    /// How each pause is spread below its ceiling.
    pub jitter: Jitter,
}

impl Backoff {
    /// The default for KV requests: 5 ms doubling to 500 ms, full jitter.
    pub const DEFAULT: Backoff = Backoff::new(
        Duration::from_millis(5),
        Duration::from_millis(500),
        Jitter::Full,
    );

    /// A backoff from `base` doubling up to `max`.
    pub const fn new(base: Duration, max: Duration, jitter: Jitter) -> Backoff {
        Backoff { base, max, jitter }
    }

    /// No waiting at all (tests).
    pub const fn none() -> Backoff {
        Backoff::new(Duration::ZERO, Duration::ZERO, Jitter::None)
    }

    /// Exponential without jitter, for deterministic tests.
    pub const fn no_jitter(base: Duration, max: Duration) -> Backoff {
        Backoff::new(base, max, Jitter::None)
    }

    /// The ceiling of retry number `attempt`'s pause.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
    }

    /// The pause before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = match self.jitter {
            Jitter::None => return ceiling,
            Jitter::Full => Duration::ZERO,
            Jitter::Half => ceiling / 2,
        };
        let spread = (ceiling - floor).as_nanos() as u64;
        if spread == 0 {
            return ceiling;
        }
        floor + Duration::from_nanos(rand::rng().random_range(0..=spread))
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
    fn full_jitter_stays_within_the_ceiling() {
        let b = Backoff::DEFAULT;
        for attempt in 0..30 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }

    #[test]
    fn half_jitter_stays_within_half_and_full() {
        let b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
            Jitter::Half,
        );
        for attempt in 0..30 {
            let (d, c) = (b.delay(attempt), b.ceiling(attempt));
            assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
        }
    }

    #[test]
    fn jitter_spreads_pauses() {
        let b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Jitter::Half,
        );
        let pauses: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(0)).collect();
        assert!(pauses.len() > 1, "20 draws gave one value: {pauses:?}");
    }

    #[test]
    fn none_never_waits() {
        assert_eq!(Backoff::none().delay(7), Duration::ZERO);
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let b = Backoff::new(Duration::from_secs(1), Duration::MAX, Jitter::Full);
        assert!(b.delay(u32::MAX) <= Duration::from_secs(1 << 20));
    }
}
