//! Forwarding a mutation from a follower to the coordinator leader, over the
//! leader's Coordinator gRPC service.
//!
//! The forwarded request carries [`FORWARDED_HEADER`]; a member receiving it
//! never forwards again, so a request whose leader changed on the way ends in
//! `NotLeader` instead of bouncing between members. The leader's answer,
//! including its exact [`CoordinatorError`], comes back unchanged.

use std::time::Duration;

use kvdb_core::convert::ConvertError;
use kvdb_core::proto::v1 as pb;
use kvdb_core::{
    MapVersion, NodeId, NodeInfo, ShardInfo, proto::v1::coordinator_client::CoordinatorClient,
};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::command::{Command, CommandResult, Outcome};
use crate::error::CoordinatorError;

/// Metadata marking a request forwarded by another member.
pub const FORWARDED_HEADER: &str = "x-kvdb-forwarded";

/// How long a forwarded call may take.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a request was forwarded by another member.
pub fn is_forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_HEADER)
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(FORWARD_TIMEOUT);
    request
        .metadata_mut()
        .insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
    request
}

fn invalid(e: ConvertError) -> CoordinatorError {
    CoordinatorError::Internal(format!("leader sent {e}"))
}

/// Sends `command` to the leader behind `channel` and returns its outcome.
pub async fn command(channel: Channel, command: Command) -> CommandResult {
    let mut client = CoordinatorClient::new(channel);
    let outcome = match command {
        Command::RegisterNode {
            name,
            address,
            zone,
        } => {
            let message = pb::RegisterNodeRequest {
                name,
                address,
                zone,
            };
            let reply = client.register_node(request(message)).await?.into_inner();
            let node = reply
                .node
                .as_ref()
                .ok_or_else(|| CoordinatorError::Internal("leader sent no node".into()))?;
            Outcome::Node {
                node: NodeInfo::try_from(node).map_err(invalid)?,
                version: MapVersion(reply.map_version),
            }
        }
        Command::InitShards {
            num_shards,
            replication_factor,
        } => {
            let message = pb::InitShardsRequest {
                num_shards,
                replication_factor,
            };
            let reply = client.init_shards(request(message)).await?.into_inner();
            Outcome::Version(MapVersion(reply.map_version))
        }
        Command::SetNodeStatus { node, status } => {
            let message = pb::SetNodeStatusRequest {
                node_id: node.0,
                status: pb::NodeStatus::from(status) as i32,
            };
            let reply = client.set_node_status(request(message)).await?.into_inner();
            Outcome::Version(MapVersion(reply.map_version))
        }
        Command::SetShardReplicas {
            shard,
            epoch,
            replicas,
        } => {
            let message = pb::SetShardReplicasRequest {
                shard_id: shard.0,
                epoch: epoch.map_or(0, |e| e.0),
                replicas: replicas.iter().map(|n| n.0).collect(),
            };
            let reply = client
                .set_shard_replicas(request(message))
                .await?
                .into_inner();
            let shard = reply
                .shard
                .as_ref()
                .ok_or_else(|| CoordinatorError::Internal("leader sent no shard".into()))?;
            Outcome::Shard {
                shard: ShardInfo::try_from(shard).map_err(invalid)?,
                version: MapVersion(reply.map_version),
            }
        }
        Command::SetShardLeader { shard, epoch, node } => {
            let message = pb::SetShardLeaderRequest {
                shard_id: shard.0,
                epoch: epoch.0,
                node_id: node.0,
            };
            let reply = client
                .set_shard_leader(request(message))
                .await?
                .into_inner();
            Outcome::Version(MapVersion(reply.map_version))
        }
        Command::ReportShardLeader {
            shard,
            epoch,
            leader,
            term,
        } => {
            let message = pb::ReportShardLeaderRequest {
                shard_id: shard.0,
                epoch: epoch.0,
                leader: leader.0,
                term,
            };
            let reply = client
                .report_shard_leader(request(message))
                .await?
                .into_inner();
            Outcome::Report {
                accepted: reply.accepted,
                version: MapVersion(reply.map_version),
            }
        }
        Command::ReportShardConfig {
            shard,
            epoch,
            replicas,
        } => {
            let message = pb::ReportShardConfigRequest {
                shard_id: shard.0,
                epoch: epoch.0,
                replicas: replicas.iter().map(|n| n.0).collect(),
            };
            let reply = client
                .report_shard_config(request(message))
                .await?
                .into_inner();
            Outcome::Report {
                accepted: reply.accepted,
                version: MapVersion(reply.map_version),
            }
        }
        Command::AnnounceMember { .. } => {
            return Err(CoordinatorError::Internal(
                "member announcements are proposed by the leader itself".into(),
            ));
        }
    };
    Ok(outcome)
}

/// Relays a node's heartbeat to the leader behind `channel`.
pub async fn heartbeat(channel: Channel, node: NodeId) -> Result<MapVersion, CoordinatorError> {
    let mut client = CoordinatorClient::new(channel);
    let message = pb::HeartbeatRequest { node_id: node.0 };
    let reply = client.heartbeat(request(message)).await?.into_inner();
    Ok(MapVersion(reply.map_version))
}
