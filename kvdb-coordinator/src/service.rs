//! The `kvdb.v1.Coordinator` gRPC service: a thin adapter over
//! [`Coordinator`]. Each method decodes its request, calls the handle and
//! maps the result; errors cross the wire through
//! `From<CoordinatorError> for tonic::Status`.
//!
//! Reads and watches are served from this member's applied state. A request
//! forwarded by another member (see [`crate::forward`]) is never forwarded
//! again.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use kvdb_core::convert::node_status_from_i32;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::coordinator_server::{self, CoordinatorServer};
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{Epoch, MapVersion, NodeId, ShardId};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::command::{Command, Outcome};
use crate::coordinator::{Coordinator, split_point};
use crate::error::CoordinatorError;
use crate::forward;
use crate::watch::Watcher;
use crate::watch_route;

/// The Coordinator gRPC service of one member.
#[derive(Debug, Clone)]
pub struct CoordinatorService {
    coordinator: Coordinator,
    /// Turns true when the server stops, to end the watch streams.
    closing: watch::Receiver<bool>,
}

/// The stream of a WatchShardMap call.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchShardMapEvent, Status>> + Send>>;

type Reply<T> = Result<Response<T>, Status>;

impl CoordinatorService {
    /// The service over `coordinator`; watches end when `closing` turns true
    /// (or the coordinator shuts down).
    pub fn new(coordinator: Coordinator, closing: watch::Receiver<bool>) -> Self {
        Self {
            coordinator,
            closing,
        }
    }

    /// The tonic server wrapping this service.
    pub fn into_server(self) -> CoordinatorServer<Self> {
        CoordinatorServer::new(self)
    }

    /// The handle to act with: one that does not forward when the request
    /// was itself forwarded.
    fn handle<T>(&self, request: &Request<T>) -> Coordinator {
        if forward::is_forwarded(request) {
            self.coordinator.local_only()
        } else {
            self.coordinator.clone()
        }
    }
}

fn unexpected(outcome: Outcome) -> Status {
    CoordinatorError::Internal(format!("unexpected command outcome {outcome:?}")).into()
}

fn node_ids(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

/// The generated method's stream: converts and encodes every event for this
/// stream alone. [`crate::serve`] routes watches to
/// [`crate::watch_route`] instead, which shares one encoding per event.
fn watch_stream(watcher: Watcher, closing: watch::Receiver<bool>) -> WatchStream {
    let events = watch_route::shared_events(watcher, closing)
        .map(|event| Ok(pb::WatchShardMapEvent::from(event.event())));
    Box::pin(events)
}

#[tonic::async_trait]
impl coordinator_server::Coordinator for CoordinatorService {
    async fn get_shard_map(
        &self,
        request: Request<pb::GetShardMapRequest>,
    ) -> Reply<pb::GetShardMapResponse> {
        let newer_than = MapVersion(request.into_inner().if_newer_than);
        let map = self.coordinator.map();
        let map = (map.version > newer_than).then(|| pb::ShardMap::from(&*map));
        Ok(Response::new(pb::GetShardMapResponse { map }))
    }

    type WatchShardMapStream = WatchStream;

    async fn watch_shard_map(
        &self,
        request: Request<pb::WatchShardMapRequest>,
    ) -> Reply<Self::WatchShardMapStream> {
        let from = MapVersion(request.into_inner().from_version);
        let watcher = self.coordinator.subscribe(from).await;
        Ok(Response::new(watch_stream(watcher, self.closing.clone())))
    }

    async fn resolve_shard(
        &self,
        request: Request<pb::ResolveShardRequest>,
    ) -> Reply<pb::ResolveShardResponse> {
        let slot = kvdb_core::slot::slot(&request.into_inner().key);
        let map = self.coordinator.map();
        let shard = map
            .shards
            .values()
            .find(|s| s.contains(slot))
            .ok_or(CoordinatorError::NotInitialized)?;
        let mut replicas: Vec<pb::Node> = Vec::new();
        let leader_first = shard
            .leader
            .into_iter()
            .chain(shard.replicas.iter().copied());
        for id in leader_first {
            if let Some(node) = map.nodes.get(&id)
                && !replicas.iter().any(|n| n.id == id.0)
            {
                replicas.push(node.into());
            }
        }
        Ok(Response::new(pb::ResolveShardResponse {
            shard: Some(shard.into()),
            replicas,
            map_version: map.version.0,
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<pb::ListNodesRequest>,
    ) -> Reply<pb::ListNodesResponse> {
        let map = self.coordinator.map();
        Ok(Response::new(pb::ListNodesResponse {
            nodes: map.nodes.values().map(pb::Node::from).collect(),
            map_version: map.version.0,
        }))
    }

    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Reply<pb::RegisterNodeResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let command = Command::RegisterNodeResp {
            name: r.name,
            address: r.address,
            zone: r.zone,
            resp_address: r.resp_address,
        };
        match handle.execute(command).await? {
            Outcome::Node { node, version } => Ok(Response::new(pb::RegisterNodeResponse {
                node: Some((&node).into()),
                map_version: version.0,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn init_shards(
        &self,
        request: Request<pb::InitShardsRequest>,
    ) -> Reply<pb::InitShardsResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let version = handle
            .init_shards(r.num_shards, r.replication_factor)
            .await?;
        Ok(Response::new(pb::InitShardsResponse {
            map_version: version.0,
        }))
    }

    async fn set_node_status(
        &self,
        request: Request<pb::SetNodeStatusRequest>,
    ) -> Reply<pb::SetNodeStatusResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let status = node_status_from_i32(r.status)
            .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
        let version = handle.set_node_status(NodeId(r.node_id), status).await?;
        Ok(Response::new(pb::SetNodeStatusResponse {
            map_version: version.0,
        }))
    }

    async fn set_shard_replicas(
        &self,
        request: Request<pb::SetShardReplicasRequest>,
    ) -> Reply<pb::SetShardReplicasResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let command = Command::SetShardReplicas {
            shard: ShardId(r.shard_id),
            epoch: (r.epoch != 0).then_some(Epoch(r.epoch)),
            replicas: node_ids(&r.replicas),
        };
        match handle.execute(command).await? {
            Outcome::Shard { shard, version } => Ok(Response::new(pb::SetShardReplicasResponse {
                shard: Some((&shard).into()),
                map_version: version.0,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn set_shard_leader(
        &self,
        request: Request<pb::SetShardLeaderRequest>,
    ) -> Reply<pb::SetShardLeaderResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let version = handle
            .set_shard_leader(ShardId(r.shard_id), Epoch(r.epoch), NodeId(r.node_id))
            .await?;
        Ok(Response::new(pb::SetShardLeaderResponse {
            map_version: version.0,
        }))
    }

    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Reply<pb::SplitShardResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let shard = ShardId(r.shard_id);
        let at = r.at.map(|at| split_point(shard, at)).transpose()?;
        let epoch = (r.epoch != 0).then_some(Epoch(r.epoch));
        let split = handle.split_shard(shard, epoch, at).await?;
        Ok(Response::new(pb::SplitShardResponse {
            parent: Some((&split.parent).into()),
            child: Some((&split.child).into()),
            map_version: split.map_version.0,
        }))
    }

    async fn report_shard_leader(
        &self,
        request: Request<pb::ReportShardLeaderRequest>,
    ) -> Reply<pb::ReportShardLeaderResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let report = handle
            .report_shard_leader(
                ShardId(r.shard_id),
                Epoch(r.epoch),
                NodeId(r.leader),
                r.term,
            )
            .await?;
        Ok(Response::new(pb::ReportShardLeaderResponse {
            accepted: report.accepted,
            map_version: report.map_version.0,
        }))
    }

    async fn report_shard_config(
        &self,
        request: Request<pb::ReportShardConfigRequest>,
    ) -> Reply<pb::ReportShardConfigResponse> {
        let handle = self.handle(&request);
        let r = request.into_inner();
        let report = handle
            .report_shard_config(ShardId(r.shard_id), Epoch(r.epoch), node_ids(&r.replicas))
            .await?;
        Ok(Response::new(pb::ReportShardConfigResponse {
            accepted: report.accepted,
            map_version: report.map_version.0,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Reply<pb::HeartbeatResponse> {
        let handle = self.handle(&request);
        let request = request.into_inner();
        let stats: Vec<ShardStats> = request.shards.iter().map(ShardStats::from).collect();
        let version = handle.heartbeat(NodeId(request.node_id), &stats).await?;
        Ok(Response::new(pb::HeartbeatResponse {
            map_version: version.0,
        }))
    }

    async fn get_coordinator_leader(
        &self,
        _request: Request<pb::GetCoordinatorLeaderRequest>,
    ) -> Reply<pb::GetCoordinatorLeaderResponse> {
        let cluster = self.coordinator.cluster();
        let leader = cluster.leader;
        Ok(Response::new(pb::GetCoordinatorLeaderResponse {
            leader_id: leader.id.unwrap_or(0),
            leader_address: leader.grpc_address.unwrap_or_default(),
            leader_admin_address: leader.admin_address.unwrap_or_default(),
            member_addresses: cluster
                .members
                .into_iter()
                .map(|m| m.grpc_address)
                .collect(),
        }))
    }
}
