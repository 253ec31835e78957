//! [`KvService`]: the `KvNode` gRPC service, a thin adapter over the shard
//! replicas.
//!
//! Every request is first checked by core's `EpochValidator` against this
//! node's map and its replica of the shard (hosted? same epoch? key in
//! range? leader if needed?). Then:
//! - a STRONG get reads the applied state at once while the leader holds
//!   its lease (`Replica::holds_read_lease`); otherwise it first confirms
//!   leadership with a read-index round (`ensure_linearizable`, shared by
//!   concurrent reads through the replica's read queue, which also waits
//!   until the read index is applied); an EVENTUAL get reads this
//!   replica's applied state at once;
//! - a put, delete or update becomes a `Command` stamped
//!   with this leader's clock and goes through the replica's write queue
//!   (batched with concurrent writes into one Raft entry), which answers
//!   once the entry is committed on a majority and applied here.
//!
//! Errors are [`KvError`]s, turned into statuses and trailers by core's
//! mapping only. Out of scope: retries (the client's executor does them).

use std::sync::Arc;
use std::time::Duration;

use kvdb_core::auth::{self, Role};
use kvdb_core::call_stream;
use kvdb_core::epoch::{Access, EpochValidator};
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::local_node::{Answer, LocalNode};
use kvdb_core::metrics::RequestMetrics;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_node_server::{KvNode, KvNodeServer};
use kvdb_core::proto::v1::node_call::Op;
use kvdb_core::proto::v1::reply::Result as Outcome;
use kvdb_core::slot::slot_from_wire;
use kvdb_core::{Epoch, ShardId};
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tonic::{Request, Response, Status, Streaming};

use crate::clock;
use crate::command::{Command, CommandResult};
use crate::disk::DiskGuard;
use crate::key_read;
use crate::proposal::{self, Limits};
use crate::replica::Replica;
use crate::replica_manager::ReplicaManager;

/// The `KvNode` service of one storage node.
#[derive(Debug, Clone)]
pub struct KvService {
    manager: Arc<ReplicaManager>,
    validator: EpochValidator,
    limits: Limits,
    timeout: Duration,
    /// Ends the `Calls` streams when the node stops.
    closing: call_stream::Closing,
    /// Refuses writes while the disk is nearly full; `None` never does.
    disk: Option<Arc<DiskGuard>>,
    /// Counts and times every request, unary or on a `Calls` stream.
    requests: RequestMetrics,
    #[cfg(feature = "planted-bugs")]
    bug: Option<crate::planted::PlantedBug>,
}

impl KvService {
    /// The service over `manager`'s replicas, enforcing `limits`, waiting at
    /// most `timeout` for Raft per request.
    pub fn new(manager: Arc<ReplicaManager>, limits: Limits, timeout: Duration) -> Self {
        let validator = EpochValidator {
            node: manager.node(),
        };
        Self {
            manager,
            validator,
            limits,
            timeout,
            closing: call_stream::Closing::never(),
            disk: None,
            requests: RequestMetrics::off(),
            #[cfg(feature = "planted-bugs")]
            bug: None,
        }
    }

    /// Records every request in `requests` (see [`crate::metrics`]).
    pub fn with_metrics(mut self, requests: RequestMetrics) -> Self {
        self.requests = requests;
        self
    }

    /// Ends every `Calls` stream once `closing` closes; the node's server cannot stop
    /// gracefully while one is open.
    pub fn with_closing(mut self, closing: call_stream::Closing) -> Self {
        self.closing = closing;
        self
    }

    /// Refuses client writes while `disk` says the data directory's disk is nearly full.
    pub fn with_disk_guard(mut self, disk: Arc<DiskGuard>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// `RESOURCE_EXHAUSTED` while the disk guard refuses writes.
    fn admit_write(&self) -> Result<(), KvError> {
        self.disk.as_ref().map_or(Ok(()), |disk| disk.admit_write())
    }

    /// Switches on a deliberate bug (chaos-suite sensitivity tests only).
    #[cfg(feature = "planted-bugs")]
    pub fn with_planted_bug(mut self, bug: Option<crate::planted::PlantedBug>) -> Self {
        self.bug = bug;
        self
    }

    /// Whether the planted `bug` is switched on.
    #[cfg(feature = "planted-bugs")]
    fn planted(&self, bug: crate::planted::PlantedBug) -> bool {
        self.bug == Some(bug)
    }

    /// The tonic server wrapping this service.
    pub fn into_server(self) -> KvNodeServer<Self> {
        let limit = self.limits.max_message_bytes();
        KvNodeServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    /// Validates the request's routing and returns the replica to serve it.
    fn route(
        &self,
        target: Option<pb::ShardTarget>,
        key: &[u8],
        access: Access,
    ) -> Result<Arc<Replica>, KvError> {
        let target =
            target.ok_or_else(|| KvError::InvalidArgument("missing shard target".into()))?;
        let shard = ShardId(target.shard_id);
        let map = self.manager.cache().current();
        let local = self.manager.local(&map, shard);
        let epoch = Epoch(target.epoch);
        // PLANTED BUG (SkipEpochCheck): pretend the request carried our epoch.
        #[cfg(feature = "planted-bugs")]
        let epoch = match &local {
            Some((l, _)) if self.planted(crate::planted::PlantedBug::SkipEpochCheck) => l.epoch,
            _ => epoch,
        };
        self.validator.validate(
            &map,
            local.as_ref().map(|(l, _)| l),
            shard,
            epoch,
            key,
            access,
        )?;
        local
            .map(|(_, replica)| replica)
            .ok_or_else(|| KvError::Internal("validated shard has no replica".into()))
    }

    async fn get(&self, req: pb::NodeGetRequest) -> Result<pb::GetResponse, KvError> {
        self.requests.measure("get", self.serve_get(req)).await
    }

    async fn put(&self, req: pb::NodePutRequest) -> Result<pb::PutResponse, KvError> {
        self.requests.measure("put", self.serve_put(req)).await
    }

    async fn delete(&self, req: pb::NodeDeleteRequest) -> Result<pb::DeleteResponse, KvError> {
        self.requests
            .measure("delete", self.serve_delete(req))
            .await
    }

    async fn update(&self, req: pb::NodeUpdateRequest) -> Result<pb::UpdateResponse, KvError> {
        self.requests
            .measure("update", self.serve_update(req))
            .await
    }

    async fn txn(&self, req: pb::NodeTxnRequest) -> Result<pb::TxnResponse, KvError> {
        self.requests.measure("txn", self.serve_txn(req)).await
    }

    async fn scan(&self, req: pb::NodeScanRequest) -> Result<pb::ScanResponse, KvError> {
        self.requests.measure("scan", self.serve_scan(req)).await
    }

    /// A page of the shard's live keys in the requested slots, after a leadership check as a
    /// strong read has: every write acknowledged before the scan is in it.
    async fn serve_scan(&self, req: pb::NodeScanRequest) -> Result<pb::ScanResponse, KvError> {
        let scan = req.request.ok_or_else(|| missing("scan"))?;
        let (first, last) = (
            slot_from_wire(scan.slot_start)?,
            slot_from_wire(scan.slot_end)?,
        );
        if first > last {
            return Err(KvError::InvalidArgument(
                "scan slot_start is after slot_end".into(),
            ));
        }
        let target = req
            .target
            .ok_or_else(|| KvError::InvalidArgument("missing shard target".into()))?;
        let shard = ShardId(target.shard_id);
        let map = self.manager.cache().current();
        let local = self.manager.local(&map, shard);
        self.validator.validate_slot(
            &map,
            local.as_ref().map(|(l, _)| l),
            shard,
            Epoch(target.epoch),
            first,
            Access::StrongRead,
        )?;
        let (local, replica) =
            local.ok_or_else(|| KvError::Internal("validated shard has no replica".into()))?;
        self.confirm_leading(&replica).await?;
        let limit = match scan.limit {
            0 => SCAN_DEFAULT_LIMIT,
            n => (n as usize).min(SCAN_MAX_LIMIT),
        };
        let storage = replica.storage().clone();
        let after = (!scan.after.is_empty()).then(|| scan.after.to_vec());
        let (page, stored_keys) = tokio::task::spawn_blocking(move || {
            Ok::<_, kvdb_core::storage::StorageError>((
                storage.scan(after.as_deref(), limit)?,
                storage.len()?,
            ))
        })
        .await
        .map_err(|e| KvError::Internal(e.to_string()))?
        .map_err(|e| KvError::Internal(e.to_string()))?;
        // The fence narrows before a split moves keys out (see `crate::split`): a slot it no
        // longer serves is the new shard's to list.
        let served = replica.serving();
        let end = last.min(local.slot_end).min(served.end);
        let now = clock::now_ms();
        let resume_after = (page.len() == limit).then(|| page[limit - 1].0.clone().into());
        let (keys, types) = page
            .into_iter()
            .filter(|(key, value)| {
                let key_slot = kvdb_core::slot::slot(key);
                first <= key_slot
                    && key_slot <= end
                    && served.contains(key_slot)
                    && value.is_live(now)
            })
            .map(|(key, value)| (key.into(), proposal::value_type(value.kind) as i32))
            .unzip();
        replica.note_read();
        Ok(pb::ScanResponse {
            keys,
            types,
            resume_after,
            shard_slot_end: u32::from(local.slot_end.min(served.end).0),
            stored_keys,
        })
    }

    async fn serve_get(&self, req: pb::NodeGetRequest) -> Result<pb::GetResponse, KvError> {
        let get = req.request.ok_or_else(|| missing("get"))?;
        self.limits.check_key(&get.key)?;
        let eventual = Access::for_read(get.consistency)? == Access::EventualRead;
        // PLANTED BUG (LocalStrongReads): serve STRONG like EVENTUAL.
        #[cfg(feature = "planted-bugs")]
        let eventual = eventual || self.planted(crate::planted::PlantedBug::LocalStrongReads);
        let access = if eventual {
            Access::EventualRead
        } else {
            Access::StrongRead
        };
        let replica = self.route(req.target, &get.key, access)?;
        // A replica that has not caught up answers as a strong read would: only as the leader,
        // or with NOT_LEADER and a hint, which sends the client there.
        if !eventual || !replica.answers_eventual_reads() {
            self.confirm_leading(&replica).await?;
        }
        let only: Option<Vec<&[u8]>> = get
            .hash_fields
            .as_ref()
            .map(|s| s.fields.iter().map(|f| f.as_ref()).collect());
        let fields = match (&get.hash_page, &only) {
            (Some(page), _) => key_read::Fields::Page {
                after: page.after.as_deref(),
                limit: match page.limit {
                    0 => HASH_PAGE_DEFAULT_LIMIT,
                    n => (n as usize).min(SCAN_MAX_LIMIT),
                },
            },
            (None, Some(only)) => key_read::Fields::Only(only),
            (None, None) => key_read::Fields::All,
        };
        let found = key_read::read(replica.storage().as_ref(), &get.key, fields)
            .map_err(|e| KvError::Internal(e.to_string()))?;
        // After the read: a split that took the key narrows the fence before the key leaves
        // the storage (see `crate::split`).
        if !replica.serves(&get.key) {
            return Err(self.moved(replica.shard(), &get.key));
        }
        replica.note_read();
        let now = clock::now_ms();
        let Some(found) = found.filter(|f| f.value.is_live(now)) else {
            return proposal::get_response(None);
        };
        let mut response = proposal::get_response(Some(found.value))?;
        if let Some(len) = found.hash_len {
            response.hash_len = len;
        }
        response.hash_more = found.more;
        Ok(response)
    }

    /// The barrier of a strong read: `replica` still leads (under its lease, or after a
    /// read-index round), so it has applied every write acknowledged before the read.
    async fn confirm_leading(&self, replica: &Replica) -> Result<(), KvError> {
        if self.holds_read_lease(replica) {
            return Ok(());
        }
        let confirmed = tokio::time::timeout(self.timeout, replica.confirm_read())
            .await
            .map_err(|_| timed_out())?;
        confirmed.map_err(|e| read_error(replica.shard(), e))
    }

    /// Whether `replica` may answer a strong read without a read-index round.
    fn holds_read_lease(&self, replica: &Replica) -> bool {
        // PLANTED BUG (EndlessLease): a leader trusts its lease forever.
        #[cfg(feature = "planted-bugs")]
        if self.planted(crate::planted::PlantedBug::EndlessLease) && replica.leadership().is_leader
        {
            return true;
        }
        replica.holds_read_lease()
    }

    async fn serve_put(&self, req: pb::NodePutRequest) -> Result<pb::PutResponse, KvError> {
        let put = req.request.ok_or_else(|| missing("put"))?;
        let command = proposal::put_command(&put, clock::now_ms(), &self.limits)?;
        let replica = self.route(req.target, &put.key, Access::Write)?;
        self.admit_write()?;
        match self.propose(&replica, command).await? {
            CommandResult::NotOwned => Err(self.moved(replica.shard(), &put.key)),
            result => proposal::put_response(result),
        }
    }

    async fn serve_delete(
        &self,
        req: pb::NodeDeleteRequest,
    ) -> Result<pb::DeleteResponse, KvError> {
        let delete = req.request.ok_or_else(|| missing("delete"))?;
        let command = proposal::delete_command(&delete, clock::now_ms(), &self.limits)?;
        let replica = self.route(req.target, &delete.key, Access::Write)?;
        self.admit_write()?;
        match self.propose(&replica, command).await? {
            CommandResult::NotOwned => Err(self.moved(replica.shard(), &delete.key)),
            result => proposal::delete_response(result),
        }
    }

    async fn serve_update(
        &self,
        req: pb::NodeUpdateRequest,
    ) -> Result<pb::UpdateResponse, KvError> {
        let update = req.request.ok_or_else(|| missing("update"))?;
        let command = proposal::update_command(&update, clock::now_ms(), &self.limits)?;
        let replica = self.route(req.target, &update.key, Access::Write)?;
        self.admit_write()?;
        match self.propose(&replica, command).await? {
            CommandResult::NotOwned => Err(self.moved(replica.shard(), &update.key)),
            result => proposal::update_response(result),
        }
    }

    async fn serve_txn(&self, req: pb::NodeTxnRequest) -> Result<pb::TxnResponse, KvError> {
        let txn = req.request.ok_or_else(|| missing("txn"))?;
        let command = proposal::txn_command(&txn, clock::now_ms(), &self.limits)?;
        let crate::command::Op::Txn(ref parsed) = command.op else {
            unreachable!("txn_command makes a transaction")
        };
        // Every key is in this one's slot (checked by `txn_command`).
        let key = parsed.keys().next().unwrap_or_default().to_vec();
        let replica = self.route(req.target, &key, Access::Write)?;
        self.admit_write()?;
        match self.propose(&replica, command).await? {
            CommandResult::NotOwned => Err(self.moved(replica.shard(), &key)),
            result => proposal::txn_response(result),
        }
    }

    /// `SHARD_MOVED` for `key`, which a split took from `shard`, hinting its new owner.
    fn moved(&self, shard: ShardId, key: &[u8]) -> KvError {
        let map = self.manager.cache().current();
        self.validator.moved(&map, shard, key).into()
    }

    async fn propose(&self, replica: &Replica, command: Command) -> Result<CommandResult, KvError> {
        // PLANTED BUG (AckBeforeCommit): answer before a majority commits.
        #[cfg(feature = "planted-bugs")]
        if self.planted(crate::planted::PlantedBug::AckBeforeCommit) {
            return Ok(crate::planted::ack_before_commit(replica, command));
        }
        let written = tokio::time::timeout(self.timeout, replica.write(command))
            .await
            .map_err(|_| timed_out())?;
        written.map_err(|e| write_error(replica.shard(), e))
    }
}

impl KvService {
    /// One operation of a `Calls` stream, answered as its unary RPC.
    async fn answer(&self, op: Option<pb::node_call::Op>) -> Result<Outcome, KvError> {
        match op {
            Some(Op::Get(req)) => self.get(req).await.map(Outcome::Get),
            Some(Op::Put(req)) => self.put(req).await.map(Outcome::Put),
            Some(Op::Delete(req)) => self.delete(req).await.map(Outcome::Delete),
            Some(Op::Update(req)) => self.update(req).await.map(Outcome::Update),
            Some(Op::Txn(req)) => self.txn(req).await.map(Outcome::Txn),
            Some(Op::Scan(req)) => self.scan(req).await.map(Outcome::Scan),
            None => Err(KvError::InvalidArgument("call without an operation".into())),
        }
    }
}

impl LocalNode for KvService {
    fn answer(&self, op: Op) -> Answer<'_> {
        Box::pin(KvService::answer(self, Some(op)))
    }
}

fn missing(what: &str) -> KvError {
    KvError::InvalidArgument(format!("missing {what} request"))
}

pub(crate) fn timed_out() -> KvError {
    KvError::Unavailable("timed out waiting for the shard's raft group".into())
}

fn not_leader(shard: ShardId, forward: ForwardToLeader<u64, BasicNode>) -> KvError {
    RoutingError::NotLeader {
        shard,
        leader: forward.leader_node.map(|n| n.addr),
    }
    .into()
}

pub(crate) fn read_error(
    shard: ShardId,
    e: RaftError<u64, CheckIsLeaderError<u64, BasicNode>>,
) -> KvError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => not_leader(shard, f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            KvError::Unavailable(format!("shard {shard}: {q}"))
        }
        RaftError::Fatal(f) => KvError::Unavailable(format!("shard {shard}: {f}")),
    }
}

fn write_error(shard: ShardId, e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> KvError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(shard, f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            KvError::Internal(format!("shard {shard}: {c}"))
        }
        RaftError::Fatal(f) => KvError::Unavailable(format!("shard {shard}: {f}")),
    }
}

/// Stored keys a scan page examines when the request names no limit.
pub const SCAN_DEFAULT_LIMIT: usize = 256;
/// The most stored keys one scan page examines, and the most fields one page of a hash
/// holds.
pub const SCAN_MAX_LIMIT: usize = 4096;
/// Fields a page of a hash holds when the request names no limit (Redis's `HSCAN` count).
pub const HASH_PAGE_DEFAULT_LIMIT: usize = 10;

#[tonic::async_trait]
impl KvNode for KvService {
    async fn get(
        &self,
        request: Request<pb::NodeGetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(
            KvService::get(self, request.into_inner()).await?,
        ))
    }

    async fn put(
        &self,
        request: Request<pb::NodePutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        Ok(Response::new(
            KvService::put(self, request.into_inner()).await?,
        ))
    }

    async fn delete(
        &self,
        request: Request<pb::NodeDeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Ok(Response::new(
            KvService::delete(self, request.into_inner()).await?,
        ))
    }

    async fn update(
        &self,
        request: Request<pb::NodeUpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        Ok(Response::new(
            KvService::update(self, request.into_inner()).await?,
        ))
    }

    async fn txn(
        &self,
        request: Request<pb::NodeTxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        Ok(Response::new(
            KvService::txn(self, request.into_inner()).await?,
        ))
    }

    async fn scan(
        &self,
        request: Request<pb::NodeScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        Ok(Response::new(
            KvService::scan(self, request.into_inner()).await?,
        ))
    }

    type CallsStream = call_stream::RepliesStream;

    async fn calls(
        &self,
        request: Request<Streaming<pb::NodeCalls>>,
    ) -> Result<Response<Self::CallsStream>, Status> {
        let service = Arc::new(self.clone());
        let role = Role::of(&request);
        Ok(Response::new(call_stream::serve(
            request.into_inner(),
            |message: pb::NodeCalls| message.calls,
            move |call: pb::NodeCall| {
                let service = service.clone();
                async move {
                    let outcome = match &call.op {
                        Some(Op::Put(_) | Op::Delete(_) | Op::Update(_) | Op::Txn(_)) => {
                            auth::check_write(role)
                        }
                        _ => Ok(()),
                    };
                    let outcome = match outcome {
                        Ok(()) => service.answer(call.op).await,
                        Err(refused) => Err(refused),
                    };
                    call_stream::reply(call.id, outcome)
                }
            },
            self.closing.clone(),
        )))
    }
}
