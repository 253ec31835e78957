//! The smart client: follows the coordinators' shard map and talks to the
//! storage nodes directly, with no gateway hop.

use std::sync::Arc;

use kvdb_core::MapVersion;
use kvdb_core::Version;
use kvdb_core::cache::{CacheConfig, ShardMapCache};
use kvdb_core::coordinator_client::CoordinatorClient;
use kvdb_core::error::KvError;

use crate::api::{
    Kv, delete_request, delete_result, get_request, put_request, put_result, value_of,
};
use crate::executor::{Executor, ExecutorConfig};
use crate::options::{DeleteOptions, GetOptions, PutOptions, UpdateOptions};
use crate::scan::{ScanCursor, ScanPage};
use crate::txn::{Txn, TxnReply, txn_result};
use crate::update::{Action, Updated, update_request, update_result};
use crate::value::{ClientError, Value};
use crate::write_id::WriteIds;

/// A client that routes in-process. Cheap to clone; clones share the map,
/// the connections and the write identity.
#[derive(Clone)]
pub struct Client {
    executor: Executor,
    ids: Arc<WriteIds>,
}

impl Client {
    /// Connects to the coordinators (`host:port` each), starts following the
    /// shard map and waits for the first one.
    pub async fn connect(coordinators: &[String]) -> Result<Client, ClientError> {
        Client::connect_with(coordinators, ExecutorConfig::default()).await
    }

    /// [`Client::connect`] with explicit executor tuning.
    pub async fn connect_with(
        coordinators: &[String],
        config: ExecutorConfig,
    ) -> Result<Client, ClientError> {
        let source = CoordinatorClient::with_config(coordinators, config.coordinator_client())
            .map_err(|e| ClientError::BadEndpoint {
                endpoint: coordinators.join(","),
                reason: e.to_string(),
            })?;
        let (cache, _driver) = ShardMapCache::spawn(Arc::new(source), CacheConfig::default())
            .map_err(|e| ClientError::Kv(KvError::InvalidArgument(e.to_string())))?;
        let first = cache.wait_for_version(MapVersion(1));
        if tokio::time::timeout(config.default_timeout, first)
            .await
            .is_err()
        {
            return Err(ClientError::Kv(KvError::Unavailable(format!(
                "no shard map from coordinators {} within {:?}",
                coordinators.join(","),
                config.default_timeout
            ))));
        }
        Ok(Client {
            executor: Executor::new(cache, config),
            ids: Arc::new(WriteIds::new()),
        })
    }

    /// A client over an existing executor (the gateway shares one).
    #[cfg(feature = "wire")]
    pub fn from_executor(executor: Executor) -> Client {
        Client {
            executor,
            ids: Arc::new(WriteIds::new()),
        }
    }

    /// The executor, for sharing its map and connections.
    #[cfg(feature = "wire")]
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The shard-map cache this client routes with.
    pub fn cache(&self) -> &Arc<ShardMapCache> {
        self.executor.cache()
    }

    /// This client, counting into `registry` what it does, for an application that serves
    /// Prometheus metrics: `kvdb_client_requests_total{op,outcome}`,
    /// `kvdb_client_request_duration_seconds{op}`, `kvdb_client_retries_total{reason}` and
    /// `kvdb_client_shard_map_*` (see `kvdb_core::metrics`, whose `serve` can serve them).
    /// Clones made before this call do not count.
    pub fn with_metrics(mut self, registry: &mut kvdb_core::metrics::Registry) -> Client {
        self.executor.register_metrics(registry, "client");
        self
    }
}

impl Kv for Client {
    async fn get_with(
        &self,
        key: &[u8],
        options: GetOptions,
    ) -> Result<Option<Value>, ClientError> {
        let deadline = self.executor.deadline(options.timeout);
        let reply = self
            .executor
            .get(get_request(key, &options), deadline)
            .await?;
        Ok(value_of(reply))
    }

    async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> Result<Version, ClientError> {
        let deadline = self.executor.deadline(options.timeout);
        let ticket = self.ids.next();
        let req = put_request(key, value, &options, ticket.id());
        put_result(self.executor.put(req, deadline).await?)
    }

    async fn delete_with(&self, key: &[u8], options: DeleteOptions) -> Result<bool, ClientError> {
        let deadline = self.executor.deadline(options.timeout);
        let ticket = self.ids.next();
        let req = delete_request(key, &options, ticket.id());
        delete_result(self.executor.delete(req, deadline).await?)
    }

    async fn update_with(
        &self,
        key: &[u8],
        action: Action,
        options: UpdateOptions,
    ) -> Result<Updated, ClientError> {
        let deadline = self.executor.deadline(options.timeout);
        let ticket = self.ids.next();
        let req = update_request(key, &action, ticket.id());
        update_result(self.executor.update(req, deadline).await?)
    }

    async fn txn_with(
        &self,
        txn: &Txn,
        options: UpdateOptions,
    ) -> Result<Option<Vec<TxnReply>>, ClientError> {
        let deadline = self.executor.deadline(options.timeout);
        let ticket = self.ids.next();
        let req = txn.request(ticket.id());
        txn_result(self.executor.txn(req, deadline).await?)
    }

    async fn scan(&self, cursor: &ScanCursor, limit: u32) -> Result<ScanPage, ClientError> {
        let deadline = self.executor.deadline(None);
        let reply = self.executor.scan(cursor.request(limit), deadline).await?;
        Ok(ScanPage::of(cursor, reply))
    }
}
