//! [`LeaseClock`]: whether a leader may answer a linearizable read from its own state, without
//! a round of heartbeats.
//!
//! An openraft follower that accepts an AppendEntries from a leader with a committed vote
//! refuses every vote request for `leader_lease` (the group's `election_timeout_max`) from the
//! moment it received it, and a restarted follower does the same from its start. So once a
//! majority of voters has accepted AppendEntries that this leader *sent* at `t`, no other
//! leader can be elected before `t + election_timeout_max`: until then this leader's applied
//! state holds every acknowledged write, and a read served from it is linearizable.
//!
//! The clock learns from both sides of the group: the network records, per follower, the send
//! time of the latest AppendEntries it accepted (any reply but `HigherVote`) and the vote it
//! carried; the log store reports every vote it saves. openraft saves a vote before it answers
//! the request that changed it, so a leader that grants a vote to a candidate stops trusting
//! its old acknowledgements before the candidate can win.
//!
//! Out of scope: joint memberships (the caller falls back to a read-index round), and the
//! applied-state check (the caller's: a leader must have applied its leadership's
//! [`read_floor`](super::read_floor) first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::Vote;

/// A group's record of who acknowledged its leader, and when. Share one per group between its
/// network factory and its log store.
#[derive(Debug, Default)]
pub struct LeaseClock {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The vote this replica saved last.
    vote: Option<Vote<u64>>,
    /// Per follower: the send time of the latest AppendEntries it accepted under `vote`.
    acks: HashMap<u64, Instant>,
}

impl LeaseClock {
    /// Records that this replica saved `vote`. A different vote discards every
    /// acknowledgement, which belonged to the old one.
    pub fn vote_saved(&self, vote: Vote<u64>) {
        let mut state = self.lock();
        if state.vote != Some(vote) {
            state.vote = Some(vote);
            state.acks.clear();
        }
    }

    /// Records that `follower` accepted an AppendEntries sent at `sent` under `vote`. Ignored
    /// unless `vote` is the vote this replica holds.
    pub fn accepted(&self, follower: u64, vote: Vote<u64>, sent: Instant) {
        let mut state = self.lock();
        if state.vote != Some(vote) {
            return;
        }
        let latest = state.acks.entry(follower).or_insert(sent);
        *latest = (*latest).max(sent);
    }

    /// The vote under which `me` holds a lease at `now`: its saved vote is its own committed
    /// vote, and a majority of `voters` (counting `me` when it is one) accepted AppendEntries
    /// sent under that vote less than `window` before `now`. `window` must stay below the
    /// followers' lease (`election_timeout_max`) by more than the clocks can drift apart.
    pub fn lease(
        &self,
        me: u64,
        voters: impl IntoIterator<Item = u64>,
        window: Duration,
        now: Instant,
    ) -> Option<Vote<u64>> {
        let state = self.lock();
        let vote = state.vote?;
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(me) {
            return None;
        }
        let (mut total, mut fresh) = (0usize, 0usize);
        for voter in voters {
            total += 1;
            let acked = voter == me
                || state
                    .acks
                    .get(&voter)
                    .is_some_and(|sent| now.saturating_duration_since(*sent) < window);
            fresh += usize::from(acked);
        }
        (total > 0 && fresh > total / 2).then_some(vote)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(300);

    fn leader_vote(term: u64, node: u64) -> Vote<u64> {
        Vote::new_committed(term, node)
    }

    #[test]
    fn a_leader_without_acknowledgements_holds_no_lease() {
        let clock = LeaseClock::default();
        clock.vote_saved(leader_vote(2, 1));
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, Instant::now()), None);
    }

    #[test]
    fn one_follower_of_two_makes_a_majority_until_the_window_closes() {
        let clock = LeaseClock::default();
        let vote = leader_vote(2, 1);
        clock.vote_saved(vote);
        let sent = Instant::now();
        clock.accepted(3, vote, sent);
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, sent), Some(vote));
        let later = sent + WINDOW;
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, later), None);
    }

    #[test]
    fn five_voters_need_two_followers() {
        let clock = LeaseClock::default();
        let vote = leader_vote(4, 1);
        clock.vote_saved(vote);
        let now = Instant::now();
        clock.accepted(2, vote, now);
        assert_eq!(clock.lease(1, 1..=5, WINDOW, now), None);
        clock.accepted(5, vote, now);
        assert_eq!(clock.lease(1, 1..=5, WINDOW, now), Some(vote));
    }

    #[test]
    fn a_candidate_or_uncommitted_vote_holds_no_lease() {
        let clock = LeaseClock::default();
        let candidate = Vote::new(3, 1);
        clock.vote_saved(candidate);
        clock.accepted(2, candidate, Instant::now());
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, Instant::now()), None);
    }

    #[test]
    fn saving_another_vote_forgets_the_old_acknowledgements() {
        let clock = LeaseClock::default();
        let mine = leader_vote(2, 1);
        clock.vote_saved(mine);
        let now = Instant::now();
        clock.accepted(2, mine, now);
        // This replica grants its vote to node 3's candidacy.
        clock.vote_saved(Vote::new(3, 3));
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, now), None);
        // A late reply to a request sent under the old vote changes nothing.
        clock.accepted(2, mine, now);
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, now), None);
    }

    #[test]
    fn a_follower_holds_no_lease_for_its_leader() {
        let clock = LeaseClock::default();
        let leaders = leader_vote(2, 1);
        clock.vote_saved(leaders);
        assert_eq!(clock.lease(2, [1, 2, 3], WINDOW, Instant::now()), None);
    }

    #[test]
    fn acknowledgements_from_learners_do_not_count() {
        let clock = LeaseClock::default();
        let vote = leader_vote(2, 1);
        clock.vote_saved(vote);
        let now = Instant::now();
        clock.accepted(9, vote, now);
        assert_eq!(clock.lease(1, [1, 2, 3], WINDOW, now), None);
    }
}
