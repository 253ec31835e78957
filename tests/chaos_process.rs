//! The multi-process chaos schedule: real SIGKILL and SIGSTOP/SIGCONT of
//! `kvdb node` processes (the built binary) under a recorded workload, with
//! the same checks as the in-process schedules.

mod chaos;

use std::path::Path;

use chaos::Settings;
use chaos::process::run_signals;

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
