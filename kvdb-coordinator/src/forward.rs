//! Forwarding from a follower to the coordinator leader.
//!
//! Commands take one path: the Raft transport's forwarded client write
//! (`kvdb_core::raft::transport::forward`, called by `Coordinator::execute`), which
//! carries the command as it is logged and brings the leader's own outcome back. A node's
//! heartbeat is not a command (the leader only notes the time), so it is relayed here, over
//! the leader's Coordinator service, with [`FORWARDED_HEADER`]: a member receiving it never
//! forwards again, so a heartbeat whose leader changed on the way ends in `NotLeader`
//! instead of bouncing between members. The leader's exact [`CoordinatorError`] comes back
//! unchanged.

use std::time::Duration;

use kvdb_core::auth::AuthChannel;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::coordinator_client::CoordinatorClient;
use kvdb_core::shard_stats::ShardStats;
use kvdb_core::{MapVersion, NodeId};
use tonic::metadata::MetadataValue;

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

/// Relays a node's heartbeat, with its replicas' figures, to the leader behind `channel`.
pub async fn heartbeat(
    channel: AuthChannel,
    node: NodeId,
    stats: &[ShardStats],
) -> Result<MapVersion, CoordinatorError> {
    let mut client = CoordinatorClient::new(channel);
    let message = pb::HeartbeatRequest {
        node_id: node.0,
        shards: stats.iter().map(pb::ShardStats::from).collect(),
    };
    let reply = client.heartbeat(request(message)).await?.into_inner();
    Ok(MapVersion(reply.map_version))
}
