//! The multi-process chaos schedule: real SIGKILL and SIGSTOP/SIGCONT of
//! `kvdb node` processes (the built binary) under a recorded workload, with
//! the same checks as the in-process schedules.

mod chaos;

use std::path::Path;

use chaos::Settings;
use chaos::crash_all::{RestartOrder, strong_reads_after_cluster_crash};
use chaos::process::run_signals;
use chaos::rolling::run_rolling_restart;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_sigstop_of_node_processes() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let report = run_signals(bin, Settings::from_env()).await;
    assert!(
        report.is_clean(),
        "{} (reproduce with KVDB_CHAOS_SEED={}):\n{}",
        report.schedule,
        report.seed,
        report.details
    );
}

/// The schedule of a whole-cluster crash: every node killed at once, restarted in a random
/// order 100 ms apart, every key read STRONG at once; for `KVDB_CHAOS_SECS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_crash_with_staggered_restarts() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let settings = Settings::from_env();
    let order = RestartOrder::Random(settings.seed);
    let report = strong_reads_after_cluster_crash(bin, 4, order, 2, settings.duration).await;
    assert_eq!(
        (report.stale, report.violations),
        (0, 0),
        "stale STRONG reads after a whole-cluster crash (reproduce with KVDB_CHAOS_SEED={}): \
         {report:?}",
        settings.seed
    );
}

/// The deterministic case: one shard, an acknowledged CAS, every node killed, the shard's
/// leader restarted first and the followers 100 ms later, a STRONG read at once. It must see
/// the CAS, every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_strong_read_after_a_whole_cluster_crash_sees_the_acknowledged_cas() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let report = strong_reads_after_cluster_crash(
        bin,
        1,
        RestartOrder::LeaderFirst,
        3,
        std::time::Duration::ZERO,
    )
    .await;
    assert_eq!((report.stale, report.violations), (0, 0), "{report:?}");
}

/// The rolling-restart drill: every node (after its leaderships moved away), then the
/// coordinator, then the gateway, stopped with SIGTERM and started again one at a time under
/// smart and gateway clients; no acknowledged write lost, the history linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_of_every_process_under_load() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let report = run_rolling_restart(bin, Settings::from_env().seed).await;
    assert!(
        report.is_clean(),
        "{} (reproduce with KVDB_CHAOS_SEED={}):\n{}",
        report.schedule,
        report.seed,
        report.details
    );
}
