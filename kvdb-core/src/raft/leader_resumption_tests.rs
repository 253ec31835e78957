//! A replica never resumes a leadership it held before it stopped: it campaigns in a new
//! term. Its log may be shorter than what it led with (a leader sends entries before they are
//! durable on it, and a removed group given back with a state has no log at all), and leading
//! the old term again from a shorter log would reuse log ids of that term for different
//! entries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, CommittedLeaderId, Config, LogId, Membership, Raft, StoredMembership};

use super::test_support::{MemKv, TempLogDb, TestConfig};
use super::transport::{GrpcNetworkFactory, PeerChannels};
use crate::raft::log_store::LogDbOptions;
use crate::raft::state_machine::StateMachineStore;

const GROUP: u64 = 1;
const DEADLINE: Option<Duration> = Some(Duration::from_secs(10));

fn config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Config::default()
    };
    Arc::new(config.validate().unwrap())
}

fn voters() -> BTreeMap<u64, BasicNode> {
    BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))])
}

async fn start(db: &TempLogDb, machine: MemKv) -> Raft<TestConfig> {
    let log = db.log_db.group(GROUP);
    let state = StateMachineStore::open(db.log_db.database().clone(), GROUP, machine).unwrap();
    let network = GrpcNetworkFactory::new(GROUP, PeerChannels::default());
    Raft::new(1, config(), network, log, state).await.unwrap()
}

/// Starts the single voter on a fresh log, waits until it leads, stops it; returns its term.
async fn lead_and_stop(db: &TempLogDb) -> u64 {
    let raft = start(db, MemKv::default()).await;
    raft.initialize(voters()).await.unwrap();
    raft.wait(DEADLINE)
        .metrics(|m| m.current_leader == Some(1), "the single voter leads")
        .await
        .unwrap();
    let term = raft.metrics().borrow().current_term;
    raft.shutdown().await.unwrap();
    term
}

/// Starts the voter again over `machine` and checks that it leads in a term above `term`.
async fn leads_again_in_a_higher_term(db: &TempLogDb, machine: MemKv, term: u64) {
    let raft = start(db, machine).await;
    let leading = raft
        .wait(DEADLINE)
        .metrics(|m| m.current_leader == Some(1), "the voter leads again")
        .await
        .unwrap();
    assert!(
        leading.current_term > term,
        "led term {} again without an election (its old term was {term})",
        leading.current_term
    );
    raft.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_removed_leader_given_back_a_state_campaigns_in_a_new_term() {
    let db = TempLogDb::new(LogDbOptions::default());
    let term = lead_and_stop(&db).await;
    db.log_db.remove_group::<TestConfig>(GROUP).await.unwrap();

    // Given back with a state of the group (as a re-applied split makes) and no log.
    let at = LogId::new(CommittedLeaderId::new(0, 0), 5);
    let membership = Membership::new(vec![voters().keys().copied().collect()], voters());
    let machine = MemKv {
        applied: Some(at),
        membership: StoredMembership::new(Some(at), membership),
        data: BTreeMap::new(),
    };
    leads_again_in_a_higher_term(&db, machine, term).await;
}

#[tokio::test]
async fn a_restarted_leader_campaigns_in_a_new_term() {
    let db = TempLogDb::new(LogDbOptions::default());
    let term = lead_and_stop(&db).await;
    leads_again_in_a_higher_term(&db, MemKv::default(), term).await;
}
