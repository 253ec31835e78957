//! [`CoordinatorClient`] as a [`ShardMapSource`]: `fetch` is GetShardMap and
//! `watch` is WatchShardMap, at any member.

use futures::StreamExt;
use futures::future::BoxFuture;
use tonic::Status;

use crate::cache::{ShardMapSource, SourceError, WatchEvent, WatchStream};
use crate::convert::ConvertError;
use crate::ids::MapVersion;
use crate::proto::v1 as pb;
use crate::shard_map::{ShardMap, ShardMapDelta};

use super::{CoordinatorClient, CoordinatorClientError};

fn source_error(error: CoordinatorClientError) -> SourceError {
    match error {
        CoordinatorClientError::Invalid(e) => SourceError::Invalid(e),
        other => SourceError::Unavailable {
            reason: other.to_string(),
        },
    }
}

/// One watch event in core's terms.
fn decode(event: pb::WatchShardMapEvent) -> Result<WatchEvent, SourceError> {
    use pb::watch_shard_map_event::Event;
    match event.event {
        Some(Event::Snapshot(map)) => Ok(WatchEvent::Snapshot(ShardMap::try_from(&map)?)),
        Some(Event::Delta(delta)) => Ok(WatchEvent::Delta(ShardMapDelta::try_from(&delta)?)),
        None => Err(SourceError::Invalid(ConvertError {
            what: "watch event",
            why: "empty".into(),
        })),
    }
}

impl ShardMapSource for CoordinatorClient {
    fn fetch(
        &self,
        newer_than: MapVersion,
    ) -> BoxFuture<'_, Result<Option<ShardMap>, SourceError>> {
        Box::pin(async move { self.get_shard_map(newer_than).await.map_err(source_error) })
    }

    fn watch(&self, from: MapVersion) -> BoxFuture<'_, Result<WatchStream, SourceError>> {
        Box::pin(async move {
            let timeout = self.inner.config.request_timeout;
            let message = pb::WatchShardMapRequest {
                from_version: from.0,
            };
            // No call timeout: the stream lives as long as the watch. Only
            // the wait for the stream to open is bounded.
            let response = self
                .call("watch_shard_map", false, |mut c| async move {
                    let opened = c.watch_shard_map(tonic::Request::new(message));
                    match tokio::time::timeout(timeout, opened).await {
                        Ok(result) => result,
                        Err(_) => Err(Status::deadline_exceeded("watch did not open in time")),
                    }
                })
                .await
                .map_err(source_error)?;
            let events = response.into_inner().map(|item| match item {
                Ok(event) => decode(event),
                Err(status) => Err(SourceError::Unavailable {
                    reason: format!("watch stream: {:?}: {}", status.code(), status.message()),
                }),
            });
            Ok(events.boxed())
        })
    }
}
