//! The typed calls of [`CoordinatorClient`], one per Coordinator RPC.

use crate::convert::ConvertError;
use crate::ids::{Epoch, MapVersion, NodeId, ShardId};
use crate::proto::v1 as pb;
use crate::shard_map::{NodeInfo, NodeStatus, ShardInfo, ShardMap};

use super::{CoordinatorClient, CoordinatorClientError};

/// Where the coordinator leader is, as a member reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoordinatorLeader {
    /// Raft id of the leader, if one is known.
    pub id: Option<u64>,
    /// Its gRPC address.
    pub address: Option<String>,
    /// Its admin HTTP address.
    pub admin_address: Option<String>,
    /// The gRPC address of every member, as the answering member knows them.
    pub members: Vec<String>,
}

/// A shard and the nodes holding it, as ResolveShard answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedShard {
    pub shard: ShardInfo,
    /// Replica nodes, the leader first when known.
    pub replicas: Vec<NodeInfo>,
    pub map_version: MapVersion,
}

fn missing(what: &'static str) -> CoordinatorClientError {
    CoordinatorClientError::Invalid(ConvertError {
        what,
        why: "missing from the reply".into(),
    })
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn raw_ids(ids: &[NodeId]) -> Vec<u64> {
    ids.iter().map(|id| id.0).collect()
}

impl CoordinatorClient {
    /// Registers a storage node (idempotent by name) with its RESP address (empty for
    /// none); returns its record.
    pub async fn register_node(
        &self,
        name: &str,
        address: &str,
        zone: &str,
        resp_address: &str,
    ) -> Result<NodeInfo, CoordinatorClientError> {
        let message = pb::RegisterNodeRequest {
            name: name.into(),
            address: address.into(),
            zone: zone.into(),
            resp_address: resp_address.into(),
        };
        let reply = self
            .call("register_node", true, |mut c| {
                let request = self.request(message.clone());
                async move { c.register_node(request).await }
            })
            .await?
            .into_inner();
        let node = reply.node.as_ref().ok_or_else(|| missing("node"))?;
        Ok(NodeInfo::try_from(node)?)
    }

    /// A node's heartbeat, with its replicas' figures when it has fresh ones; returns the
    /// coordinator's map version.
    pub async fn heartbeat(
        &self,
        node: NodeId,
        stats: &[crate::shard_stats::ShardStats],
    ) -> Result<MapVersion, CoordinatorClientError> {
        let message = pb::HeartbeatRequest {
            node_id: node.0,
            shards: stats.iter().map(pb::ShardStats::from).collect(),
        };
        let reply = self
            .call("heartbeat", true, |mut c| {
                let request = self.request(message.clone());
                async move { c.heartbeat(request).await }
            })
            .await?;
        Ok(MapVersion(reply.into_inner().map_version))
    }

    /// Reports a shard leader; `Ok(false)` when refused as stale.
    pub async fn report_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        leader: NodeId,
        term: u64,
    ) -> Result<bool, CoordinatorClientError> {
        let message = pb::ReportShardLeaderRequest {
            shard_id: shard.0,
            epoch: epoch.0,
            leader: leader.0,
            term,
        };
        let reply = self
            .call("report_shard_leader", true, |mut c| {
                let request = self.request(message);
                async move { c.report_shard_leader(request).await }
            })
            .await?;
        Ok(reply.into_inner().accepted)
    }

    /// Reports a committed replica set; `Ok(false)` when refused as stale.
    pub async fn report_shard_config(
        &self,
        shard: ShardId,
        epoch: Epoch,
        replicas: &[NodeId],
    ) -> Result<bool, CoordinatorClientError> {
        let message = pb::ReportShardConfigRequest {
            shard_id: shard.0,
            epoch: epoch.0,
            replicas: raw_ids(replicas),
        };
        let reply = self
            .call("report_shard_config", true, |mut c| {
                let request = self.request(message.clone());
                async move { c.report_shard_config(request).await }
            })
            .await?;
        Ok(reply.into_inner().accepted)
    }

    /// Creates the shards (a no-op when repeated with the same parameters).
    pub async fn init_shards(
        &self,
        num_shards: u32,
        replication_factor: u32,
    ) -> Result<MapVersion, CoordinatorClientError> {
        let message = pb::InitShardsRequest {
            num_shards,
            replication_factor,
        };
        let reply = self
            .call("init_shards", true, |mut c| {
                let request = self.request(message);
                async move { c.init_shards(request).await }
            })
            .await?;
        Ok(MapVersion(reply.into_inner().map_version))
    }

    /// Sets a node's status.
    pub async fn set_node_status(
        &self,
        node: NodeId,
        status: NodeStatus,
    ) -> Result<MapVersion, CoordinatorClientError> {
        let message = pb::SetNodeStatusRequest {
            node_id: node.0,
            status: pb::NodeStatus::from(status) as i32,
        };
        let reply = self
            .call("set_node_status", true, |mut c| {
                let request = self.request(message);
                async move { c.set_node_status(request).await }
            })
            .await?;
        Ok(MapVersion(reply.into_inner().map_version))
    }

    /// Starts moving a shard to `replicas` (`epoch` checked when given).
    pub async fn set_shard_replicas(
        &self,
        shard: ShardId,
        epoch: Option<Epoch>,
        replicas: &[NodeId],
    ) -> Result<ShardInfo, CoordinatorClientError> {
        let message = pb::SetShardReplicasRequest {
            shard_id: shard.0,
            epoch: epoch.map_or(0, |e| e.0),
            replicas: raw_ids(replicas),
        };
        let reply = self
            .call("set_shard_replicas", true, |mut c| {
                let request = self.request(message.clone());
                async move { c.set_shard_replicas(request).await }
            })
            .await?
            .into_inner();
        let shard = reply.shard.as_ref().ok_or_else(|| missing("shard"))?;
        Ok(ShardInfo::try_from(shard)?)
    }

    /// Asks a shard's leader to hand leadership to `node`.
    pub async fn set_shard_leader(
        &self,
        shard: ShardId,
        epoch: Epoch,
        node: NodeId,
    ) -> Result<MapVersion, CoordinatorClientError> {
        let message = pb::SetShardLeaderRequest {
            shard_id: shard.0,
            epoch: epoch.0,
            node_id: node.0,
        };
        let reply = self
            .call("set_shard_leader", true, |mut c| {
                let request = self.request(message);
                async move { c.set_shard_leader(request).await }
            })
            .await?;
        Ok(MapVersion(reply.into_inner().map_version))
    }

    /// The map, if newer than `newer_than`, from any member.
    pub async fn get_shard_map(
        &self,
        newer_than: MapVersion,
    ) -> Result<Option<ShardMap>, CoordinatorClientError> {
        let message = pb::GetShardMapRequest {
            if_newer_than: newer_than.0,
        };
        let reply = self
            .call("get_shard_map", false, |mut c| {
                let request = self.request(message);
                async move { c.get_shard_map(request).await }
            })
            .await?;
        match reply.into_inner().map {
            Some(map) => Ok(Some(ShardMap::try_from(&map)?)),
            None => Ok(None),
        }
    }

    /// Every registered node and the map version, from any member.
    pub async fn list_nodes(&self) -> Result<(Vec<NodeInfo>, MapVersion), CoordinatorClientError> {
        let reply = self
            .call("list_nodes", false, |mut c| {
                let request = self.request(pb::ListNodesRequest {});
                async move { c.list_nodes(request).await }
            })
            .await?
            .into_inner();
        let nodes = reply
            .nodes
            .iter()
            .map(NodeInfo::try_from)
            .collect::<Result<_, _>>()?;
        Ok((nodes, MapVersion(reply.map_version)))
    }

    /// The shard owning `key` and its nodes, from any member.
    pub async fn resolve_shard(&self, key: &[u8]) -> Result<ResolvedShard, CoordinatorClientError> {
        let message = pb::ResolveShardRequest {
            key: key.to_vec().into(),
        };
        let reply = self
            .call("resolve_shard", false, |mut c| {
                let request = self.request(message.clone());
                async move { c.resolve_shard(request).await }
            })
            .await?
            .into_inner();
        let shard = reply.shard.as_ref().ok_or_else(|| missing("shard"))?;
        Ok(ResolvedShard {
            shard: ShardInfo::try_from(shard)?,
            replicas: reply
                .replicas
                .iter()
                .map(NodeInfo::try_from)
                .collect::<Result<_, _>>()?,
            map_version: MapVersion(reply.map_version),
        })
    }

    /// Where the coordinator leader is, according to any member.
    pub async fn leader(&self) -> Result<CoordinatorLeader, CoordinatorClientError> {
        let reply = self
            .call("get_coordinator_leader", false, |mut c| {
                let request = self.request(pb::GetCoordinatorLeaderRequest {});
                async move { c.get_coordinator_leader(request).await }
            })
            .await?
            .into_inner();
        if !reply.member_addresses.is_empty() {
            self.learn(&reply.member_addresses);
        }
        Ok(CoordinatorLeader {
            id: (reply.leader_id != 0).then_some(reply.leader_id),
            address: non_empty(reply.leader_address),
            admin_address: non_empty(reply.leader_admin_address),
            members: reply.member_addresses,
        })
    }
}
