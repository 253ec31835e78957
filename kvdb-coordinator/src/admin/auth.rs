//! Optional bearer-token check for the `/admin` routes.
//!
//! When [`super::AdminConfig::token`] is set, or the cluster has gRPC tokens
//! ([`super::AdminConfig::tokens`], which then also open the API to tokens of the
//! `admin` and `cluster` roles), every request whose path is
//! `/admin` or below it (unknown routes included, so the API's shape is not
//! probeable without the token) must carry `Authorization: Bearer <token>`.
//! The comparison takes the same time wherever the tokens differ.
//! `/healthz`, `/readyz` and `/metrics` stay open for probes and scrapers, and `/ui` (a
//! static page whose script reads the `/admin` routes with the token its viewer enters).
//!
//! Out of scope: TLS (put the API behind a TLS-terminating proxy, or on a
//! private network, when the token must not travel in clear), and multiple
//! tokens or roles.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kvdb_core::auth::{Need, bearer_token};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::routes::AdminState;

/// Path prefix guarded by the token.
const GUARDED_PREFIX: &str = "/admin";

/// Middleware: rejects guarded requests without the configured token.
pub(crate) async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let config = &state.config;
    let guarded = config.token.is_some() || !config.tokens.is_empty();
    if guarded && is_guarded(request.uri().path()) {
        let by_token = config
            .token
            .as_deref()
            .is_some_and(|expected| presents(&request, expected));
        let by_role = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| config.tokens.role(value.as_bytes()))
            .is_some_and(|role| role.grants(Need::Admin));
        if !by_token && !by_role {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

fn is_guarded(path: &str) -> bool {
    path.strip_prefix(GUARDED_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether the request's `Authorization` header carries `expected`.
fn presents(request: &Request, expected: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    // `ct_eq` on slices of different lengths is false without comparing
    // contents; the token's length is not treated as a secret.
    bearer_token(value.as_bytes()).is_some_and(|token| bool::from(token.ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_paths_are_guarded() {
        assert!(is_guarded("/admin"));
        assert!(is_guarded("/admin/nodes"));
        assert!(is_guarded("/admin/unknown/route"));
        assert!(!is_guarded("/administrator"));
        assert!(!is_guarded("/healthz"));
        assert!(!is_guarded("/readyz"));
        assert!(!is_guarded("/metrics"));
    }

    fn with_auth(value: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn token_must_match_exactly() {
        assert!(presents(&with_auth("Bearer s3cret"), "s3cret"));
        assert!(presents(&with_auth("bearer s3cret"), "s3cret"));
        assert!(!presents(&with_auth("Bearer s3cre"), "s3cret"));
        assert!(!presents(&with_auth("Bearer s3cret2"), "s3cret"));
        assert!(!presents(&with_auth("Basic s3cret"), "s3cret"));
        assert!(!presents(&with_auth("Bearer"), "s3cret"));
        let none = Request::new(axum::body::Body::empty());
        assert!(!presents(&none, "s3cret"));
    }
}
