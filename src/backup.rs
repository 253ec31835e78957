//! Backups and restores: `kvdb admin backup DIR` and `kvdb admin restore DIR`.
//!
//! A backup asks each shard's leader for its live keys (`ShardExport.Export`, see
//! `kvdb_node::export`) while writes go on, and writes one file per shard and a manifest:
//!
//! - `shard-N.kvb`: the shard's keys as length-delimited `ExportedKey` messages, in key order;
//! - `MANIFEST.json`, written last: the format version, the shard map version, and per shard
//!   its slots, epoch, the applied log index the export began at, the key count, the file's
//!   size and SHA-256.
//!
//! **Consistency.** Each shard is one consistent state of that shard (a prefix of its log),
//! taken after a linearizable read barrier, so it holds every write acknowledged before the
//! backup reached that shard. Shards are exported one after another, each at its own point:
//! a backup is not one point in time across shards (a write acknowledged during the backup
//! is in it if its shard was exported after the write).
//!
//! A restore checks the whole backup first (format, every file's size, checksum and key
//! count) and that the target cluster holds no key, and only then writes: each key through
//! the smart client, so any number of nodes and any shard count work, with its remaining
//! time to live (keys that expired since the backup are skipped). Versions are the new
//! cluster's own. A failed check changes nothing.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kvdb_client::{Action, Client, ClientError, ExpireWhen, Expiry, Kv, PutOptions, Txn, TxnReply};
use kvdb_coordinator::admin::AdminClient;
use kvdb_coordinator::admin::api::{ShardList, ShardView};
use kvdb_core::auth::Credentials;
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::shard_export_client::ShardExportClient;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The backup format this build writes. 2: keys carry their type, and hashes their pairs.
pub const FORMAT: u32 = 2;

/// The oldest backup format this build reads: format 1 holds strings only, whose keys read
/// the same in format 2. An older build refuses a format 2 backup rather than restoring its
/// hashes as empty strings.
pub const OLDEST_FORMAT: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "MANIFEST.json";
/// How long one shard's export may keep failing (no leader, moved) before the backup fails.
const EXPORT_PATIENCE: Duration = Duration::from_secs(30);
/// Keys a restore writes at once.
const RESTORE_CONCURRENCY: usize = 64;
/// The largest export message a backup reads (a chunk, plus one key and value at the cap).
const MAX_CHUNK_BYTES: usize = kvdb_core::call_link::MAX_CLIENT_MESSAGE_BYTES;

/// What a backup holds, written last into `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`] of the build that wrote it.
    pub format: u32,
    /// When the backup began (Unix milliseconds).
    pub started_at_ms: u64,
    /// When the last shard was exported (Unix milliseconds).
    pub finished_at_ms: u64,
    /// The version of the shard map the backup followed.
    pub map_version: u64,
    /// One entry per shard, in slot order.
    pub shards: Vec<ShardFile>,
}

/// One shard in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// The shard's id in the backed-up cluster.
    pub shard: u64,
    /// Its first slot.
    pub slot_start: u16,
    /// Its last slot.
    pub slot_end: u16,
    /// Its epoch at the backup.
    pub epoch: u64,
    /// The leader's applied log index when the export began.
    pub applied_index: u64,
    /// Live keys exported.
    pub keys: u64,
    /// The file, relative to the backup directory.
    pub file: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file's SHA-256, in hex.
    pub sha256: String,
}

/// What a restore wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// Keys written.
    pub keys: u64,
    /// Keys skipped because they expired since the backup.
    pub expired: u64,
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The backup directory exists and is not empty.
    #[error("{0} is not empty: a backup goes into a new or empty directory")]
    NotEmpty(PathBuf),
    /// No manifest: not a backup, or one that never finished.
    #[error("{0} has no {MANIFEST}: not a KvDB backup, or one that did not finish")]
    NoManifest(PathBuf),
    /// Written by a build with another backup format.
    #[error(
        "the backup in {dir} has format {found}; this build reads formats {OLDEST_FORMAT} to \
         {FORMAT} (use the KvDB version that wrote it)"
    )]
    Format {
        /// The backup.
        dir: PathBuf,
        /// Its format.
        found: u32,
    },
    /// A file does not match the manifest (truncated, changed or missing).
    #[error("the backup in {dir} is damaged: {why}")]
    Damaged {
        /// The backup.
        dir: PathBuf,
        /// What does not match.
        why: String,
    },
    /// The restore target already holds keys.
    #[error(
        "the target cluster is not empty (shard {shard} holds keys): restore into a new \
         cluster"
    )]
    TargetNotEmpty {
        /// A shard with a key.
        shard: u64,
    },
    /// The cluster has no shards yet.
    #[error("the cluster has no shards: initialize it first (kvdb admin shard-init)")]
    NoShards,
    /// A shard could not be exported in time.
    #[error("shard {shard}: {error}")]
    Export {
        /// The shard.
        shard: u64,
        /// The last failure.
        error: KvError,
    },
    /// The Admin API failed.
    #[error("admin API: {0}")]
    Admin(String),
    /// A write of the restore failed.
    #[error("restore write: {0}")]
    Write(String),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Backs up every shard of the cluster behind `admin` into `dir` (created if missing; must
/// be empty), reaching nodes with `credentials`.
pub async fn backup(
    admin: &AdminClient,
    credentials: &Credentials,
    dir: &Path,
) -> Result<Manifest, BackupError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
    if entries.next().is_some() {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    let started_at_ms = now_ms();
    let list = initialized_shards(admin).await?;
    let mut shards = Vec::new();
    for view in &list.shards {
        shards.push(backup_shard(admin, credentials, dir, view).await?);
    }
    shards.sort_by_key(|s| s.slot_start);
    let manifest = Manifest {
        format: FORMAT,
        started_at_ms,
        finished_at_ms: now_ms(),
        map_version: list.map_version.0,
        shards,
    };
    // Last, and whole or not at all: a directory without it is no backup.
    let path = dir.join(MANIFEST);
    let partial = dir.join(format!("{MANIFEST}.partial"));
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    std::fs::write(&partial, text).map_err(io("write", &partial))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", &partial))?;
    std::fs::rename(&partial, &path).map_err(io("rename", &path))?;
    Ok(manifest)
}

/// Exports one shard into its file.
async fn backup_shard(
    admin: &AdminClient,
    credentials: &Credentials,
    dir: &Path,
    view: &ShardView,
) -> Result<ShardFile, BackupError> {
    let shard = view.id.0;
    let (applied_index, keys) = export(admin, credentials, shard, 0).await?;
    let file = format!("shard-{shard}.kvb");
    let path = dir.join(&file);
    let handle = std::fs::File::create(&path).map_err(io("create", &path))?;
    let mut out = HashingWriter::new(BufWriter::new(handle));
    for key in &keys {
        out.write_all(&key.encode_length_delimited_to_vec())
            .map_err(io("write", &path))?;
    }
    let (bytes, sha256, writer) = out.finish();
    let handle = writer
        .into_inner()
        .map_err(|e| io("write", &path)(e.into_error()))?;
    handle.sync_all().map_err(io("sync", &path))?;
    Ok(ShardFile {
        shard,
        slot_start: view.slot_start,
        slot_end: view.slot_end,
        epoch: view.epoch.0,
        applied_index,
        keys: keys.len() as u64,
        file,
        bytes,
        sha256,
    })
}

/// Every live key of `shard` (at most `limit`; 0: all) from its leader, following the map
/// and leader hints until [`EXPORT_PATIENCE`] runs out.
async fn export(
    admin: &AdminClient,
    credentials: &Credentials,
    shard: u64,
    limit: u64,
) -> Result<(u64, Vec<pb::ExportedKey>), BackupError> {
    let deadline = Instant::now() + EXPORT_PATIENCE;
    let mut hint: Option<String> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let address = match hint.take() {
            Some(address) => address,
            None => leader_address(admin, shard).await?,
        };
        let error = match export_from(credentials, &address, shard, limit).await {
            Ok(export) => return Ok(export),
            Err(KvError::Routing(RoutingError::NotLeader {
                leader: Some(leader),
                ..
            })) if leader != address => {
                hint = Some(leader);
                continue;
            }
            Err(e) => e,
        };
        if Instant::now() + backoff > deadline {
            return Err(BackupError::Export { shard, error });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// The shard list the Admin API serves.
async fn shards(admin: &AdminClient) -> Result<ShardList, BackupError> {
    admin
        .shards()
        .await
        .map_err(|e| BackupError::Admin(e.to_string()))
}

/// [`shards`], refused while the cluster has none.
async fn initialized_shards(admin: &AdminClient) -> Result<ShardList, BackupError> {
    let list = shards(admin).await?;
    if list.shards.is_empty() {
        return Err(BackupError::NoShards);
    }
    Ok(list)
}

/// The address of the node the map names as `shard`'s leader, or its first replica.
async fn leader_address(admin: &AdminClient, shard: u64) -> Result<String, BackupError> {
    let list = shards(admin).await?;
    let view = list
        .shards
        .iter()
        .find(|s| s.id.0 == shard)
        .ok_or_else(|| BackupError::Admin(format!("shard {shard} left the map")))?;
    let named = view.leader.iter().chain(&view.replicas);
    named
        .filter_map(|n| n.address.clone())
        .next()
        .ok_or_else(|| BackupError::Admin(format!("shard {shard} has no replica address")))
}

async fn export_from(
    credentials: &Credentials,
    address: &str,
    shard: u64,
    limit: u64,
) -> Result<(u64, Vec<pb::ExportedKey>), KvError> {
    let endpoint = credentials
        .endpoint(address)
        .map_err(|e| KvError::InvalidArgument(format!("node address {address:?}: {e}")))?
        .connect_timeout(Duration::from_secs(2));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| KvError::Unavailable(format!("{address}: {e}")))?;
    let mut client =
        ShardExportClient::new(credentials.on(channel)).max_decoding_message_size(MAX_CHUNK_BYTES);
    let request = pb::ExportRequest {
        shard_id: shard,
        limit,
    };
    let status = |s: tonic::Status| kvdb_core::status::from_status(&s);
    let mut stream = client.export(request).await.map_err(status)?.into_inner();
    let (mut applied, mut keys) = (None, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(status)?;
        applied.get_or_insert(chunk.applied_index);
        keys.extend(chunk.keys);
    }
    Ok((applied.unwrap_or(0), keys))
}

/// Reads `dir`'s manifest and checks every file against it; the manifest when all match.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(dir.to_owned()));
        }
        Err(e) => return Err(io("read", &path)(e)),
    };
    let damaged = |why: String| BackupError::Damaged {
        dir: dir.to_owned(),
        why,
    };
    // The format first, whatever else changed in a newer manifest.
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version =
        serde_json::from_slice(&text).map_err(|e| damaged(format!("{MANIFEST}: {e}")))?;
    if !(OLDEST_FORMAT..=FORMAT).contains(&version.format) {
        return Err(BackupError::Format {
            dir: dir.to_owned(),
            found: version.format,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| damaged(format!("{MANIFEST}: {e}")))?;
    for shard in &manifest.shards {
        let keys = read_shard(dir, shard)?;
        if keys.len() as u64 != shard.keys {
            return Err(damaged(format!(
                "{} holds {} keys, the manifest says {}",
                shard.file,
                keys.len(),
                shard.keys
            )));
        }
    }
    Ok(manifest)
}

/// The keys of one shard file, after checking its size and checksum.
fn read_shard(dir: &Path, shard: &ShardFile) -> Result<Vec<pb::ExportedKey>, BackupError> {
    let damaged = |why: String| BackupError::Damaged {
        dir: dir.to_owned(),
        why,
    };
    if shard.file.contains('/') || shard.file.contains("..") {
        return Err(damaged(format!(
            "{:?} is not a file of the backup",
            shard.file
        )));
    }
    let path = dir.join(&shard.file);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| damaged(format!("{}: {e}", shard.file)))?;
    if bytes.len() as u64 != shard.bytes {
        return Err(damaged(format!(
            "{} is {} bytes, the manifest says {}",
            shard.file,
            bytes.len(),
            shard.bytes
        )));
    }
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    if sha256 != shard.sha256 {
        return Err(damaged(format!(
            "{} does not match its checksum",
            shard.file
        )));
    }
    let mut keys = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let key = pb::ExportedKey::decode_length_delimited(&mut rest)
            .map_err(|e| damaged(format!("{}: {e}", shard.file)))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Restores the backup in `dir` into the empty cluster behind `admin`, writing through
/// `client`; nothing is written unless the whole backup checks out and the cluster is empty.
pub async fn restore(
    dir: &Path,
    admin: &AdminClient,
    credentials: &Credentials,
    client: &Client,
) -> Result<Restored, BackupError> {
    let manifest = verify(dir)?;
    let list = initialized_shards(admin).await?;
    for view in &list.shards {
        let (_, keys) = export(admin, credentials, view.id.0, 1).await?;
        if !keys.is_empty() {
            return Err(BackupError::TargetNotEmpty { shard: view.id.0 });
        }
    }
    let (written, expired) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for shard in &manifest.shards {
        let keys = read_shard(dir, shard)?;
        let writes = keys.into_iter().map(|key| {
            let (written, expired) = (written.clone(), expired.clone());
            async move {
                let ttl_ms = match key.expires_at_ms {
                    0 => None,
                    at => match at.checked_sub(now_ms()).filter(|left| *left > 0) {
                        Some(left) => Some(left),
                        None => {
                            expired.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                    },
                };
                restore_key(client, key, ttl_ms)
                    .await
                    .map_err(|e| BackupError::Write(format!("{e}")))?;
                written.fetch_add(1, Ordering::Relaxed);
                Ok::<_, BackupError>(())
            }
        });
        let mut running = futures::stream::iter(writes).buffer_unordered(RESTORE_CONCURRENCY);
        while let Some(done) = running.next().await {
            done?;
        }
    }
    Ok(Restored {
        keys: written.load(Ordering::Relaxed),
        expired: expired.load(Ordering::Relaxed),
    })
}

/// Writes one backed-up key with `ttl_ms` left: a string as a put, a hash as its pairs and
/// its expiry in one transaction.
async fn restore_key(
    client: &Client,
    key: pb::ExportedKey,
    ttl_ms: Option<u64>,
) -> Result<(), ClientError> {
    let ttl = ttl_ms.map(Duration::from_millis);
    if key.r#type() != pb::ValueType::Hash {
        let options = PutOptions {
            ttl,
            ..PutOptions::default()
        };
        return client
            .put_with(&key.key, &key.value, options)
            .await
            .map(drop);
    }
    let pairs = key
        .fields
        .into_iter()
        .map(|pair| (pair.field.to_vec(), pair.value.to_vec()))
        .collect();
    let mut txn = Txn::new().update(
        &key.key,
        Action::HashSet {
            pairs,
            only_new: false,
        },
    );
    if let Some(ttl) = ttl {
        let expiry = Expiry::In(ttl);
        let when = ExpireWhen::Always;
        txn = txn.update(&key.key, Action::Expire { expiry, when });
    }
    // A refused write (a hash over the target's value limit) fails the restore, as a refused
    // put does, rather than being counted as restored.
    let replies = client.txn(&txn).await?.unwrap_or_default();
    for reply in replies {
        if let TxnReply::Updated(Err(e)) = reply {
            return Err(e);
        }
    }
    Ok(())
}

/// A writer that counts and hashes what goes through it.
struct HashingWriter<W> {
    inner: W,
    bytes: u64,
    hash: ring::digest::Context,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            bytes: 0,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// The byte count, the hex SHA-256, and the writer.
    fn finish(self) -> (u64, String, W) {
        (self.bytes, hex(self.hash.finish().as_ref()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_backup(dir: &Path, keys: &[(&str, &str)], format: u32) -> Manifest {
        let file = "shard-1.kvb".to_owned();
        let mut out = HashingWriter::new(Vec::new());
        for (k, v) in keys {
            let key = pb::ExportedKey {
                key: k.as_bytes().to_vec().into(),
                value: v.as_bytes().to_vec().into(),
                version: 1,
                ..Default::default()
            };
            out.write_all(&key.encode_length_delimited_to_vec())
                .unwrap();
        }
        let (bytes, sha256, data) = out.finish();
        std::fs::write(dir.join(&file), data).unwrap();
        let manifest = Manifest {
            format,
            started_at_ms: 1,
            finished_at_ms: 2,
            map_version: 3,
            shards: vec![ShardFile {
                shard: 1,
                slot_start: 0,
                slot_end: 16383,
                epoch: 1,
                applied_index: 9,
                keys: keys.len() as u64,
                file,
                bytes,
                sha256,
            }],
        };
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        manifest
    }

    #[test]
    fn a_whole_backup_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_backup(dir.path(), &[("a", "1"), ("b", "2")], FORMAT);
        assert_eq!(verify(dir.path()).unwrap(), written);
    }

    #[test]
    fn an_unknown_format_a_truncated_file_and_no_manifest_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path(), &[("a", "1")], FORMAT + 1);
        let e = verify(dir.path()).unwrap_err();
        assert!(
            matches!(e, BackupError::Format { found, .. } if found == FORMAT + 1),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path(), &[("a", "1"), ("b", "2")], FORMAT);
        let file = dir.path().join("shard-1.kvb");
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        let e = verify(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let e = verify(dir.path()).unwrap_err();
        assert!(matches!(e, BackupError::NoManifest(_)), "{e}");
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path(), &[("a", "1")], FORMAT);
        let file = dir.path().join("shard-1.kvb");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = verify(dir.path()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }
}
