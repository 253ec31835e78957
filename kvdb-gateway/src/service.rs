//! The `KvGateway` service: decode, execute, map the error; one operation per RPC or many
//! on a `Calls` stream (served by `kvdb_core::call_stream`).

use std::sync::Arc;
use std::time::Duration;

use kvdb_client::wire::{Executor, WriteIds, WriteTicket};
use kvdb_core::auth::{self, Role};
use kvdb_core::call_stream;
use kvdb_core::error::KvError;
use kvdb_core::metrics::RequestMetrics;
use kvdb_core::proto::v1 as pb;
use kvdb_core::proto::v1::call::Op;
use kvdb_core::proto::v1::kv_gateway_server::KvGateway;
use kvdb_core::proto::v1::reply::Result as Outcome;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Serves client requests by routing them with a shared executor.
#[derive(Clone)]
pub struct GatewayService {
    executor: Executor,
    /// Write ids for requests that arrive without one.
    ids: Arc<WriteIds>,
    max_timeout: Duration,
    /// Ends the `Calls` streams when the gateway stops.
    closing: call_stream::Closing,
    /// Counts and times every request, unary or on a `Calls` stream.
    requests: RequestMetrics,
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
            closing: call_stream::Closing::never(),
            requests: RequestMetrics::off(),
        }
    }

    /// Records every request in `requests`.
    pub fn with_metrics(mut self, requests: RequestMetrics) -> GatewayService {
        self.requests = requests;
        self
    }

    /// Ends every `Calls` stream once `closing` closes; the server cannot stop gracefully
    /// while one is open.
    pub fn with_closing(mut self, closing: call_stream::Closing) -> GatewayService {
        self.closing = closing;
        self
    }

    /// The request's own deadline (gRPC `grpc-timeout`) less a margin, or the executor's
    /// default, capped. The margin lets the answer reach a caller before its own timer
    /// fires, so that it learns why the request failed (say, `NO_SHARD_MAP`), not only that
    /// time ran out.
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        let timeout = grpc_timeout(request).map(|t| answer_within(t).min(self.max_timeout));
        self.executor.deadline(timeout)
    }

    /// One operation of a `Calls` stream, answered as its unary RPC; `timeout_ms` stands
    /// for the RPC's `grpc-timeout`.
    async fn answer(&self, op: Option<pb::call::Op>, timeout_ms: u64) -> Result<Outcome, KvError> {
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
        let deadline = self
            .executor
            .deadline(timeout.map(|t| t.min(self.max_timeout)));
        match op {
            Some(Op::Get(req)) => self.get(req, deadline).await.map(Outcome::Get),
            Some(Op::Put(req)) => self.put(req, deadline).await.map(Outcome::Put),
            Some(Op::Delete(req)) => self.delete(req, deadline).await.map(Outcome::Delete),
            Some(Op::Update(req)) => self.update(req, deadline).await.map(Outcome::Update),
            Some(Op::Txn(req)) => self.txn(req, deadline).await.map(Outcome::Txn),
            Some(Op::Scan(req)) => self.scan(req, deadline).await.map(Outcome::Scan),
            None => Err(KvError::InvalidArgument("call without an operation".into())),
        }
    }

    async fn get(
        &self,
        req: pb::GetRequest,
        deadline: Instant,
    ) -> Result<pb::GetResponse, KvError> {
        let executed = self.executor.get(req, deadline);
        self.requests.measure("get", executed).await
    }

    async fn put(
        &self,
        mut req: pb::PutRequest,
        deadline: Instant,
    ) -> Result<pb::PutResponse, KvError> {
        let _ticket = self.write_id(&mut req.write_id);
        let executed = self.executor.put(req, deadline);
        self.requests.measure("put", executed).await
    }

    async fn delete(
        &self,
        mut req: pb::DeleteRequest,
        deadline: Instant,
    ) -> Result<pb::DeleteResponse, KvError> {
        let _ticket = self.write_id(&mut req.write_id);
        let executed = self.executor.delete(req, deadline);
        self.requests.measure("delete", executed).await
    }

    async fn update(
        &self,
        mut req: pb::UpdateRequest,
        deadline: Instant,
    ) -> Result<pb::UpdateResponse, KvError> {
        let _ticket = self.write_id(&mut req.write_id);
        let executed = self.executor.update(req, deadline);
        self.requests.measure("update", executed).await
    }

    async fn txn(
        &self,
        mut req: pb::TxnRequest,
        deadline: Instant,
    ) -> Result<pb::TxnResponse, KvError> {
        let _ticket = self.write_id(&mut req.write_id);
        let executed = self.executor.txn(req, deadline);
        self.requests.measure("txn", executed).await
    }

    async fn scan(
        &self,
        req: pb::ScanRequest,
        deadline: Instant,
    ) -> Result<pb::ScanResponse, KvError> {
        let executed = self.executor.scan(req, deadline);
        self.requests.measure("scan", executed).await
    }

    /// Keeps a caller's own write id; gives a write without one the gateway's, with the
    /// ticket that settles it once dropped.
    fn write_id(&self, id: &mut Option<pb::WriteId>) -> Option<WriteTicket<'_>> {
        if id.as_ref().is_some_and(|w| !w.client_id.is_empty()) {
            return None;
        }
        let ticket = self.ids.next();
        *id = Some(ticket.id());
        Some(ticket)
    }
}

/// The part of a caller's timeout the gateway works in: all but a tenth, at most 50 ms.
fn answer_within(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(50)))
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
        reply(GatewayService::get(self, request.into_inner(), deadline).await)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(GatewayService::put(self, request.into_inner(), deadline).await)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(GatewayService::delete(self, request.into_inner(), deadline).await)
    }

    async fn update(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(GatewayService::update(self, request.into_inner(), deadline).await)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(GatewayService::txn(self, request.into_inner(), deadline).await)
    }

    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let deadline = self.deadline(&request);
        reply(GatewayService::scan(self, request.into_inner(), deadline).await)
    }

    type CallsStream = call_stream::RepliesStream;

    async fn calls(
        &self,
        request: Request<Streaming<pb::Calls>>,
    ) -> Result<Response<Self::CallsStream>, Status> {
        let service = Arc::new(self.clone());
        let role = Role::of(&request);
        Ok(Response::new(call_stream::serve(
            request.into_inner(),
            |message: pb::Calls| message.calls,
            move |call: pb::Call| {
                let service = service.clone();
                async move {
                    let outcome = match &call.op {
                        Some(Op::Put(_) | Op::Delete(_) | Op::Update(_) | Op::Txn(_)) => {
                            auth::check_write(role)
                        }
                        _ => Ok(()),
                    };
                    let outcome = match outcome {
                        Ok(()) => service.answer(call.op, call.timeout_ms).await,
                        Err(refused) => Err(refused),
                    };
                    call_stream::reply(call.id, outcome)
                }
            },
            self.closing.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_answers_before_the_callers_timer_fires() {
        let ms = Duration::from_millis;
        assert_eq!(answer_within(ms(300)), ms(270));
        assert_eq!(answer_within(Duration::from_secs(5)), ms(4_950));
        assert_eq!(answer_within(ms(5)), Duration::from_micros(4_500));
    }

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
