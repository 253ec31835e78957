//! Admin API tests over a real single-member coordinator in a temp dir.
//!
//! Error cases go through the router with `tower::ServiceExt::oneshot` so a
//! test can send any bytes; happy paths go through [`AdminClient`] against a
//! server on `127.0.0.1:0`. Every error test checks that the map version is
//! unchanged afterwards.

mod auth;
mod client;
mod errors;
mod split;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use kvdb_core::MapVersion;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::{AdminClient, AdminConfig, router, serve};
use crate::{Coordinator, CoordinatorConfig};

/// A single-member coordinator and the Admin API over it.
pub(super) struct Harness {
    pub coordinator: Coordinator,
    pub router: Router,
    _dir: TempDir,
}

impl Harness {
    /// Starts a coordinator and waits until it is ready.
    pub async fn start(config: AdminConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = start_coordinator(&dir).await;
        // A polled predicate with a deadline: readiness has no event to await.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !coordinator.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "coordinator never became ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let router = router(coordinator.clone(), config);
        Self {
            coordinator,
            router,
            _dir: dir,
        }
    }

    pub fn version(&self) -> MapVersion {
        self.coordinator.map().version
    }

    /// Sends one request with a JSON content type (when there is a body).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        self.send_request(request).await
    }

    /// Sends a prepared request and decodes the answer as JSON.
    pub async fn send_request(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON answer ({status}): {e}: {bytes:?}"));
        (status, json)
    }

    /// Sends a request that must fail with `status` and `code` and leave the
    /// map version unchanged.
    pub async fn expect_error(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let before = self.version();
        let (got, json) = self.send(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {json}");
        assert_eq!(json["error"], code, "{method} {path} {body:?}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(self.version(), before, "{method} {path} changed the map");
        json
    }

    /// Registers `node-1..=node-n` through the API.
    pub async fn register_nodes(&self, n: u16) {
        for i in 1..=n {
            let body = format!(
                r#"{{"node_id": "node-{i}", "address": "127.0.0.1:{}", "zone": "z{i}"}}"#,
                7000 + i
            );
            let (status, json) = self.send(Method::POST, "/admin/nodes", Some(&body)).await;
            assert_eq!(status, StatusCode::OK, "{json}");
        }
    }

    /// Registers three nodes and initializes 8 shards with RF 3.
    pub async fn initialized(config: AdminConfig) -> Self {
        let h = Self::start(config).await;
        h.register_nodes(3).await;
        let (status, json) = h
            .send(
                Method::POST,
                "/admin/config/shard-init",
                Some(r#"{"num_shards": 8, "replication_factor": 3}"#),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        h
    }

    /// Serves the router on `127.0.0.1:0`; returns a client of it and the
    /// handle that stops the server when dropped.
    pub async fn serve(&self) -> (AdminClient, oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = serve(listener, router, None, async move {
                let _ = stopped.await;
            })
            .await;
        });
        (AdminClient::new(&addr.to_string()).unwrap(), stop)
    }
}

/// A single member that bootstraps itself. Its gRPC address is never
/// dialed (there are no peers), so no listener is bound for it.
async fn start_coordinator(dir: &TempDir) -> Coordinator {
    let listen = "127.0.0.1:1".parse().unwrap();
    let config = CoordinatorConfig::new(1, listen, dir.path());
    Coordinator::start(config).await.unwrap()
}
