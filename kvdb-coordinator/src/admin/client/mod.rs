//! [`AdminClient`]: a small typed HTTP client of the Admin API, used by the
//! `kvdb admin` command and by tests.
//!
//! One method per route, returning the same [`super::api`] types the server
//! serializes. Every non-2xx answer becomes [`AdminError::Api`] with the
//! status, the server's code and message, and the leader's admin address on
//! a 503, so callers branch on data and never parse messages.
//!
//! It speaks HTTP/1.1, over TLS for `https://` URLs once given the CA to trust
//! ([`AdminClient::with_tls`]).
//!
//! Out of scope: following the leader hint automatically (the CLI reports it;
//! an operator or script decides where to retry).

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kvdb_core::tls::rustls::ClientConfig;
use kvdb_core::tls::{ClientTls, http_client_config};
use kvdb_core::{Epoch, NodeStatus, ShardId, Slot};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod error;

pub use self::error::AdminError;

use self::error::{api_error, decode, transport};
use crate::admin::api::{
    ClusterView, CoordinatorMemberRequest, CoordinatorMembers, MutationResponse, NodeList,
    NodeSelector, NodeStatusRequest, NodeView, OperationsView, RegisterNodeRequest,
    SchedulerRequest, ShardInitRequest, ShardLeaderRequest, ShardList, ShardReplicasRequest,
    ShardSplitRequest, ShardSplitResponse, ShardView,
};

/// A typed client of one coordinator's Admin API. Cheap to clone.
#[derive(Clone)]
pub struct AdminClient {
    /// `http(s)://host:port`, without a trailing slash.
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AdminClient {
    /// Default time allowed for one call, connection included.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest response body read (a full shard list of 16384 shards fits).
    pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

    /// A client of the Admin API at `base_url` (`http://host:port`,
    /// `https://host:port` with [`Self::with_tls`], or just `host:port`).
    pub fn new(base_url: &str) -> Result<Self, AdminError> {
        let with_scheme = if base_url.contains("://") {
            base_url.to_owned()
        } else {
            format!("http://{base_url}")
        };
        let invalid = |reason: &str| AdminError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = with_scheme.parse().map_err(|_| invalid("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(invalid("only http:// and https:// are supported"));
        }
        if uri.authority().is_none() {
            return Err(invalid("missing host"));
        }
        Ok(Self {
            base: with_scheme.trim_end_matches('/').to_owned(),
            token: None,
            timeout: Self::DEFAULT_TIMEOUT,
            http: http_client(
                http_client_config(None).expect("a client configuration without files loads"),
            ),
        })
    }

    /// Speaks TLS to `https://` URLs, trusting `tls`'s CA and presenting its client
    /// certificate, if any. A plain `host:port` becomes `https://host:port`.
    pub fn with_tls(mut self, tls: &ClientTls) -> Result<Self, AdminError> {
        let config = http_client_config(Some(tls)).map_err(|e| AdminError::InvalidUrl {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if let Some(rest) = self.base.strip_prefix("http://") {
            self.base = format!("https://{rest}");
        }
        self.http = http_client(config);
        Ok(self)
    }

    /// Sends `Authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the time allowed for one call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET /admin/cluster`.
    pub async fn cluster(&self) -> Result<ClusterView, AdminError> {
        self.get("/admin/cluster").await
    }

    /// `GET /admin/nodes`.
    pub async fn nodes(&self) -> Result<NodeList, AdminError> {
        self.get("/admin/nodes").await
    }

    /// `GET /admin/nodes/{id}`, by numeric id or name.
    pub async fn node(&self, node: &NodeSelector) -> Result<NodeView, AdminError> {
        self.get(&format!("/admin/nodes/{}", segment(&node.to_string())))
            .await
    }

    /// `POST /admin/nodes`: registers `name` at `address` (or updates it).
    pub async fn register_node(
        &self,
        name: &str,
        address: &str,
        zone: Option<&str>,
    ) -> Result<NodeView, AdminError> {
        let body = RegisterNodeRequest {
            node_id: name.to_owned(),
            address: address.to_owned(),
            zone: zone.map(str::to_owned),
        };
        self.post("/admin/nodes", &body).await
    }

    /// `POST /admin/nodes/{id}/status`.
    pub async fn set_node_status(
        &self,
        node: &NodeSelector,
        status: NodeStatus,
    ) -> Result<MutationResponse, AdminError> {
        let path = format!("/admin/nodes/{}/status", segment(&node.to_string()));
        self.post(&path, &NodeStatusRequest { status }).await
    }

    /// `POST /admin/config/shard-init`.
    pub async fn init_shards(
        &self,
        num_shards: u32,
        replication_factor: u32,
    ) -> Result<MutationResponse, AdminError> {
        let body = ShardInitRequest {
            num_shards,
            replication_factor,
        };
        self.post("/admin/config/shard-init", &body).await
    }

    /// `GET /admin/shards`.
    pub async fn shards(&self) -> Result<ShardList, AdminError> {
        self.get("/admin/shards").await
    }

    /// `GET /admin/shards/{id}`.
    pub async fn shard(&self, shard: ShardId) -> Result<ShardView, AdminError> {
        self.get(&format!("/admin/shards/{shard}")).await
    }

    /// `POST /admin/shards/{id}/replicas`: starts moving `shard` to
    /// `replicas`; refused if `epoch` is given and no longer current.
    pub async fn set_shard_replicas(
        &self,
        shard: ShardId,
        replicas: Vec<NodeSelector>,
        epoch: Option<Epoch>,
    ) -> Result<ShardView, AdminError> {
        let body = ShardReplicasRequest { replicas, epoch };
        self.post(&format!("/admin/shards/{shard}/replicas"), &body)
            .await
    }

    /// `POST /admin/shards/{id}/leader`: asks `shard` to move its leadership
    /// to `node`.
    pub async fn set_shard_leader(
        &self,
        shard: ShardId,
        node: NodeSelector,
        epoch: Epoch,
    ) -> Result<MutationResponse, AdminError> {
        let body = ShardLeaderRequest {
            node_id: node,
            epoch,
        };
        self.post(&format!("/admin/shards/{shard}/leader"), &body)
            .await
    }

    /// `POST /admin/shards/{id}/split`: splits `shard` at slot `at` (its middle slot when
    /// `None`); refused if `epoch` is given and no longer current. The new shard is
    /// `"splitting"` until its first leader reports.
    pub async fn split_shard(
        &self,
        shard: ShardId,
        at: Option<Slot>,
        epoch: Option<Epoch>,
    ) -> Result<ShardSplitResponse, AdminError> {
        let body = ShardSplitRequest {
            at: at.map(|slot| u32::from(slot.0)),
            epoch,
        };
        self.post(&format!("/admin/shards/{shard}/split"), &body)
            .await
    }

    /// `GET /admin/operations`: what the scheduler is doing.
    pub async fn operations(&self) -> Result<OperationsView, AdminError> {
        self.get("/admin/operations").await
    }

    /// `POST /admin/scheduler`: pauses (`true`) or resumes the scheduler.
    pub async fn set_scheduler_paused(&self, paused: bool) -> Result<MutationResponse, AdminError> {
        self.post("/admin/scheduler", &SchedulerRequest { paused })
            .await
    }

    /// `GET /admin/coordinators`: the coordinator group's members.
    pub async fn coordinators(&self) -> Result<CoordinatorMembers, AdminError> {
        self.get("/admin/coordinators").await
    }

    /// `POST /admin/coordinators`: adds member `id` at gRPC `address` (on the leader).
    pub async fn add_coordinator(
        &self,
        id: u64,
        address: &str,
    ) -> Result<CoordinatorMembers, AdminError> {
        let body = CoordinatorMemberRequest {
            id,
            address: address.to_owned(),
        };
        self.post("/admin/coordinators", &body).await
    }

    /// `DELETE /admin/coordinators/{id}`: removes member `id` (on the leader).
    pub async fn remove_coordinator(&self, id: u64) -> Result<CoordinatorMembers, AdminError> {
        let (status, url, bytes) = self
            .call(Method::DELETE, &format!("/admin/coordinators/{id}"), None)
            .await?;
        decode(&url, status, &bytes)
    }

    /// `GET /healthz`: succeeds when the process answers.
    pub async fn health(&self) -> Result<(), AdminError> {
        self.call(Method::GET, "/healthz", None).await.map(drop)
    }

    /// `GET /readyz`: succeeds when the coordinator has a leader and has
    /// caught up; otherwise an [`AdminError::Api`] with status 503.
    pub async fn ready(&self) -> Result<(), AdminError> {
        self.call(Method::GET, "/readyz", None).await.map(drop)
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, AdminError> {
        let (status, url, bytes) = self.call(Method::GET, "/metrics", None).await?;
        String::from_utf8(bytes.to_vec()).map_err(|_| AdminError::Decode {
            url,
            status,
            reason: "metrics are not UTF-8".into(),
        })
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, AdminError> {
        let (status, url, bytes) = self.call(Method::GET, path, None).await?;
        decode(&url, status, &bytes)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, AdminError> {
        // Serializing the plain request structs cannot fail.
        let body = serde_json::to_vec(body).unwrap_or_default();
        let (status, url, bytes) = self.call(Method::POST, path, Some(body)).await?;
        decode(&url, status, &bytes)
    }

    /// Sends one request; a 2xx answer yields its status, URL and body,
    /// anything else an error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, String, Bytes), AdminError> {
        let url = format!("{}{path}", self.base);
        let request = self.request(method, &url, body)?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| transport(&url, e))?;
            let status = response.status();
            let limited = Limited::new(response.into_body(), Self::MAX_RESPONSE_BYTES);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| transport(&url, e))?
                .to_bytes();
            Ok::<_, AdminError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AdminError::Timeout {
                url: url.clone(),
                timeout: self.timeout,
            })??;
        if !status.is_success() {
            return Err(api_error(&url, status, &bytes));
        }
        Ok((status, url, bytes))
    }

    fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, AdminError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| AdminError::InvalidRequest {
                url: url.to_owned(),
                reason: e.to_string(),
            })
    }
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Percent-encodes a path segment (node names are free-form strings).
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The HTTP client over `tls` for `https://` URLs, and in clear for `http://` ones.
fn http_client(tls: ClientConfig) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_host_port_and_http_schemes_only() {
        let client = AdminClient::new("127.0.0.1:8080").unwrap();
        assert_eq!(client.base, "http://127.0.0.1:8080");
        let client = AdminClient::new("http://localhost:8080/").unwrap();
        assert_eq!(client.base, "http://localhost:8080");
        let client = AdminClient::new("https://localhost:8080").unwrap();
        assert_eq!(client.base, "https://localhost:8080");
        assert!(matches!(
            AdminClient::new("ftp://localhost:8080"),
            Err(AdminError::InvalidUrl { .. })
        ));
        assert!(AdminClient::new("http://").is_err());
    }

    #[test]
    fn node_names_are_encoded_as_one_segment() {
        assert_eq!(segment("node-1"), "node-1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
