//! The coordinator's Admin HTTP API: JSON over HTTP/1.1 for operators and
//! the `kvdb admin` command, over the same operations as the gRPC service.
//!
//! Paths and snake_case request bodies follow the Java original
//! (`POST /admin/nodes {"node_id","address","zone"}`,
//! `POST /admin/config/shard-init {"num_shards","replication_factor"}`, ...).
//! Every failure is a JSON `{"error": CODE, "message": ...}` with a status
//! derived from the code (see [`ApiError`]); a request that fails changes
//! nothing. Mutations sent to a follower are forwarded to the leader by the
//! [`Coordinator`]; when no leader can take them the answer is a 503 naming
//! the leader's admin address, when known.
//!
//! # Layout
//! - [`api`]: request/response types, shared by the server and [`AdminClient`].
//! - `routes`: the handlers.
//! - `body`: JSON-body and path extraction with JSON rejections.
//! - [`error`]: [`ApiError`] and its mapping to HTTP responses.
//! - `auth`: the optional bearer-token check.
//! - `GET /metrics`: the coordinator's metrics (see [`crate::metrics`]).
//! - `GET /ui` (`ui.html`): the status page, a read-only view of nodes, shards and operations.
//! - [`client`]: [`AdminClient`], the typed HTTP client.
//!
//! Out of scope: TLS, pagination (the map is small enough to list whole),
//! and serving reads linearizably (reads come from this member's applied map).

pub mod api;
pub(crate) use api::status_name;
mod auth;
mod body;
pub mod client;
pub mod error;
mod routes;
mod tls_listener;

#[cfg(test)]
mod tests;

use kvdb_core::auth::Tokens;
use kvdb_core::tls::ServerTls;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware;
use tokio::net::TcpListener;

pub use client::{AdminClient, AdminError};
pub use error::ApiError;

use crate::Coordinator;
use routes::AdminState;

/// Settings of the Admin API. Build with [`AdminConfig::default`] and
/// override fields; check with [`AdminConfig::validate`].
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// When set, every `/admin` route needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The cluster's gRPC tokens (see `kvdb_core::auth`): when there are any, every `/admin`
    /// route needs `token` or one of these with the `admin` or `cluster` role.
    pub tokens: Tokens,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
}

impl AdminConfig {
    /// Default for [`AdminConfig::max_body_bytes`]: 64 KiB, far above any
    /// valid request (the largest lists a few replicas).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

    /// Rejects settings the server cannot work with.
    pub fn validate(&self) -> Result<(), AdminConfigError> {
        if self.max_body_bytes == 0 {
            return Err(AdminConfigError::ZeroBodyLimit);
        }
        if self.token.as_deref().is_some_and(str::is_empty) {
            return Err(AdminConfigError::EmptyToken);
        }
        Ok(())
    }
}

/// Why an [`AdminConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminConfigError {
    /// `max_body_bytes` is 0, which would refuse every request body.
    #[error("the admin body limit must be positive")]
    ZeroBodyLimit,
    /// `token` is `Some("")`: use `None` to turn authentication off.
    #[error("the admin token must not be empty when set")]
    EmptyToken,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            tokens: Tokens::default(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tokens", &self.tokens)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// The Admin API as an axum router, ready for [`serve`] (or for
/// `tower::ServiceExt::oneshot` in tests).
pub fn router(coordinator: Coordinator, config: AdminConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let state = AdminState {
        metrics: Arc::new(crate::metrics::registry(coordinator.clone())),
        coordinator,
        config: Arc::new(config),
    };
    routes::routes()
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Serves `router` on an already-bound `listener`, over TLS when `tls` is given (loaded for
/// [`kvdb_core::tls::Protocol::Http1`]), until
/// `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            axum::serve(tls_listener::TlsListener::new(listener, tls)?, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
