//! Shard-map watch events, and the form in which they are shared by every
//! watcher.
//!
//! A [`MapEvent`] is what a watcher sees. A [`SharedEvent`] wraps one event
//! together with its `WatchShardMapEvent` protobuf encoding, built at most
//! once, on first use, and then reused by every gRPC watch stream that sends
//! the event. With a thousand streams open, one change is converted and
//! encoded once rather than a thousand times; the same holds for the
//! snapshot that every lagging watcher resynchronizes from.
//!
//! Out of scope: framing and sending (tonic does that, see
//! [`crate::watch_route`]).

use std::sync::{Arc, OnceLock};

use kvdb_core::proto::v1 as pb;
use kvdb_core::{MapVersion, ShardMap, ShardMapDelta};
use prost::Message;

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEvent {
    /// The full map; the watcher resumes after its version.
    Snapshot(Arc<ShardMap>),
    /// The change that produced the next map version.
    Delta(Arc<ShardMapDelta>),
}

impl MapEvent {
    /// The map version after this event.
    pub fn version(&self) -> MapVersion {
        match self {
            MapEvent::Snapshot(map) => map.version,
            MapEvent::Delta(delta) => delta.version,
        }
    }
}

impl From<&MapEvent> for pb::WatchShardMapEvent {
    fn from(event: &MapEvent) -> Self {
        let event = match event {
            MapEvent::Snapshot(map) => pb::watch_shard_map_event::Event::Snapshot((&**map).into()),
            MapEvent::Delta(delta) => pb::watch_shard_map_event::Event::Delta((&**delta).into()),
        };
        pb::WatchShardMapEvent { event: Some(event) }
    }
}

/// A [`MapEvent`] with its wire encoding, built once and shared; see the
/// module docs. Cheap to create: nothing is encoded until a stream asks.
#[derive(Debug)]
pub struct SharedEvent {
    event: MapEvent,
    encoded: OnceLock<Box<[u8]>>,
}

impl SharedEvent {
    /// Wraps `event`; its encoding is built on the first
    /// [`encoded`](Self::encoded) call.
    pub fn new(event: MapEvent) -> Self {
        Self {
            event,
            encoded: OnceLock::new(),
        }
    }

    /// A shared snapshot of `map`.
    pub fn snapshot(map: Arc<ShardMap>) -> Arc<Self> {
        Arc::new(Self::new(MapEvent::Snapshot(map)))
    }

    /// A shared delta.
    pub fn delta(delta: Arc<ShardMapDelta>) -> Arc<Self> {
        Arc::new(Self::new(MapEvent::Delta(delta)))
    }

    /// The event itself.
    pub fn event(&self) -> &MapEvent {
        &self.event
    }

    /// The map version after this event.
    pub fn version(&self) -> MapVersion {
        self.event.version()
    }

    /// The event as an encoded `pb::WatchShardMapEvent` (without gRPC
    /// framing). The first caller builds it; concurrent callers wait for
    /// that one build instead of repeating it.
    pub fn encoded(&self) -> &[u8] {
        self.encoded.get_or_init(|| {
            pb::WatchShardMapEvent::from(&self.event)
                .encode_to_vec()
                .into_boxed_slice()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::{NodeId, NodeInfo, NodeStatus};

    fn delta() -> Arc<ShardMapDelta> {
        let node = NodeInfo {
            id: NodeId(3),
            name: "node-3".into(),
            address: "127.0.0.1:7003".into(),
            zone: "z1".into(),
            status: NodeStatus::Draining,
            resp_address: String::new(),
        };
        Arc::new(ShardMapDelta {
            version: MapVersion(9),
            nodes: vec![node],
            shards: Vec::new(),
            removed_nodes: Vec::new(),
            removed_shards: Vec::new(),
        })
    }

    #[test]
    fn the_shared_encoding_decodes_to_the_event() {
        let delta = delta();
        let shared = SharedEvent::delta(delta.clone());
        assert_eq!(shared.version(), MapVersion(9));
        let decoded = pb::WatchShardMapEvent::decode(shared.encoded()).unwrap();
        let Some(pb::watch_shard_map_event::Event::Delta(wire)) = decoded.event else {
            panic!("expected a delta")
        };
        assert_eq!(ShardMapDelta::try_from(&wire).unwrap(), *delta);
    }

    #[test]
    fn the_encoding_is_built_once() {
        let shared = SharedEvent::snapshot(Arc::new(ShardMap::default()));
        let first = shared.encoded().as_ptr();
        assert_eq!(shared.encoded().as_ptr(), first);
    }
}
