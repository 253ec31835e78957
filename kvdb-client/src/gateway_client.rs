//! The thin client: every request goes to a gateway, which routes it. Requests share one
//! call stream to the gateway (`call_link`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kvdb_core::Version;
use kvdb_core::auth::{AuthChannel, Credentials};
use kvdb_core::call_link::MAX_CLIENT_MESSAGE_BYTES;
use kvdb_core::error::KvError;
use kvdb_core::proto::v1::kv_gateway_client::KvGatewayClient;
use tokio::time::Instant;

use crate::api::{
    Kv, delete_request, delete_result, get_request, put_request, put_result, value_of,
};
use crate::call_link::GatewayLink;
use crate::options::{DeleteOptions, GetOptions, PutOptions, UpdateOptions};
use crate::scan::{ScanCursor, ScanPage};
use crate::txn::{Txn, TxnReply, txn_result};
use crate::update::{Action, Updated, update_request, update_result};
use crate::value::{ClientError, Value};
use crate::write_id::WriteIds;
use kvdb_core::backoff::Backoff;

/// A client of one gateway. The gateway handles routing errors; this client
/// retries only transport failures (with the same write id, so a retried
/// write is applied once), inside the request's deadline.
#[derive(Clone)]
pub struct GatewayClient {
    inner: KvGatewayClient<AuthChannel>,
    /// Opened on first use, inside the caller's runtime.
    link: Arc<OnceLock<GatewayLink>>,
    ids: Arc<WriteIds>,
    timeout: Duration,
    backoff: Backoff,
}

impl GatewayClient {
    /// Default deadline of a request.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A client of the gateway at `address` (`host:port`); connects lazily.
    pub fn connect(address: &str) -> Result<GatewayClient, ClientError> {
        Self::connect_with(address, Credentials::default())
    }

    /// [`GatewayClient::connect`], presenting `credentials` (a token the gateway accepts).
    pub fn connect_with(
        address: &str,
        credentials: Credentials,
    ) -> Result<GatewayClient, ClientError> {
        let endpoint = credentials
            .endpoint(address)
            .map_err(|e| ClientError::BadEndpoint {
                endpoint: address.to_owned(),
                reason: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        Ok(GatewayClient {
            inner: KvGatewayClient::new(credentials.on(endpoint.connect_lazy()))
                .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
            link: Arc::default(),
            ids: Arc::new(WriteIds::new()),
            timeout: Self::DEFAULT_TIMEOUT,
            backoff: Backoff::DEFAULT,
        })
    }

    /// Sets the deadline of requests that name none.
    pub fn with_timeout(mut self, timeout: Duration) -> GatewayClient {
        self.timeout = timeout;
        self
    }

    async fn call<T, F, Fut>(&self, timeout: Option<Duration>, mut send: F) -> Result<T, KvError>
    where
        F: FnMut(GatewayLink, u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, KvError>>,
    {
        let link = self
            .link
            .get_or_init(|| GatewayLink::open(self.inner.clone()));
        let deadline = Instant::now() + timeout.unwrap_or(self.timeout);
        let mut attempt = 0;
        let mut last = KvError::DeadlineExceeded;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Report why the gateway could not be reached, not just that
                // time ran out.
                return Err(last);
            }
            // The gateway gives up when the caller would; at least a millisecond, since 0
            // means its default.
            let left_ms = (left.as_millis() as u64).max(1);
            let error = match tokio::time::timeout(left, send(link.clone(), left_ms)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(error)) => error,
                Err(_) => return Err(KvError::DeadlineExceeded),
            };
            if !matches!(error, KvError::Unavailable(_)) {
                return Err(error);
            }
            last = error;
            let wake = (Instant::now() + self.backoff.delay(attempt)).min(deadline);
            tokio::time::sleep_until(wake).await;
            attempt += 1;
        }
    }
}

impl Kv for GatewayClient {
    async fn get_with(
        &self,
        key: &[u8],
        options: GetOptions,
    ) -> Result<Option<Value>, ClientError> {
        let req = get_request(key, &options);
        let reply = self
            .call(options.timeout, |link, left_ms| {
                let req = req.clone();
                async move { link.get(req, left_ms).await }
            })
            .await?;
        Ok(value_of(reply))
    }

    async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> Result<Version, ClientError> {
        let ticket = self.ids.next();
        let req = put_request(key, value, &options, ticket.id());
        let reply = self
            .call(options.timeout, |link, left_ms| {
                let req = req.clone();
                async move { link.put(req, left_ms).await }
            })
            .await?;
        put_result(reply)
    }

    async fn delete_with(&self, key: &[u8], options: DeleteOptions) -> Result<bool, ClientError> {
        let ticket = self.ids.next();
        let req = delete_request(key, &options, ticket.id());
        let reply = self
            .call(options.timeout, |link, left_ms| {
                let req = req.clone();
                async move { link.delete(req, left_ms).await }
            })
            .await?;
        delete_result(reply)
    }

    async fn update_with(
        &self,
        key: &[u8],
        action: Action,
        options: UpdateOptions,
    ) -> Result<Updated, ClientError> {
        let ticket = self.ids.next();
        let req = update_request(key, &action, ticket.id());
        let reply = self
            .call(options.timeout, |link, left_ms| {
                let req = req.clone();
                async move { link.update(req, left_ms).await }
            })
            .await?;
        update_result(reply)
    }

    async fn txn_with(
        &self,
        txn: &Txn,
        options: UpdateOptions,
    ) -> Result<Option<Vec<TxnReply>>, ClientError> {
        let ticket = self.ids.next();
        let req = txn.request(ticket.id());
        let reply = self
            .call(options.timeout, |link, left_ms| {
                let req = req.clone();
                async move { link.txn(req, left_ms).await }
            })
            .await?;
        txn_result(reply)
    }

    async fn scan(&self, cursor: &ScanCursor, limit: u32) -> Result<ScanPage, ClientError> {
        let req = cursor.request(limit);
        let reply = self
            .call(None, |link, left_ms| {
                let req = req.clone();
                async move { link.scan(req, left_ms).await }
            })
            .await?;
        Ok(ScanPage::of(cursor, reply))
    }
}
