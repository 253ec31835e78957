//! [`ReadFloor`]: the log index a leader must have applied before it answers any linearizable
//! read of its current leadership.
//!
//! Raft's read-index rule serves a read at the leader's commit index once a heartbeat round
//! confirms the leadership. That index is only complete once the leader has committed an entry
//! of its *current leadership*: before that it may lag entries that an earlier leadership
//! committed and acknowledged. openraft covers the elected case with the no-op it appends on
//! election, but a replica that restarts holding its own committed vote resumes leadership in
//! the same term with no new entry (`Engine::startup`), and its read index is then
//! `max(first entry of the term, committed index saved before the crash)`. The saved committed
//! index may be older than the last acknowledged write (it is saved lazily, see the log store),
//! so a read served there can miss a write that every replica holds. KvDB's log store reads
//! votes back uncommitted, so that path is closed (`GroupLogStore::read_vote` says why); the
//! floor guards any other way a leadership could begin without an entry of its own.
//!
//! The floor closes that gap whatever the path to leadership: the first time a replica is seen
//! leading under a vote, its last log index is recorded. Every entry committed before that
//! leadership began is in its log by then (Raft's leader completeness, and a leader never
//! truncates its own log), so once the applied index reaches the floor the state holds every
//! write acknowledged before the leadership, and writes acknowledged during it were applied
//! here before they were acknowledged. Recording later than the leadership's start only raises
//! the floor to entries the leader appended itself, which its next commit covers.
//!
//! The decision is [`observe`], a pure function; [`ReadFloor`] keeps its last answer.
//!
//! Out of scope: confirming the leadership (a heartbeat round or a lease does that) and waiting
//! for the applied index (the caller watches its metrics).

use std::sync::Mutex;

use openraft::{LeaderId, Vote};

/// A leadership and the index its reads must have applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    /// The leadership the floor belongs to.
    pub leader: LeaderId<u64>,
    /// The last log index this replica held when it was first seen leading (`None`: no entry).
    pub index: Option<u64>,
}

/// What one look at a replica's Raft metrics shows.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The replica's node id.
    pub me: u64,
    /// Its vote.
    pub vote: &'a Vote<u64>,
    /// Whether its server state is `Leader`.
    pub leading: bool,
    /// Its last log index, if it has any entry.
    pub last_log_index: Option<u64>,
}

/// The floor after `observed`, given the one recorded so far: kept while the leadership is
/// the same, a new one when this replica is seen leading under another vote, none while it
/// does not lead.
pub fn observe(recorded: Option<Floor>, observed: Observed<'_>) -> Option<Floor> {
    let vote = observed.vote;
    let own_leadership = observed.leading
        && vote.is_committed()
        && vote.leader_id().voted_for() == Some(observed.me);
    if !own_leadership {
        return None;
    }
    match recorded {
        Some(floor) if floor.leader == *vote.leader_id() => Some(floor),
        _ => Some(Floor {
            leader: *vote.leader_id(),
            index: observed.last_log_index,
        }),
    }
}

/// One replica's floor, shared by its read paths and its leadership watcher.
#[derive(Debug, Default)]
pub struct ReadFloor {
    recorded: Mutex<Option<Floor>>,
}

impl ReadFloor {
    /// Records what `observed` shows and returns the floor of the leadership it shows, if this
    /// replica leads.
    pub fn observe(&self, observed: Observed<'_>) -> Option<Floor> {
        let mut recorded = self
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = observe(*recorded, observed);
        // Forget a floor only for another leadership: a replica that briefly looks like a
        // follower keeps no floor it could reuse, since its next leadership has a new vote.
        if next.is_some() {
            *recorded = next;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(vote: &Vote<u64>, leading: bool, last: Option<u64>) -> Observed<'_> {
        Observed {
            me: 1,
            vote,
            leading,
            last_log_index: last,
        }
    }

    #[test]
    fn the_first_look_as_leader_records_the_last_log_index() {
        let vote = Vote::new_committed(3, 1);
        let floor = observe(None, seen(&vote, true, Some(17)));
        assert_eq!(floor.map(|f| f.index), Some(Some(17)));
    }

    #[test]
    fn later_looks_under_the_same_leadership_keep_the_first_floor() {
        let floor = ReadFloor::default();
        let vote = Vote::new_committed(3, 1);
        floor.observe(seen(&vote, true, Some(17)));
        let later = floor.observe(seen(&vote, true, Some(90)));
        assert_eq!(later.map(|f| f.index), Some(Some(17)));
    }

    #[test]
    fn a_new_leadership_gets_a_new_floor() {
        let floor = ReadFloor::default();
        floor.observe(seen(&Vote::new_committed(3, 1), true, Some(17)));
        let next = floor.observe(seen(&Vote::new_committed(4, 1), true, Some(20)));
        assert_eq!(next.map(|f| (f.leader.term, f.index)), Some((4, Some(20))));
    }

    #[test]
    fn no_floor_without_leading_under_an_own_committed_vote() {
        let own_uncommitted = Vote::new(3, 1);
        let other = Vote::new_committed(3, 2);
        let own = Vote::new_committed(3, 1);
        assert_eq!(observe(None, seen(&own_uncommitted, true, Some(5))), None);
        assert_eq!(observe(None, seen(&other, true, Some(5))), None);
        assert_eq!(observe(None, seen(&own, false, Some(5))), None);
    }

    #[test]
    fn an_empty_log_gives_an_empty_floor() {
        let vote = Vote::new_committed(1, 1);
        assert_eq!(
            observe(None, seen(&vote, true, None)).map(|f| f.index),
            Some(None)
        );
    }
}
