//! The `KvGateway` service: decode, execute, map the error.

use std::sync::Arc;
use std::time::Duration;

use kvdb_client::{Executor, WriteIds};
use kvdb_core::error::KvError;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::kv_gateway_server::KvGateway;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// Serves client requests by routing them with a shared executor.
#[derive(Clone)]
pub struct GatewayService {
    executor: Executor,
    /// Write ids for requests that arrive without one.
    ids: Arc<WriteIds>,
    max_timeout: Duration,
}

impl GatewayService {
    /// Longest deadline a request may ask for; longer ones are capped.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

    /// A service over `executor`.
    pub fn new(executor: Executor) -> GatewayService {
        GatewayService {
            executor,
            ids: Arc::new(WriteIds::new()),
            max_timeout: Self::MAX_TIMEOUT,
        }
    }

    /// The request's own deadline (gRPC `grpc-timeout`), or the executor's
    /// default, capped.
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        let timeout = grpc_timeout(request).map(|t| t.min(self.max_timeout));
        self.executor.deadline(timeout)
    }

    fn write_id(&self, id: Option<pb::WriteId>) -> pb::WriteId {
        id.filter(|w| !w.client_id.is_empty())
            .unwrap_or_else(|| self.ids.next())
    }
}

/// Parses the `grpc-timeout` header (e.g. `250m`, `5S`).
fn grpc_timeout<T>(request: &Request<T>) -> Option<Duration> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn reply<T>(result: Result<T, KvError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl KvGateway for GatewayService {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(self.executor.get(request.into_inner(), deadline).await)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let deadline = self.deadline(&request);
        let mut req = request.into_inner();
        req.write_id = Some(self.write_id(req.write_id.take()));
        reply(self.executor.put(req, deadline).await)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let deadline = self.deadline(&request);
        let mut req = request.into_inner();
        req.write_id = Some(self.write_id(req.write_id.take()));
        reply(self.executor.delete(req, deadline).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&r), Some(Duration::from_millis(250)));
        r.metadata_mut()
            .insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(grpc_timeout(&r), Some(Duration::from_secs(3)));
        r.metadata_mut()
            .insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&r), None);
    }
}
