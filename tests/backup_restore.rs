//! `kvdb admin backup` and `kvdb admin restore` with the real binary against in-process
//! clusters: a known data set (values of many sizes, some with a TTL) is written, a backup is
//! taken while other writes go on, and the backup is restored into a new cluster with another
//! shard count and node count; every key, value, hash and TTL must come back. Bad input (an unknown
//! backup format, a truncated file, a non-empty target) fails with a clear error and writes
//! nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::kvdb;
use kvdb::cluster::{ClusterConfig, LocalCluster};
use kvdb_client::{Client, Kv, PutOptions};

/// Keys of the known data set.
const KEYS: usize = 400;
/// Every third key of the data set lives this long.
const TTL: Duration = Duration::from_secs(600);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn backup(cluster: &LocalCluster, dir: &Path) -> Output {
    let admin = cluster.admin_address().to_string();
    let dir = dir.display().to_string();
    kvdb(&["admin", "--admin", &admin, "backup", &dir]).await
}

async fn restore(cluster: &LocalCluster, dir: &Path) -> Output {
    let admin = cluster.admin_address().to_string();
    let dir = dir.display().to_string();
    let coordinators = cluster.coordinator_address();
    kvdb(&[
        "admin",
        "--admin",
        &admin,
        "restore",
        &dir,
        "--coordinators",
        &coordinators,
    ])
    .await
}

async fn start(dir: &Path, nodes: usize, shards: u32) -> LocalCluster {
    let mut config = ClusterConfig::ephemeral(dir, nodes);
    config.shards = shards;
    LocalCluster::start(config).await.expect("cluster starts")
}

/// Hashes of the known data set; every other one has a TTL.
const HASHES: usize = 6;

fn hash_key(i: usize) -> Vec<u8> {
    format!("hash-{i}").into_bytes()
}

/// Hash `i`'s pairs, in the order written.
fn pairs(i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..=i)
        .map(|f| (format!("f{}", i - f).into_bytes(), value(i * 7 + f)))
        .collect()
}

/// `pairs` as a client reads them back: a small hash in the order written, one past Redis's
/// small-hash limits (here: a value over 64 bytes) in field byte order.
fn as_read(mut pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    if pairs.iter().any(|(f, v)| f.len() > 64 || v.len() > 64) {
        pairs.sort();
    }
    pairs
}

fn key(i: usize) -> Vec<u8> {
    format!("data-{i}").into_bytes()
}

/// Key `i`'s value: binary, of sizes from 0 to a few kilobytes.
fn value(i: usize) -> Vec<u8> {
    (0..(i * 37) % 4096).map(|b| (b * 31 + i) as u8).collect()
}

/// Every key of the data set with its value and whether it has a TTL, as `client` reads it;
/// each TTL must be what was left of [`TTL`], give or take the test's own duration.
async fn read_all(client: &Client) -> BTreeMap<Vec<u8>, (Vec<u8>, bool)> {
    let mut seen = BTreeMap::new();
    for i in 0..KEYS {
        if let Some(v) = client.get(&key(i)).await.expect("read") {
            if let Some(expires_at_ms) = v.expires_at_ms {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let left = Duration::from_millis(expires_at_ms.saturating_sub(now_ms));
                assert!(
                    left > TTL - Duration::from_secs(120) && left <= TTL,
                    "key {i} has {left:?} left of {TTL:?}"
                );
            }
            seen.insert(key(i), (v.value, v.expires_at_ms.is_some()));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_restores_into_a_cluster_of_another_shape() {
    let root = tempfile::tempdir().unwrap();
    let source = start(&root.path().join("source"), 3, 4).await;
    let client = source.client().await.unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..KEYS {
        let ttl = (i % 3 == 0).then_some(TTL);
        let options = PutOptions {
            ttl,
            ..PutOptions::default()
        };
        client.put_with(&key(i), &value(i), options).await.unwrap();
        expected.insert(key(i), (value(i), ttl.is_some()));
    }
    for i in 0..HASHES {
        let pairs = pairs(i);
        let pairs: Vec<_> = pairs.iter().map(|(f, v)| (&f[..], &v[..])).collect();
        client.hset(&hash_key(i), &pairs).await.unwrap();
        if i % 2 == 0 {
            let at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
                + TTL.as_millis() as u64;
            assert!(client.expire_at(&hash_key(i), at_ms).await.unwrap());
        }
    }
    // Writes to other keys go on during the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = client
                    .put(format!("load-{}", n % 50).as_bytes(), b"x")
                    .await;
                n += 1;
            }
            n
        })
    };
    let dir = root.path().join("backup");
    let out = backup(&source, &dir).await;
    stop.store(true, Ordering::Relaxed);
    let writes = load.await.unwrap();
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    assert!(writes > 0, "no write ran during the backup");
    assert!(
        text(&out.stdout).contains("of 4 shards"),
        "{}",
        text(&out.stdout)
    );
    // A backup into a directory that is not empty is refused.
    let again = backup(&source, &dir).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );

    let target = start(&root.path().join("target"), 4, 6).await;
    let out = restore(&target, &dir).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let target_client = target.client().await.unwrap();
    let restored = read_all(&target_client).await;
    assert_eq!(restored.len(), KEYS);
    assert!(
        restored == expected,
        "restored data differs from what was written"
    );
    for i in 0..HASHES {
        let hash = target_client
            .get(&hash_key(i))
            .await
            .unwrap()
            .expect("a restored hash");
        assert_eq!(hash.hash, Some(as_read(pairs(i))), "hash {i}");
        assert_eq!(
            hash.expires_at_ms.is_some(),
            i % 2 == 0,
            "hash {i}'s expiry"
        );
    }

    // Restoring again finds the target not empty, and writes nothing.
    let out = restore(&target, &dir).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    target.shutdown().await;
    source.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_or_unknown_backup_is_refused_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let source = start(&root.path().join("source"), 3, 2).await;
    let client = source.client().await.unwrap();
    for i in 0..20 {
        client.put(&key(i), &value(i)).await.unwrap();
    }
    let good = root.path().join("good");
    let out = backup(&source, &good).await;
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    source.shutdown().await;

    let copy = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(&good).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        dir
    };
    // A newer format.
    let newer = copy("newer");
    let manifest = newer.join("MANIFEST.json");
    let bumped =
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replacen("\"format\": 2", "\"format\": 3", 1);
    std::fs::write(&manifest, bumped).unwrap();
    // A truncated shard file.
    let truncated = copy("truncated");
    let file = std::fs::read_dir(&truncated)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "kvb") && p.metadata().unwrap().len() > 0)
        .expect("a shard file with keys");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let target = start(&root.path().join("target"), 3, 2).await;
    for (dir, expected) in [
        (&newer, "has format 3; this build reads formats 1 to 2"),
        (&truncated, "is damaged"),
        (&root.path().join("missing"), "no MANIFEST.json"),
    ] {
        let out = restore(&target, dir).await;
        assert!(!out.status.success(), "{} was restored", dir.display());
        assert!(
            text(&out.stderr).contains(expected),
            "{}: {}",
            dir.display(),
            text(&out.stderr)
        );
    }
    let client = target.client().await.unwrap();
    for i in 0..20 {
        assert!(
            client.get(&key(i)).await.unwrap().is_none(),
            "key {i} was written"
        );
    }
    target.shutdown().await;
}
