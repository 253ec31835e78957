//! Node commands: registration and status.

use kvdb_core::{NodeId, NodeInfo, NodeStatus};

use super::{Change, MetaState};
use crate::command::{CommandResult, Outcome};
use crate::error::CoordinatorError;

/// Longest accepted node name, zone or address.
const MAX_FIELD_LEN: usize = 255;

impl MetaState {
    pub(super) fn register_node(
        &mut self,
        name: String,
        address: String,
        zone: String,
        resp_address: Option<String>,
    ) -> CommandResult {
        validate_registration(&name, &address, &zone)?;
        if let Some(resp) = resp_address.as_deref().filter(|r| !r.is_empty()) {
            validate_address("RESP address", resp)?;
        }
        if let Some(other) = self
            .map
            .nodes
            .values()
            .find(|n| n.address == address && n.name != name)
        {
            return Err(CoordinatorError::AddressInUse {
                address,
                node: other.name.clone(),
            });
        }
        let existing = self.map.nodes.values().find(|n| n.name == name).cloned();
        // A registration that does not say (the Admin API's, or one logged before RESP
        // addresses) keeps the one on record.
        let resp_address = resp_address.unwrap_or_else(|| {
            existing
                .as_ref()
                .map(|n| n.resp_address.clone())
                .unwrap_or_default()
        });
        let node = match existing {
            Some(node)
                if node.address == address
                    && node.zone == zone
                    && node.resp_address == resp_address =>
            {
                return Ok(Outcome::Node {
                    node,
                    version: self.version(),
                });
            }
            Some(node) => NodeInfo {
                address,
                zone,
                resp_address,
                ..node
            },
            None => NodeInfo {
                id: self.next_node_id(),
                name,
                address,
                zone,
                status: NodeStatus::Alive,
                resp_address,
            },
        };
        let version = self.commit(Change {
            nodes: vec![node.clone()],
            shards: Vec::new(),
        });
        Ok(Outcome::Node { node, version })
    }

    pub(super) fn set_node_status(&mut self, id: NodeId, status: NodeStatus) -> CommandResult {
        let node = self
            .map
            .nodes
            .get(&id)
            .ok_or_else(|| CoordinatorError::NodeNotFound(id.to_string()))?;
        if node.status == status {
            return Ok(Outcome::Version(self.version()));
        }
        if status == NodeStatus::Draining {
            self.check_drain(id)?;
        }
        let node = NodeInfo {
            status,
            ..node.clone()
        };
        let version = self.commit(Change {
            nodes: vec![node],
            shards: Vec::new(),
        });
        Ok(Outcome::Version(version))
    }

    /// A drain must leave enough alive nodes to hold every shard's
    /// replicas, or it could never finish.
    fn check_drain(&self, draining: NodeId) -> Result<(), CoordinatorError> {
        let Some(init) = self.init else {
            return Ok(());
        };
        let alive = self
            .map
            .alive_nodes()
            .into_iter()
            .filter(|&n| n != draining)
            .count() as u32;
        if alive < init.replication_factor {
            return Err(CoordinatorError::NotEnoughNodes {
                alive,
                replication_factor: init.replication_factor,
            });
        }
        Ok(())
    }

    /// Ids start at 1 (0 means "no node" on the wire) and are never reused.
    fn next_node_id(&self) -> NodeId {
        self.map
            .nodes
            .keys()
            .next_back()
            .map_or(NodeId(1), |last| NodeId(last.0 + 1))
    }
}

fn validate_registration(name: &str, address: &str, zone: &str) -> Result<(), CoordinatorError> {
    let bad = |why: String| Err(CoordinatorError::InvalidArgument(why));
    if name.is_empty() || name.len() > MAX_FIELD_LEN || name.chars().any(char::is_whitespace) {
        return bad(format!(
            "node name must be 1..={MAX_FIELD_LEN} characters without spaces, got {name:?}"
        ));
    }
    if zone.len() > MAX_FIELD_LEN {
        return bad(format!("zone is longer than {MAX_FIELD_LEN} characters"));
    }
    validate_address("address", address)
}

fn validate_address(what: &str, address: &str) -> Result<(), CoordinatorError> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || address.len() > MAX_FIELD_LEN || address.chars().any(char::is_whitespace) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "{what} must be host:port, got {address:?}"
        )));
    }
    Ok(())
}
