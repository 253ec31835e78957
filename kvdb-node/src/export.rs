//! `ShardExport.Export`: a shard's whole live state, read from its leader for a backup.
//!
//! The leader first confirms it still leads (a linearizable read barrier, as a strong get
//! does), then reads its storage in one snapshot: the export holds every write acknowledged
//! before the call, and is one consistent state of the shard (a prefix of its log), whose
//! applied index at the start goes in the first message. Expired keys are left out. The
//! keys go out in key order, in messages of about [`CHUNK_BYTES`].
//!
//! Out of scope: exports larger than memory (the storage export is read whole), and a
//! point in time across shards (each shard is exported at its own).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kvdb_core::ShardId;
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::shard_export_server::{ShardExport, ShardExportServer};
use tonic::{Request, Response, Status};

use crate::clock;
use crate::key_read;
use crate::kv_service::{read_error, timed_out};
use crate::proposal;
use crate::replica_manager::ReplicaManager;
use kvdb_core::storage::{Storage, StorageError, StoredValue, ValueKind};

/// About how many bytes of keys and values one message carries.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The export service of one node.
#[derive(Clone)]
pub struct ExportService {
    manager: Arc<ReplicaManager>,
    timeout: Duration,
}

impl ExportService {
    /// Exports the shards `manager` hosts; `timeout` bounds the read barrier.
    pub fn new(manager: Arc<ReplicaManager>, timeout: Duration) -> Self {
        Self { manager, timeout }
    }

    /// The tonic server, sending messages up to `max_message_bytes` (a chunk, plus one key
    /// and value at the node's limits).
    pub fn into_server(self, max_message_bytes: usize) -> ShardExportServer<Self> {
        ShardExportServer::new(self).max_encoding_message_size(max_message_bytes)
    }

    async fn export(&self, req: pb::ExportRequest) -> Result<Vec<pb::ExportChunk>, KvError> {
        let shard = ShardId(req.shard_id);
        let replica = self.manager.replica(shard).ok_or(RoutingError::NotLeader {
            shard,
            leader: None,
        })?;
        let confirmed = tokio::time::timeout(self.timeout, replica.confirm_read())
            .await
            .map_err(|_| timed_out())?;
        confirmed.map_err(|e| read_error(shard, e))?;
        let applied_index = replica.raft_figures().applied_index;
        let storage = replica.storage().clone();
        let entries = tokio::task::spawn_blocking(move || gather_hashes(storage.as_ref()))
            .await
            .map_err(|e| KvError::Internal(format!("export shard {shard}: {e}")))?
            .map_err(|e| KvError::Internal(format!("export shard {shard}: {e}")))?;
        let now = clock::now_ms();
        let limit = usize::try_from(req.limit)
            .ok()
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let live = entries
            .into_iter()
            .filter(|(key, value)| value.is_live(now) && replica.serves(key))
            .take(limit)
            .map(|(key, value)| {
                let read = proposal::get_response(Some(value))?;
                Ok(pb::ExportedKey {
                    key: key.into(),
                    value: read.value,
                    version: read.version,
                    expires_at_ms: read.expires_at_ms,
                    r#type: read.r#type,
                    fields: read.fields,
                })
            })
            .collect::<Result<Vec<_>, KvError>>()?;
        Ok(chunks(applied_index, live.into_iter()))
    }
}

/// Every entry of `storage`, with each hash in member rows gathered whole. A large hash is
/// read with its rows after the other keys, so it may hold writes applied after their read.
fn gather_hashes(storage: &dyn Storage) -> Result<Vec<(Vec<u8>, StoredValue)>, StorageError> {
    let mut entries = Vec::new();
    for (key, value) in storage.export()? {
        if value.kind != ValueKind::HashMembers {
            entries.push((key, value));
        } else if let Some(whole) = key_read::read_whole(storage, &key)? {
            entries.push((key, whole));
        }
    }
    Ok(entries)
}

/// Packs `keys` into messages of about [`CHUNK_BYTES`]; the first carries `applied_index`,
/// and there is always at least one (an empty shard).
fn chunks(applied_index: u64, keys: impl Iterator<Item = pb::ExportedKey>) -> Vec<pb::ExportChunk> {
    let mut out = vec![pb::ExportChunk {
        applied_index,
        keys: Vec::new(),
    }];
    let mut bytes = 0;
    for key in keys {
        // A hash's pairs are in `fields`, not `value`: count the whole message.
        let size = prost::Message::encoded_len(&key);
        if bytes > 0 && bytes + size > CHUNK_BYTES {
            out.push(pb::ExportChunk::default());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("one chunk at least").keys.push(key);
    }
    out
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ShardExport for ExportService {
    type ExportStream = ChunkStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let chunks = ExportService::export(self, request.into_inner()).await?;
        let stream = futures::stream::iter(chunks.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, bytes: usize) -> pb::ExportedKey {
        pb::ExportedKey {
            key: name.as_bytes().to_vec().into(),
            value: vec![0; bytes].into(),
            version: 1,
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_shard_is_one_message_with_its_index() {
        let out = chunks(7, std::iter::empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].applied_index, 7);
        assert!(out[0].keys.is_empty());
    }

    #[test]
    fn keys_fill_messages_up_to_the_budget_in_order() {
        let keys = (0..5).map(|i| key(&format!("k{i}"), CHUNK_BYTES / 2));
        let out = chunks(3, keys);
        let names: Vec<Vec<String>> = out
            .iter()
            .map(|c| {
                c.keys
                    .iter()
                    .map(|k| String::from_utf8(k.key.to_vec()).unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            [vec!["k0"], vec!["k1"], vec!["k2"], vec!["k3"], vec!["k4"]]
        );
        assert_eq!(out[0].applied_index, 3);
        assert!(out[1..].iter().all(|c| c.applied_index == 0));
        // One key larger than the budget still goes, alone.
        let out = chunks(1, std::iter::once(key("big", 2 * CHUNK_BYTES)));
        assert_eq!(out.len(), 1);
    }
}
