//! A leader whose majority answers slowly steps down, so that a node behind a slow link stops
//! costing its shards anything.
//!
//! openraft 0.9 keeps a leader for as long as a majority answers at all: a leader whose links
//! all carry 150 ms of delay stays leader, and every write it takes waits several delayed round
//! trips, well past a client's deadline, while its followers (which see each other at once)
//! could commit in a millisecond. So each leader watches how long ago a majority last
//! acknowledged it (`millis_since_quorum_ack` in its Raft metrics, about one round trip while
//! heartbeats flow). When that stays above [`SlowLeaderPolicy::threshold`] for
//! [`SlowLeaderPolicy::sustain`], it asks the coordinator to name its most caught-up follower
//! as leader, exactly as an operator's `SetShardLeader` does, and the transfer runs as for the
//! operator ([`crate::transfer`]): the leader stops heartbeats and points requests at the
//! follower, which campaigns once the old leader's lease has run out.
//!
//! openraft 0.9 bounds each AppendEntries by the heartbeat interval, so a leader whose round
//! trips exceed it never hears a reply, while its followers still receive its requests and
//! never time out: without this, the shard commits nothing until the link recovers.
//!
//! A node that stepped down does not do it again for [`SlowLeaderPolicy::cooldown`], so a
//! network that is slow everywhere (where every leader looks slow) costs each shard at most one
//! election per cooldown; such a network needs longer election timeouts anyway (see
//! docs/operations.md). The decision is [`judge`], a pure function over what the replica
//! manager samples each reconcile round.
//!
//! Out of scope: slowness that is not the network's or the leader's own (an overloaded machine
//! looks the same and is treated the same), and followers that are slow (a majority without
//! them still commits at once).

use std::time::Duration;

use tokio::time::Instant;

/// When a leader counts as slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowLeaderPolicy {
    /// A majority acknowledgement older than this is slow.
    pub threshold: Duration,
    /// How long it must stay slow before the leader steps down.
    pub sustain: Duration,
    /// How long after stepping down a replica does not do it again.
    pub cooldown: Duration,
}

/// What [`judge`] remembers per replica.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlowLeaderState {
    slow_since: Option<Instant>,
    stepped_down: Option<Instant>,
}

/// Whether a replica should step down now, given one sample: whether it `leads` and how long
/// ago a majority acknowledged it (`quorum_ack_age`, `None` if unknown).
pub fn judge(
    state: &mut SlowLeaderState,
    policy: &SlowLeaderPolicy,
    leads: bool,
    quorum_ack_age: Option<Duration>,
    now: Instant,
) -> bool {
    let slow = leads && quorum_ack_age.is_some_and(|age| age > policy.threshold);
    if !slow {
        state.slow_since = None;
        return false;
    }
    let since = *state.slow_since.get_or_insert(now);
    let cooled = state
        .stepped_down
        .is_none_or(|at| now.duration_since(at) >= policy.cooldown);
    if now.duration_since(since) < policy.sustain || !cooled {
        return false;
    }
    state.slow_since = None;
    state.stepped_down = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: SlowLeaderPolicy = SlowLeaderPolicy {
        threshold: Duration::from_millis(150),
        sustain: Duration::from_secs(2),
        cooldown: Duration::from_secs(30),
    };

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn a_leader_slow_for_the_whole_sustain_steps_down_once() {
        let mut state = SlowLeaderState::default();
        let t0 = Instant::now();
        assert!(!judge(&mut state, &POLICY, true, ms(400), t0));
        assert!(!judge(
            &mut state,
            &POLICY,
            true,
            ms(400),
            t0 + Duration::from_secs(1)
        ));
        assert!(judge(
            &mut state,
            &POLICY,
            true,
            ms(400),
            t0 + Duration::from_secs(2)
        ));
        // Slow again at once: the cooldown holds it.
        let later = t0 + Duration::from_secs(5);
        assert!(!judge(&mut state, &POLICY, true, ms(400), later));
        assert!(!judge(
            &mut state,
            &POLICY,
            true,
            ms(400),
            later + Duration::from_secs(3)
        ));
        // After the cooldown, a sustained slowness counts again.
        let cooled = t0 + Duration::from_secs(33);
        assert!(judge(&mut state, &POLICY, true, ms(400), cooled));
    }

    #[test]
    fn one_fast_sample_restarts_the_count() {
        let mut state = SlowLeaderState::default();
        let t0 = Instant::now();
        judge(&mut state, &POLICY, true, ms(400), t0);
        judge(
            &mut state,
            &POLICY,
            true,
            ms(5),
            t0 + Duration::from_secs(1),
        );
        assert!(!judge(
            &mut state,
            &POLICY,
            true,
            ms(400),
            t0 + Duration::from_secs(2)
        ));
        assert!(judge(
            &mut state,
            &POLICY,
            true,
            ms(400),
            t0 + Duration::from_secs(4)
        ));
    }

    #[test]
    fn followers_and_unknown_acknowledgements_never_step_down() {
        let mut state = SlowLeaderState::default();
        let t0 = Instant::now();
        for s in 0..5 {
            let now = t0 + Duration::from_secs(s);
            assert!(!judge(&mut state, &POLICY, false, ms(900), now));
            assert!(!judge(&mut state, &POLICY, true, None, now));
        }
    }
}
