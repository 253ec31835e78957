//! Adding and removing coordinator members at run time, on the leader.
//!
//! A new member starts empty with `--join` (it never bootstraps a group of its own), and the
//! leader adds it as a learner first: the call waits until the learner holds the log, and
//! only then makes it a voter, so a slow newcomer never counts toward a majority it cannot
//! form. Removal is one membership change (openraft runs it through joint consensus).
//!
//! What is refused, before anything changes ([`check_addition`], [`check_removal`], pure):
//! - an id of 0, an id already a member at another address, an address another id holds;
//! - removing the last member: nothing would be left to serve the map;
//! - a removal after which the remaining voters that answer and name this leader right now
//!   (each asked once, with a 1 s deadline) are not a majority of the remaining voters: the
//!   group could commit nothing more (the change itself could not even commit), so it would
//!   stop until members come back.
//!
//! Nodes, gateways and smart clients learn the member list from any member (the
//! `GetCoordinatorLeader` reply lists it; see `kvdb_core::coordinator_client`), so they
//! follow without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kvdb_core::coordinator_error::CoordinatorError;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::coordinator_client::CoordinatorClient as CoordinatorGrpc;
use openraft::{BasicNode, ChangeMembers};

use crate::coordinator::Coordinator;
use crate::leadership::MemberInfo;

/// How long a learner may take to catch up before the addition gives up.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// What an addition has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addition {
    /// Add the member.
    Add,
    /// It is a voter at that address already: nothing to do.
    AlreadyMember,
}

fn refused(reason: String) -> CoordinatorError {
    CoordinatorError::MembershipRefused { reason }
}

/// Whether member `id` at `address` may join the group whose members are `members`.
pub fn check_addition(
    members: &BTreeMap<u64, String>,
    voters: &BTreeSet<u64>,
    id: u64,
    address: &str,
) -> Result<Addition, CoordinatorError> {
    if id == 0 {
        return Err(CoordinatorError::InvalidArgument(
            "coordinator member ids start at 1".into(),
        ));
    }
    if address.is_empty() {
        return Err(CoordinatorError::InvalidArgument(
            "a member needs its gRPC address (host:port)".into(),
        ));
    }
    if let Some((other, _)) = members.iter().find(|(m, a)| **m != id && *a == address) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "address {address} belongs to member {other}"
        )));
    }
    match members.get(&id) {
        Some(known) if known != address => Err(CoordinatorError::InvalidArgument(format!(
            "member {id} is at {known}; remove it first to move it to {address}"
        ))),
        Some(_) if voters.contains(&id) => Ok(Addition::AlreadyMember),
        _ => Ok(Addition::Add),
    }
}

/// The voters left after removing `id` from `voters`, if that is allowed: `acknowledging`
/// are the voters that acknowledge the leader right now (the leader itself included).
pub fn check_removal(
    voters: &BTreeSet<u64>,
    acknowledging: &BTreeSet<u64>,
    id: u64,
) -> Result<BTreeSet<u64>, CoordinatorError> {
    if !voters.contains(&id) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "{id} is not a voting member of the coordinator group (members: {voters:?})"
        )));
    }
    let left: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != id).collect();
    if left.is_empty() {
        return Err(refused(format!(
            "member {id} is the last one: a group needs a member to serve the map"
        )));
    }
    let alive = left.intersection(acknowledging).count();
    if alive * 2 <= left.len() {
        return Err(refused(format!(
            "without member {id}, {alive} of the {} remaining members acknowledge the leader, \
             not a majority: bring members back first",
            left.len()
        )));
    }
    Ok(left)
}

impl Coordinator {
    /// The members of the group, as this member knows them.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.cluster().members
    }

    /// Adds member `id` at gRPC `address`: a learner until it holds the log, then a voter.
    /// Only the leader does it (others answer `NotLeader`).
    pub async fn add_member(
        &self,
        id: u64,
        address: &str,
    ) -> Result<Vec<MemberInfo>, CoordinatorError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let (members, voters) = self.membership();
        if check_addition(&members, &voters, id, address)? == Addition::AlreadyMember {
            return Ok(self.members());
        }
        let raft = self.raft();
        let added = tokio::time::timeout(
            CATCH_UP_TIMEOUT,
            raft.add_learner(id, BasicNode::new(address), true),
        )
        .await
        .map_err(|_| {
            CoordinatorError::Unavailable(format!(
                "member {id} at {address} did not catch up within {CATCH_UP_TIMEOUT:?}; \
                 is it running with --join?"
            ))
        })?;
        added.map_err(|e| self.raft_failure(e.to_string()))?;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        raft.change_membership(change, false)
            .await
            .map_err(|e| self.raft_failure(e.to_string()))?;
        tracing::info!(id, address, "coordinator member added");
        Ok(self.members())
    }

    /// Removes member `id`, unless [`check_removal`] refuses. Only the leader does it.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<MemberInfo>, CoordinatorError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let (members, voters) = self.membership();
        let acknowledging = self.acknowledging(&members).await;
        check_removal(&voters, &acknowledging, id)?;
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        self.raft()
            .change_membership(change, false)
            .await
            .map_err(|e| self.raft_failure(e.to_string()))?;
        tracing::info!(id, "coordinator member removed");
        Ok(self.members())
    }

    /// Every member with its address, and the voters.
    fn membership(&self) -> (BTreeMap<u64, String>, BTreeSet<u64>) {
        let metrics = self.raft_metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let members = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        (members, membership.voter_ids().collect())
    }

    /// The members among `members` that answer and name this member as their leader right
    /// now (this member included), each asked once with a short deadline.
    async fn acknowledging(&self, members: &BTreeMap<u64, String>) -> BTreeSet<u64> {
        let me = self.config().id;
        let credentials = self.config().auth.credentials().ok();
        let asks = members
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, address)| {
                let credentials = credentials.clone();
                async move {
                    let credentials = credentials?;
                    let endpoint = credentials.endpoint(address).ok()?;
                    let ask = async {
                        let channel = endpoint.connect().await.ok()?;
                        let mut client = CoordinatorGrpc::new(credentials.on(channel));
                        let reply = client
                            .get_coordinator_leader(pb::GetCoordinatorLeaderRequest {})
                            .await
                            .ok()?;
                        (reply.into_inner().leader_id == me).then_some(*id)
                    };
                    tokio::time::timeout(PROBE_TIMEOUT, ask)
                        .await
                        .ok()
                        .flatten()
                }
            });
        let mut alive: BTreeSet<u64> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        alive.insert(me);
        alive
    }

    fn raft_failure(&self, error: String) -> CoordinatorError {
        if self.is_leader() {
            CoordinatorError::Unavailable(format!("membership change: {error}"))
        } else {
            self.not_leader()
        }
    }
}

/// How long a member may take to answer the removal's check.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn additions_are_checked_against_ids_and_addresses() {
        let members = BTreeMap::from([(1, "a:1".to_owned()), (2, "b:1".to_owned())]);
        let voters = set(&[1, 2]);
        assert_eq!(
            check_addition(&members, &voters, 3, "c:1").unwrap(),
            Addition::Add
        );
        assert_eq!(
            check_addition(&members, &voters, 2, "b:1").unwrap(),
            Addition::AlreadyMember
        );
        for (id, address) in [(0, "c:1"), (3, ""), (3, "b:1"), (2, "c:1")] {
            assert!(
                matches!(
                    check_addition(&members, &voters, id, address),
                    Err(CoordinatorError::InvalidArgument(_))
                ),
                "{id} at {address:?}"
            );
        }
        // A learner left over from a failed addition is made a voter by trying again.
        let learner = BTreeMap::from([(1, "a:1".to_owned()), (3, "c:1".to_owned())]);
        assert_eq!(
            check_addition(&learner, &set(&[1]), 3, "c:1").unwrap(),
            Addition::Add
        );
    }

    #[test]
    fn the_last_member_and_a_lost_majority_are_refused() {
        let refused = |r: Result<BTreeSet<u64>, CoordinatorError>| {
            matches!(r, Err(CoordinatorError::MembershipRefused { .. }))
        };
        assert!(refused(check_removal(&set(&[1]), &set(&[1]), 1)));
        // Five members, two of them down: removing a live one leaves 2 of 4 answering.
        assert!(refused(check_removal(
            &set(&[1, 2, 3, 4, 5]),
            &set(&[1, 2, 3]),
            3
        )));
        // Removing a dead one leaves 3 of 4 answering.
        assert_eq!(
            check_removal(&set(&[1, 2, 3, 4, 5]), &set(&[1, 2, 3]), 5).unwrap(),
            set(&[1, 2, 3, 4])
        );
        assert_eq!(
            check_removal(&set(&[1, 2]), &set(&[1, 2]), 2).unwrap(),
            set(&[1])
        );
        assert!(matches!(
            check_removal(&set(&[1, 2]), &set(&[1, 2]), 7),
            Err(CoordinatorError::InvalidArgument(_))
        ));
    }
}
