//! Proof that the chaos suite can fail: each planted bug of kvdb-node's
//! `planted-bugs` feature is switched on in every node and a short schedule
//! must report it (a linearizability violation, a lost acknowledged write,
//! or a wrong-epoch write served).

mod chaos;

use std::time::Duration;

use chaos::cluster::ChaosOptions;
use chaos::nemesis::Schedule;
use chaos::{RunReport, Settings, run};
use kvdb_node::planted::PlantedBug;

/// Fault phase of a sensitivity run: a few partition cycles.
const SENSITIVITY_RUN: Duration = Duration::from_secs(8);

async fn run_with(bug: PlantedBug, schedule: Schedule) -> RunReport {
    let options = ChaosOptions {
        bug: Some(bug),
        ..ChaosOptions::default()
    };
    let settings = Settings::from_env().with_duration(SENSITIVITY_RUN);
    run(schedule, options, settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledging_before_commit_is_caught() {
    let report = run_with(PlantedBug::AckBeforeCommit, Schedule::PartitionLeader).await;
    assert!(
        report.violations > 0 || !report.lost_writes.is_empty(),
        "planted AckBeforeCommit went unnoticed: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_strong_reads_are_caught() {
    let report = run_with(PlantedBug::LocalStrongReads, Schedule::PartitionLeader).await;
    assert!(
        report.violations > 0,
        "planted LocalStrongReads went unnoticed: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skipping_the_epoch_check_is_caught() {
    let report = run_with(PlantedBug::SkipEpochCheck, Schedule::PartitionLeader).await;
    assert!(
        report.epoch_served > 0,
        "planted SkipEpochCheck went unnoticed: {report}"
    );
}
