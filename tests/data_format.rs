//! Servers started on a data directory they must not use (a newer on-disk format, the other
//! kind of server's, an unreadable stamp) exit at once with an error that says why, and leave
//! the directory exactly as it was; a new directory is stamped with the current format.

use std::path::Path;
use std::process::{Command, Output};

use kvdb::core::data_format::{DirKind, FORMAT_FILE};

/// Runs the built `kvdb` binary with `args`; every start below fails (or is stopped) before it
/// serves, so nothing outlives the call.
fn kvdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the kvdb binary")
}

/// Every file in `dir` with its contents, to compare before and after.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn start_node(dir: &Path) -> Output {
    kvdb(&[
        "node",
        "--name",
        "node-1",
        "--listen",
        "127.0.0.1:0",
        // Nothing listens there: a node that got past its data directory would retry
        // registration, so a quick exit shows the directory was refused first.
        "--coordinators",
        "127.0.0.1:1",
        "--data",
        dir.to_str().unwrap(),
    ])
}

fn start_coordinator(dir: &Path) -> Output {
    kvdb(&[
        "coordinator",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data",
        dir.to_str().unwrap(),
    ])
}

/// Starts `start` on a directory stamped `stamp` (beside a file standing for its data) and
/// checks that it exits non-zero naming `expected`, with the directory untouched.
fn refused(start: fn(&Path) -> Output, stamp: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FORMAT_FILE), stamp).unwrap();
    std::fs::write(dir.path().join("raft-log.redb"), b"not to be touched").unwrap();
    let before = snapshot(dir.path());
    let out = start(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on {stamp:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "for {stamp:?} expected {expected:?} in: {stderr}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the refused directory changed"
    );
}

#[test]
fn a_node_refuses_a_newer_format_another_servers_directory_and_a_bad_stamp() {
    refused(start_node, "kvdb node format 99\n", "node format 99, newer");
    refused(
        start_node,
        "kvdb coordinator format 1\n",
        "belongs to a coordinator, not a node",
    );
    refused(start_node, "garbage", "is not a KvDB format stamp");
}

#[test]
fn a_coordinator_refuses_a_newer_format_and_a_nodes_directory() {
    refused(
        start_coordinator,
        "kvdb coordinator format 7\n",
        "coordinator format 7, newer",
    );
    refused(
        start_coordinator,
        "kvdb node format 1\n",
        "belongs to a node, not a coordinator",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_stamps_every_data_directory_with_the_current_format() {
    let root = tempfile::tempdir().unwrap();
    let config = kvdb::cluster::ClusterConfig::ephemeral(root.path(), 3);
    let cluster = kvdb::cluster::LocalCluster::start(config).await.unwrap();
    cluster.shutdown().await;
    let mut stamps = Vec::new();
    for entry in walk(root.path()) {
        if entry.file_name().is_some_and(|n| n == FORMAT_FILE) {
            stamps.push(std::fs::read_to_string(&entry).unwrap());
        }
    }
    stamps.sort();
    let node = format!("kvdb node format {}\n", DirKind::Node.current());
    let coordinator = format!(
        "kvdb coordinator format {}\n",
        DirKind::Coordinator.current()
    );
    assert_eq!(stamps, [coordinator, node.clone(), node.clone(), node]);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
