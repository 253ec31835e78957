//! A targeted stale-read scenario: STRONG reads sent straight to a follower
//! cut off from its shard's Raft group, after the leader acknowledged newer
//! writes.
//!
//! The random schedules only catch a node that serves STRONG reads from
//! local state when a client happens to read from a stale replica at the
//! right moment; this scenario makes that moment certain. A correct node
//! refuses every such read with NOT_LEADER; a node with the planted
//! `LocalStrongReads` bug answers with the follower's stale value, which the
//! linearizability checker must flag. Both outcomes are counted, so a test
//! can prove the scenario sound on a correct cluster and sensitive on a
//! broken one.
//!
//! Out of scope: stale reads from a deposed leader (the schedules cover it,
//! by chance) and every other consistency guarantee.

use std::time::Duration;

use kvdb::core::ShardInfo;
use kvdb::core::error::{KvError, RoutingError};
use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_node_client::KvNodeClient;
use kvdb::core::slot::slot;
use kvdb::core::status::from_status;
use kvdb_client::{Client, Kv};
use kvdb_node::planted::PlantedBug;
use kvdb_testkit::{CheckConfig, ClientId, Fault, Op, Outcome, Output, Recorder, Version, check};
use tokio::time::Instant;

use super::cluster::{ChaosCluster, ChaosOptions, Endpoint};
use super::{DEADLINE, init_tracing};

/// The key the scenario writes and reads.
pub(super) const KEY: &[u8] = b"stale-read";
/// Writes acknowledged by the leader while the follower is cut off.
const NEWER_WRITES: usize = 3;
/// STRONG reads sent to the cut-off follower.
const STRONG_READS: usize = 5;
/// Bound on each direct call to the follower.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Client ids in the recorded history.
pub(super) const WRITER: ClientId = ClientId(0);
pub(super) const READER: ClientId = ClientId(1);

/// What the cut-off follower answered to the STRONG reads.
#[derive(Debug, Default)]
pub struct StaleReadReport {
    /// STRONG reads sent.
    pub reads: usize,
    /// Reads the follower answered with a value (necessarily stale).
    pub served: usize,
    /// Reads refused with NOT_LEADER.
    pub not_leader: usize,
    /// Any other error, for the test's message.
    pub other_errors: Vec<String>,
    /// Keys the checker found not linearizable (0 or 1).
    pub violations: usize,
    /// The checker's explanation when it found a violation.
    pub details: String,
}

/// Runs the scenario on a fresh one-shard cluster whose nodes run `bug`.
///
/// Writes a first value and waits until a follower applied it, cuts that
/// follower's Raft links (clients still reach it), has the leader
/// acknowledge [`NEWER_WRITES`] newer values, checks with an EVENTUAL read
/// that the follower really is stale, then sends [`STRONG_READS`] STRONG
/// reads to it with the shard's current target. Writes and STRONG reads are
/// recorded and checked for linearizability.
pub async fn strong_reads_on_isolated_follower(bug: Option<PlantedBug>) -> StaleReadReport {
    let (cluster, client, recorder) = start_one_shard(bug).await;

    let first = b"first".to_vec();
    recorded_put(&client, &recorder, first.clone()).await;
    let (leader, follower) = cut_off_a_follower(&cluster).await;
    let node = node_address(&cluster, follower);
    println!(
        "--- stale-read scenario with {bug:?}: leader node {leader}, cut-off follower node {follower}"
    );
    for n in 0..NEWER_WRITES {
        recorded_put(&client, &recorder, format!("newer-{n}").into_bytes()).await;
    }
    let seen = get(&cluster, &node, pb::Consistency::Eventual)
        .await
        .expect("an eventual read on the follower");
    assert_eq!(
        seen.map(|(v, _)| v),
        Some(first),
        "the cut-off follower applied a write it should not have received"
    );

    let mut report = StaleReadReport::default();
    for _ in 0..STRONG_READS {
        strong_read(&cluster, &node, &recorder, &mut report).await;
    }
    (report.violations, report.details) = check_history(&recorder);
    println!("    {report:?}");
    // Blackholed links would stall the nodes' shutdown.
    cluster.partition.heal();
    cluster.shutdown().await;
    report
}

/// A fresh one-shard cluster whose nodes run `bug`, a smart client and an empty history.
pub(super) async fn start_one_shard(bug: Option<PlantedBug>) -> (ChaosCluster, Client, Recorder) {
    init_tracing();
    let options = ChaosOptions {
        shards: 1,
        bug,
        // The scenarios cut leaders off and name the node they expect to lead next; an isolated
        // leader's slow-leader hand-over would name another through the coordinator.
        slow_leader: None,
        ..ChaosOptions::default()
    };
    let cluster = ChaosCluster::start(options).await;
    let client = cluster.patient_client().await;
    (cluster, client, Recorder::new())
}

/// The number of keys the linearizability checker flags in `recorder`'s history, and its
/// explanation when there are any.
pub(super) fn check_history(recorder: &Recorder) -> (usize, String) {
    let checked = check(&recorder.history(), &CheckConfig::default());
    let details = if checked.is_linearizable() {
        String::new()
    } else {
        checked.to_string()
    };
    (checked.violations().count(), details)
}

/// Waits until some follower of [`KEY`]'s shard applied the writes so far,
/// then cuts its Raft links (clients still reach it). Returns the leader's
/// and the follower's indexes.
///
/// Retries with a fresh pick if leadership moved to the chosen follower
/// just before the cut: a cut-off leader is the schedules' business.
async fn cut_off_a_follower(cluster: &ChaosCluster) -> (usize, usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let shard = shard_of_key(cluster);
        let leader = cluster.elected_leader(shard.id).await;
        let follower = shard
            .replicas
            .iter()
            .filter_map(|id| cluster.index_of(*id))
            .find(|&i| i != leader)
            .expect("the shard has a follower");
        let node = node_address(cluster, follower);
        wait_until_caught_up(cluster, &node).await;
        cluster.partition.set_where(Fault::Blackhole, |from, to| {
            matches!((from, to), (Endpoint::Node(a), Endpoint::Node(b))
                if *a == follower || *b == follower)
        });
        if !cluster.is_leader(follower, shard.id) {
            return (leader, follower);
        }
        cluster.partition.heal();
        assert!(
            Instant::now() < deadline,
            "could not cut off a follower: leadership kept moving"
        );
    }
}

/// Sends one STRONG read to the node at `node`, records it, and counts its
/// outcome in `report`.
async fn strong_read(
    cluster: &ChaosCluster,
    node: &str,
    recorder: &Recorder,
    report: &mut StaleReadReport,
) {
    let pending = recorder.invoke(READER, KEY.to_vec(), Op::Read);
    report.reads += 1;
    match get(cluster, node, pb::Consistency::Strong).await {
        Ok(seen) => {
            report.served += 1;
            let seen = seen.map(|(v, version)| (v, Version(version)));
            pending.complete(Outcome::Ok(Output::Read(seen)));
        }
        Err(KvError::Routing(RoutingError::NotLeader { .. })) => {
            report.not_leader += 1;
            pending.complete(Outcome::Fail);
        }
        Err(other) => {
            report.other_errors.push(other.to_string());
            pending.complete(Outcome::Fail);
        }
    }
}

/// The shard serving [`KEY`] in the coordinator's current map.
pub(super) fn shard_of_key(cluster: &ChaosCluster) -> ShardInfo {
    let map = cluster.map().expect("coordinator runs");
    map.shards
        .values()
        .find(|s| s.contains(slot(KEY)))
        .expect("a shard serves the key")
        .clone()
}

/// Node `i`'s real data-plane address (no proxy: clients always reach it).
pub(super) fn node_address(cluster: &ChaosCluster, i: usize) -> String {
    let map = cluster.map().expect("coordinator runs");
    map.address(cluster.id_of(i))
        .expect("the node is registered")
        .to_owned()
}

/// Writes `value` through the smart client, recorded; the cluster is healthy
/// on the leader's side, so the write must be acknowledged.
pub(super) async fn recorded_put(client: &Client, recorder: &Recorder, value: Vec<u8>) {
    let pending = recorder.invoke(WRITER, KEY.to_vec(), Op::Write(value.clone()));
    let version = client
        .put(KEY, &value)
        .await
        .expect("the leader acknowledges the write");
    pending.complete(Outcome::Ok(Output::applied(version.0)));
}

/// Polls until an EVENTUAL read on the follower at `node` returns what a
/// STRONG read on the shard's leader returns.
async fn wait_until_caught_up(cluster: &ChaosCluster, node: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let leader = cluster
            .leader_of(shard_of_key(cluster).id)
            .map(|i| node_address(cluster, i));
        if let Some(leader) = leader
            && let Ok(wanted) = get(cluster, &leader, pb::Consistency::Strong).await
            && get(cluster, node, pb::Consistency::Eventual).await.ok() == Some(wanted)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the follower at {node} never caught up with the leader"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One GET of [`KEY`] sent to the node at address `node` over a fresh
/// connection, routed with the shard's current target; the value and
/// version, or the node's error.
pub(super) async fn get(
    cluster: &ChaosCluster,
    node: &str,
    consistency: pb::Consistency,
) -> Result<Option<(Vec<u8>, u64)>, KvError> {
    let shard = shard_of_key(cluster);
    let request = pb::NodeGetRequest {
        target: Some(pb::ShardTarget {
            shard_id: shard.id.0,
            epoch: shard.epoch.0,
        }),
        request: Some(pb::GetRequest {
            key: KEY.to_vec().into(),
            consistency: consistency as i32,
            hash_fields: None,
            hash_page: None,
        }),
    };
    let call = async {
        let mut client = KvNodeClient::connect(format!("http://{node}"))
            .await
            .map_err(|e| connect_error(&e))?;
        client
            .get(request)
            .await
            .map_err(|status| from_status(&status))
    };
    let response = tokio::time::timeout(READ_TIMEOUT, call)
        .await
        .map_err(|_| KvError::Unavailable("the follower did not answer".into()))??
        .into_inner();
    Ok(response
        .found
        .then(|| (response.value.to_vec(), response.version)))
}

/// A connection failure, as the error a client would report for it.
pub(super) fn connect_error(error: &dyn std::error::Error) -> KvError {
    KvError::Unavailable(format!("cannot connect to the follower: {error}"))
}
