//! A targeted lease scenario: STRONG reads sent straight to a shard leader whose Raft links
//! were cut, after another node took over and acknowledged newer writes.
//!
//! The cut-off leader still believes it leads (nothing tells it otherwise), so only its read
//! lease stands between it and a stale answer: the followers acknowledged it last before the
//! cut, the lease has run out by the time anyone else can be elected, and every read needs a
//! heartbeat round it cannot win. A node with the planted `EndlessLease` bug trusts its lease
//! as long as it believes it leads and answers with its stale value, which the
//! linearizability checker must flag.
//!
//! Out of scope: leases during membership changes (joint configurations never serve
//! lease reads) and clock drift between machines.

use kvdb::core::error::{KvError, RoutingError};
use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_node_client::KvNodeClient;
use kvdb::core::status::from_status;
use kvdb_node::planted::PlantedBug;
use kvdb_testkit::{Op, Outcome, Output, Recorder, Version};
use tokio::time::Instant;

use super::DEADLINE;
use super::cluster::ChaosCluster;
use super::stale_read::{
    KEY, READ_TIMEOUT, READER, WRITER, check_history, connect_error, get, node_address,
    recorded_put, shard_of_key, start_one_shard,
};

/// Writes the new leader acknowledges after the cut.
const NEWER_WRITES: usize = 3;
/// STRONG reads sent to the deposed leader.
const STRONG_READS: usize = 3;

/// What the deposed leader answered to the STRONG reads.
#[derive(Debug, Default)]
pub struct DeposedLeaderReport {
    /// STRONG reads sent.
    pub reads: usize,
    /// Reads the deposed leader answered with a value (necessarily stale).
    pub served: usize,
    /// Reads refused with any error.
    pub refused: Vec<String>,
    /// Keys the checker found not linearizable (0 or 1).
    pub violations: usize,
    /// The checker's explanation when it found a violation.
    pub details: String,
}

/// Runs the scenario on a fresh one-shard cluster whose nodes run `bug`.
///
/// Writes a first value, cuts every Raft link of the shard's leader (clients still reach
/// it), waits until another node leads, has that node acknowledge [`NEWER_WRITES`] newer
/// values, then sends [`STRONG_READS`] STRONG reads to the old leader. Writes and reads are
/// recorded and checked for linearizability.
pub async fn strong_reads_on_deposed_leader(bug: Option<PlantedBug>) -> DeposedLeaderReport {
    let (cluster, client, recorder) = start_one_shard(bug).await;
    recorded_put(&client, &recorder, b"first".to_vec()).await;

    let shard = shard_of_key(&cluster).id;
    let old = cluster.elected_leader(shard).await;
    cluster.isolate(old);
    let new = cluster.leader_other_than(old, shard).await;
    println!(
        "--- deposed-leader scenario with {bug:?}: old leader node {old}, new leader node {new}"
    );
    let new_address = node_address(&cluster, new);
    for n in 0..NEWER_WRITES {
        put_acknowledged(&cluster, &new_address, &recorder, format!("newer-{n}")).await;
    }

    let old_address = node_address(&cluster, old);
    let mut report = DeposedLeaderReport::default();
    for _ in 0..STRONG_READS {
        let pending = recorder.invoke(READER, KEY.to_vec(), Op::Read);
        report.reads += 1;
        match get(&cluster, &old_address, pb::Consistency::Strong).await {
            Ok(seen) => {
                report.served += 1;
                let seen = seen.map(|(v, version)| (v, Version(version)));
                pending.complete(Outcome::Ok(Output::Read(seen)));
            }
            Err(refused) => {
                report.refused.push(refused.to_string());
                pending.complete(Outcome::Fail);
            }
        }
    }
    (report.violations, report.details) = check_history(&recorder);
    println!("    {report:?}");
    cluster.partition.heal();
    cluster.shutdown().await;
    report
}

/// Puts `value` straight at the node at `node` until it acknowledges, recording every
/// attempt: one refused with NOT_LEADER did not happen, any other failure may have.
async fn put_acknowledged(cluster: &ChaosCluster, node: &str, recorder: &Recorder, value: String) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = value.clone().into_bytes();
        let pending = recorder.invoke(WRITER, KEY.to_vec(), Op::Write(value.clone()));
        match put(cluster, node, value).await {
            Ok(version) => {
                pending.complete(Outcome::Ok(Output::applied(version)));
                return;
            }
            Err(KvError::Routing(RoutingError::NotLeader { .. })) => {
                pending.complete(Outcome::Fail)
            }
            Err(_) => pending.complete(Outcome::Unknown),
        }
        assert!(
            Instant::now() < deadline,
            "the new leader at {node} never acknowledged a write"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// One PUT of [`KEY`] sent to the node at `node`, routed with the shard's current target.
async fn put(cluster: &ChaosCluster, node: &str, value: Vec<u8>) -> Result<u64, KvError> {
    let shard = shard_of_key(cluster);
    let request = pb::NodePutRequest {
        target: Some(pb::ShardTarget {
            shard_id: shard.id.0,
            epoch: shard.epoch.0,
        }),
        request: Some(pb::PutRequest {
            key: KEY.to_vec().into(),
            value: value.into(),
            ..Default::default()
        }),
    };
    let call = async {
        let mut client = KvNodeClient::connect(format!("http://{node}"))
            .await
            .map_err(|e| connect_error(&e))?;
        client.put(request).await.map_err(|s| from_status(&s))
    };
    let response = tokio::time::timeout(READ_TIMEOUT, call)
        .await
        .map_err(|_| KvError::Unavailable("the node did not answer".into()))??;
    Ok(response.into_inner().version)
}
