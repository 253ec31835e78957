//! A node whose disk fills up, on a real small tmpfs: writes are refused at once with
//! `RESOURCE_EXHAUSTED` and changed nothing, reads go on, writes are taken again once space
//! is freed, and nothing acknowledged is lost. Mounting needs root (as CI runs); elsewhere the
//! test says it was skipped.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestCluster;
use kvdb::cluster::NodeHook;
use kvdb::core::error::KvError;
use kvdb_client::{Client, ClientError, ExecutorConfig, Kv};
use kvdb_node::disk::DiskGuard;
use tokio::time::Instant;

/// The tmpfs every process of the cluster keeps its data on.
const TMPFS_MIB: u64 = 192;
/// The nodes' reserve: writes are refused with less than this free.
const RESERVE: u64 = 48 << 20;

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root); a root that cannot mount fails.
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs { dir });
        }
        assert!(!is_root(), "root could not mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

fn free_bytes(path: &Path) -> u64 {
    DiskGuard::new(path, 0).unwrap().sample().unwrap()
}

/// Fills `dir`'s filesystem until `leave` bytes are free; the file it wrote.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let ballast = dir.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0xA5u8; 1 << 20];
    while free_bytes(dir) > leave + chunk.len() as u64 {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    ballast
}

async fn put(client: &Client, key: &str) -> Result<(), ClientError> {
    client.put(key.as_bytes(), key.as_bytes()).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount(TMPFS_MIB) else {
        return;
    };
    let data = tmpfs.path().join("cluster");
    let cluster_data = data.clone();
    let test = TestCluster::start_with(3, move |config| {
        config.data_dir = cluster_data;
        config.tune_node = NodeHook::new(|_, node| node.min_free_disk = RESERVE);
    })
    .await;
    let client = Client::connect_with(
        &[test.cluster.coordinator_address()],
        ExecutorConfig {
            default_timeout: Duration::from_secs(5),
            ..ExecutorConfig::default()
        },
    )
    .await
    .unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("before-{i}");
        put(&client, &key).await.expect("writes with room to spare");
        acknowledged.push(key);
    }

    // --- fill the disk to half the reserve: writes are refused, with the reason
    let ballast = fill(tmpfs.path(), RESERVE / 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    let refusal = loop {
        let key = format!("during-{attempt}");
        attempt += 1;
        match put(&client, &key).await {
            // Taken before the nodes sampled the disk again: acknowledged like any other.
            Ok(()) => acknowledged.push(key),
            Err(e) => break e,
        }
        assert!(Instant::now() < deadline, "writes were never refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(&refusal, ClientError::Kv(KvError::ResourceExhausted(m)) if m.contains("reserve")),
        "{refusal:?}"
    );
    let refused_key = format!("during-{}", attempt - 1);
    // A refused write changed nothing, and reads go on.
    for key in &acknowledged {
        let read = client
            .get(key.as_bytes())
            .await
            .expect("reads on a full disk");
        assert_eq!(
            read.map(|v| v.value),
            Some(key.clone().into_bytes()),
            "{key}"
        );
    }
    assert_eq!(client.get(refused_key.as_bytes()).await.unwrap(), None);

    // --- free the space: writes are taken again, without a restart
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = put(&client, "after").await {
        assert!(Instant::now() < deadline, "writes never resumed: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acknowledged.push("after".to_owned());
    for key in &acknowledged {
        let read = client.get(key.as_bytes()).await.unwrap();
        assert_eq!(
            read.map(|v| v.value),
            Some(key.clone().into_bytes()),
            "{key}"
        );
    }
    test.stop().await;
    drop(tmpfs);
}
