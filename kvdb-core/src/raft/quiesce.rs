//! Quiescence: a group nobody writes to stops ticking, and one message per peer per tick
//! stands in for the heartbeats of all such groups.
//!
//! A node hosts hundreds to thousands of groups. openraft ticks every group and its leader
//! sends a heartbeat to each follower every interval whether anything happens or not, so an
//! idle node with 1,024 groups spent a third of a core on heartbeats alone. Here a leader
//! whose group has been idle for [`QuiesceConfig::idle`] (no new entry, no change of term,
//! everything applied, every follower and learner holding the whole log, membership one voter
//! set that includes it) turns its tick off: no heartbeats, no election timer. Once per tick
//! its node sends each peer one `Quiesce` message listing every such group with its term;
//! a follower that knows that leader at that term holds a *token* for the group and turns its
//! own tick off while the token is younger than [`QuiesceConfig::token_ttl`].
//!
//! # What wakes a group
//! - An entry (a write, a membership change, a split), a new term, or a leadership the map
//!   asks to move: the leader's next pass sees it, turns its tick back on and sends a
//!   heartbeat at once. Writes and strong reads never wait for that: openraft replicates and
//!   commits an entry without a tick, and a read-index round sends its own heartbeats.
//! - A follower that cannot confirm the leader or term (it restarted and knows no leader yet,
//!   or it saw a newer term), or that holds entries it has not applied (it never heard their
//!   commit), answers the `Quiesce` message with the group, and the leader wakes it: ordinary
//!   heartbeats then tell the follower its leader and commit index, or depose the leader.
//! - A leader that dies, or is cut off from a follower, stops sending `Quiesce` messages: the
//!   follower's token expires after `token_ttl`, its tick turns back on, and its election
//!   timer (which last saw the leader long ago) starts an election at once. `token_ttl` is the
//!   election timeout a committed follower waits anyway (lease plus minimum timeout), so a
//!   quiesced group notices a dead leader no later than an awake one.
//!
//! # Why lease reads stay sound
//! A leader's read lease (see [`super::lease`]) rests only on AppendEntries a majority
//! accepted within the lease window, and on followers refusing votes for `leader_lease` after
//! accepting one. Quiescence sends no AppendEntries, so a quiesced leader's lease simply runs
//! out: its next strong read runs a read-index round, whose heartbeats renew the lease as they
//! would for an awake group. Turning a follower's tick off only stops it from campaigning; it
//! still refuses votes by the same rule. Neither side's argument depends on ticks, so nothing
//! changes for safety: a token is a liveness hint, never a promise.
//!
//! Out of scope: coalescing the heartbeats of awake groups (openraft 0.9 sends them itself),
//! and quiescing groups with a lagging or unreachable member (they keep ticking, so their
//! leader keeps retrying the member).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use tokio::time::{Instant, MissedTickBehavior};

use super::transport::{PeerChannels, RaftRouter, TransportTypeConfig};
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::proto::v1::{QuiesceReply, QuiesceRequest, QuiescedGroup};

/// When groups quiesce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuiesceConfig {
    /// How long a group must see nothing before its leader quiesces it.
    pub idle: Duration,
    /// How often the node re-checks its groups and sends its `Quiesce` messages: a few times
    /// per `token_ttl`, and never more often than Raft heartbeats.
    pub interval: Duration,
    /// How long a follower keeps its tick off after the last `Quiesce` message that named its
    /// group: the election timeout of a follower that saw a committed leader
    /// (`election_timeout_max + election_timeout_min`).
    pub token_ttl: Duration,
}

/// Default for [`QuiesceConfig::idle`].
pub const DEFAULT_QUIESCE_IDLE: Duration = Duration::from_secs(1);

/// What decides a group's tick: the parts of its Raft metrics quiescence looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// This replica's role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The last log index, if any.
    pub last_log_index: Option<u64>,
    /// Whether everything in the log is applied here.
    pub applied_all: bool,
    /// Leaders: whether every member (voters and learners) holds the whole log.
    pub replicated: bool,
    /// Whether the membership is one voter set (not joint) that includes this replica.
    pub settled_voter: bool,
}

/// A replica's role, as quiescence sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leads its group.
    Leader,
    /// Follows, or learns from, `leader` (`None`: knows no leader).
    Follower {
        /// The leader it knows.
        leader: Option<u64>,
    },
    /// Campaigns, or is shutting down: never quiet.
    Other,
}

impl GroupView {
    /// The view of `metrics`.
    pub fn of<N>(metrics: &RaftMetrics<u64, N>) -> Self
    where
        N: openraft::Node,
    {
        let role = match metrics.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower | ServerState::Learner => Role::Follower {
                leader: metrics.current_leader,
            },
            ServerState::Candidate | ServerState::Shutdown => Role::Other,
        };
        let last = metrics.last_log_index;
        let membership = metrics.membership_config.membership();
        Self {
            role,
            term: metrics.current_term,
            last_log_index: last,
            applied_all: metrics.last_applied.map(|l| l.index) == last,
            replicated: metrics.replication.as_ref().is_some_and(|members| {
                members
                    .values()
                    .all(|matched| matched.map(|l| l.index) == last)
            }),
            settled_voter: membership.get_joint_config().len() == 1
                && membership.voter_ids().any(|id| id == metrics.id),
        }
    }
}

/// What a leader's pass remembers of its group: since when nothing has happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    term: u64,
    last_log_index: Option<u64>,
    since: Instant,
}

impl Activity {
    /// Starts watching a group seen as `view` at `now`.
    pub fn new(view: &GroupView, now: Instant) -> Self {
        Self {
            term: view.term,
            last_log_index: view.last_log_index,
            since: now,
        }
    }

    /// Takes a new sample; anything new (or a `wake` request) restarts the idle count.
    pub fn observe(&mut self, view: &GroupView, now: Instant, wake: bool) {
        if wake || view.term != self.term || view.last_log_index != self.last_log_index {
            *self = Self::new(view, now);
        }
    }
}

/// Whether a leader may keep its group quiet now.
pub fn leader_quiet(view: &GroupView, activity: &Activity, now: Instant, idle: Duration) -> bool {
    view.role == Role::Leader
        && view.applied_all
        && view.replicated
        && view.settled_voter
        && now.duration_since(activity.since) >= idle
}

/// A follower's permission to stay quiet: the leader and term a `Quiesce` message named, and
/// when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The leader that sent it.
    pub leader: u64,
    /// The term it named.
    pub term: u64,
    /// When it arrived.
    pub at: Instant,
}

/// Whether a follower seen as `view` confirms `leader` at `term`, so may hold its token.
///
/// It must also have applied its whole log: a leader goes quiet only with every member
/// holding its whole log, all of it committed, but a follower can hold entries whose commit
/// it never heard (shard groups send the commit index with the next AppendEntries, see
/// `Config::defer_commit_broadcast`, and a follower that restarted before that had none).
/// Such a follower asks to be woken, and the heartbeat that wakes it carries the commit.
pub fn confirms(view: &GroupView, leader: u64, term: u64) -> bool {
    view.role
        == Role::Follower {
            leader: Some(leader),
        }
        && view.term == term
        && view.applied_all
}

/// Whether a follower may keep its group quiet now.
pub fn follower_quiet(
    view: &GroupView,
    token: Option<&Token>,
    now: Instant,
    ttl: Duration,
) -> bool {
    token.is_some_and(|t| confirms(view, t.leader, t.term) && now.duration_since(t.at) < ttl)
}

/// The tokens a node's followers hold, written by the `Quiesce` service and read by the
/// [`Quiescer`]'s passes.
#[derive(Debug, Default)]
pub struct QuiesceTokens {
    held: Mutex<HashMap<u64, Token>>,
}

impl QuiesceTokens {
    /// Records a token for `group`.
    pub fn hold(&self, group: u64, token: Token) {
        self.lock().insert(group, token);
    }

    /// The token held for `group`.
    pub fn get(&self, group: u64) -> Option<Token> {
        self.lock().get(&group).copied()
    }

    /// Drops the tokens older than `ttl`.
    pub fn expire(&self, now: Instant, ttl: Duration) {
        self.lock().retain(|_, t| now.duration_since(t.at) < ttl);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Token>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers one `Quiesce` message: holds a token for each group whose local replica confirms
/// the sender as its leader at the named term, and lists the others so that the sender wakes
/// them. Groups this node does not host are ignored: there is nothing here to keep quiet.
pub fn receive<C: TransportTypeConfig>(
    router: &RaftRouter<C>,
    tokens: &QuiesceTokens,
    request: QuiesceRequest,
    now: Instant,
) -> QuiesceReply {
    let mut wake = Vec::new();
    for QuiescedGroup { group, term } in request.groups {
        let Some(raft) = router.get(group) else {
            continue;
        };
        let view = GroupView::of(&raft.metrics().borrow());
        if confirms(&view, request.leader, term) {
            let token = Token {
                leader: request.leader,
                term,
                at: now,
            };
            tokens.hold(group, token);
        } else {
            wake.push(group);
        }
    }
    QuiesceReply { wake }
}

/// Drives quiescence on one node: every [`QuiesceConfig::interval`] it sets each hosted
/// group's tick from [`leader_quiet`] or [`follower_quiet`], and sends each peer the groups
/// it keeps quiet.
pub struct Quiescer<C: TransportTypeConfig> {
    node: u64,
    router: RaftRouter<C>,
    peers: PeerChannels,
    tokens: Arc<QuiesceTokens>,
    config: QuiesceConfig,
    state: Mutex<PassState>,
}

#[derive(Debug, Default)]
struct PassState {
    /// Leaders' idle counts.
    activity: HashMap<u64, Activity>,
    /// The groups this node leads and keeps quiet.
    quiet: HashSet<u64>,
    /// The groups this node follows with their tick off.
    quiet_following: HashSet<u64>,
    /// Groups a peer asked to wake.
    wake: HashSet<u64>,
    /// Peers with a `Quiesce` message still unanswered: not sent another.
    in_flight: HashSet<u64>,
}

impl<C: TransportTypeConfig> std::fmt::Debug for Quiescer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quiescer")
            .field("node", &self.node)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: TransportTypeConfig> Quiescer<C> {
    /// A quiescer for the groups of node `node` in `router`, reaching peers over `peers` and
    /// reading the tokens the `Quiesce` service writes into `tokens`.
    pub fn new(
        node: u64,
        router: RaftRouter<C>,
        peers: PeerChannels,
        tokens: Arc<QuiesceTokens>,
        config: QuiesceConfig,
    ) -> Self {
        Self {
            node,
            router,
            peers,
            tokens,
            config,
            state: Mutex::default(),
        }
    }

    /// Whether this node leads `group` and keeps it quiet (its leader sends no heartbeats, so
    /// the age of its last majority acknowledgement says nothing about the network).
    pub fn leads_quietly(&self, group: u64) -> bool {
        self.lock().quiet.contains(&group)
    }

    /// Whether this node follows `group` with its tick off (it holds a fresh token).
    pub fn follows_quietly(&self, group: u64) -> bool {
        self.lock().quiet_following.contains(&group)
    }

    /// How many groups this node leads and keeps quiet.
    pub fn quiet_leaderships(&self) -> usize {
        self.lock().quiet.len()
    }

    /// Runs passes until `stop` completes.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticks.tick() => self.clone().pass().await,
            }
        }
    }

    /// One pass over every hosted group.
    async fn pass(self: Arc<Self>) {
        let now = Instant::now();
        self.tokens.expire(now, self.config.token_ttl);
        let mut messages: HashMap<u64, (String, Vec<QuiescedGroup>)> = HashMap::new();
        let mut woken = Vec::new();
        {
            let mut state = self.lock();
            let PassState {
                activity,
                quiet,
                quiet_following,
                wake,
                ..
            } = &mut *state;
            quiet_following.clear();
            let requested = std::mem::take(wake);
            let groups = self.router.entries();
            let hosted: HashSet<u64> = groups.iter().map(|(g, _)| *g).collect();
            activity.retain(|g, _| hosted.contains(g));
            quiet.retain(|g| hosted.contains(g));
            for (group, raft) in groups {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let view = GroupView::of(&metrics);
                let keep_quiet = if view.role == Role::Leader {
                    let seen = activity
                        .entry(group)
                        .or_insert_with(|| Activity::new(&view, now));
                    seen.observe(&view, now, requested.contains(&group));
                    leader_quiet(&view, seen, now, self.config.idle)
                } else {
                    activity.remove(&group);
                    let token = self.tokens.get(group);
                    follower_quiet(&view, token.as_ref(), now, self.config.token_ttl)
                };
                raft.runtime_config().tick(!keep_quiet);
                if keep_quiet && view.role != Role::Leader {
                    quiet_following.insert(group);
                }
                if view.role == Role::Leader && keep_quiet {
                    quiet.insert(group);
                    let membership = metrics.membership_config.membership();
                    for id in membership.voter_ids().filter(|id| *id != self.node) {
                        let Some(node) = membership.get_node(&id) else {
                            continue;
                        };
                        messages
                            .entry(id)
                            .or_insert_with(|| (node.addr.clone(), Vec::new()))
                            .1
                            .push(QuiescedGroup {
                                group,
                                term: view.term,
                            });
                    }
                } else if quiet.remove(&group) && view.role == Role::Leader {
                    woken.push(raft.clone());
                }
            }
            tracing::trace!(
                leaders = quiet.len(),
                followers = quiet_following.len(),
                woken = woken.len(),
                "quiet groups"
            );
        }
        for raft in woken {
            // A heartbeat at once refreshes the followers before their tokens run out.
            let _ = raft.trigger().heartbeat().await;
        }
        for (peer, (addr, groups)) in messages {
            self.clone().send(peer, addr, groups);
        }
    }

    /// Sends one peer its `Quiesce` message in the background; the groups it lists in its
    /// reply are woken on the next pass.
    fn send(self: Arc<Self>, peer: u64, addr: String, groups: Vec<QuiescedGroup>) {
        if !self.lock().in_flight.insert(peer) {
            return;
        }
        let channel = match self.peers.channel(&addr) {
            Ok(channel) => channel,
            Err(error) => {
                tracing::debug!(%error, peer, "no channel for a quiesce message");
                self.lock().in_flight.remove(&peer);
                return;
            }
        };
        let request = QuiesceRequest {
            leader: self.node,
            groups,
        };
        let deadline = self.config.token_ttl;
        tokio::spawn(async move {
            let mut client = RaftTransportClient::new(channel);
            let mut call = tonic::Request::new(request);
            call.set_timeout(deadline);
            let reply = tokio::time::timeout(deadline, client.quiesce(call)).await;
            let mut state = self.lock();
            state.in_flight.remove(&peer);
            match reply {
                Ok(Ok(reply)) => state.wake.extend(reply.into_inner().wake),
                Ok(Err(status)) => tracing::debug!(%status, peer, "quiesce message refused"),
                Err(_) => tracing::debug!(peer, "quiesce message timed out"),
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PassState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(term: u64, last: u64) -> GroupView {
        GroupView {
            role: Role::Leader,
            term,
            last_log_index: Some(last),
            applied_all: true,
            replicated: true,
            settled_voter: true,
        }
    }

    fn follower(of: Option<u64>, term: u64) -> GroupView {
        GroupView {
            role: Role::Follower { leader: of },
            ..leader(term, 10)
        }
    }

    const IDLE: Duration = Duration::from_secs(1);
    const TTL: Duration = Duration::from_millis(900);

    #[test]
    fn a_leader_goes_quiet_only_after_an_idle_period_with_nothing_outstanding() {
        let t0 = Instant::now();
        let view = leader(3, 10);
        let mut seen = Activity::new(&view, t0);
        assert!(!leader_quiet(&view, &seen, t0 + IDLE / 2, IDLE));
        assert!(leader_quiet(&view, &seen, t0 + IDLE, IDLE));
        for outstanding in [
            GroupView {
                applied_all: false,
                ..view.clone()
            },
            GroupView {
                replicated: false,
                ..view.clone()
            },
            GroupView {
                settled_voter: false,
                ..view.clone()
            },
            follower(Some(1), 3),
        ] {
            assert!(!leader_quiet(&outstanding, &seen, t0 + IDLE * 2, IDLE));
        }
        // A new entry, a new term or a peer's wake request restarts the count.
        seen.observe(&leader(3, 11), t0 + IDLE * 2, false);
        assert!(!leader_quiet(&leader(3, 11), &seen, t0 + IDLE * 2, IDLE));
        assert!(leader_quiet(&leader(3, 11), &seen, t0 + IDLE * 3, IDLE));
        seen.observe(&leader(4, 11), t0 + IDLE * 3, false);
        assert!(!leader_quiet(&leader(4, 11), &seen, t0 + IDLE * 3, IDLE));
        seen.observe(&leader(4, 11), t0 + IDLE * 5, true);
        assert!(!leader_quiet(&leader(4, 11), &seen, t0 + IDLE * 5, IDLE));
        // Nothing new: the count goes on.
        seen.observe(&leader(4, 11), t0 + IDLE * 6, false);
        assert!(leader_quiet(&leader(4, 11), &seen, t0 + IDLE * 6, IDLE));
    }

    #[test]
    fn a_follower_stays_quiet_only_with_a_fresh_token_from_the_leader_it_knows() {
        let t0 = Instant::now();
        let token = Token {
            leader: 1,
            term: 3,
            at: t0,
        };
        let view = follower(Some(1), 3);
        assert!(follower_quiet(&view, Some(&token), t0 + TTL / 2, TTL));
        assert!(
            !follower_quiet(&view, Some(&token), t0 + TTL, TTL),
            "expired"
        );
        assert!(!follower_quiet(&view, None, t0, TTL));
        for unconfirmed in [
            follower(Some(2), 3),
            follower(None, 3),
            follower(Some(1), 4),
            // Holds an entry whose commit it never heard (it restarted before the heartbeat
            // that would have carried it).
            GroupView {
                applied_all: false,
                ..view.clone()
            },
            GroupView {
                role: Role::Other,
                ..view.clone()
            },
            leader(3, 10),
        ] {
            assert!(!follower_quiet(&unconfirmed, Some(&token), t0, TTL));
        }
    }

    #[test]
    fn tokens_expire() {
        let tokens = QuiesceTokens::default();
        let t0 = Instant::now();
        let token = |at| Token {
            leader: 1,
            term: 1,
            at,
        };
        tokens.hold(7, token(t0));
        tokens.hold(8, token(t0 + TTL));
        tokens.expire(t0 + TTL, TTL);
        assert_eq!(tokens.get(7), None);
        assert_eq!(tokens.get(8), Some(token(t0 + TTL)));
    }
}
