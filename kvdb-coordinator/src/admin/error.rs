//! The one mapping of Admin API failures to HTTP responses.
//!
//! Every failure, whether the coordinator refused the operation or the
//! request never reached it (bad JSON, oversized body, missing token, unknown
//! route), becomes a JSON [`ErrorBody`] with a stable code. Coordinator
//! errors keep [`CoordinatorError::code`]; the HTTP status is derived from
//! that code so gRPC and HTTP never disagree about what kind of error it is.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::ErrorBody;
use crate::error::{CoordinatorError, codes};

/// Codes for failures that happen before the coordinator is called.
pub mod admin_codes {
    /// The body is not JSON at all.
    pub const MALFORMED_JSON: &str = "MALFORMED_JSON";
    /// The body is over the configured limit.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// The body is not declared as `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    /// Missing or wrong bearer token.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// The route exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
}

/// Header naming the coordinator leader's admin address on a 503.
pub const LEADER_HINT_HEADER: &str = "x-leader-hint";

/// Why an Admin API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The coordinator refused or could not perform the operation.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The body is not syntactically valid JSON.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The body is JSON but not the expected shape (missing, unknown or
    /// mistyped field, bad value), or a path parameter is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body exceeds the limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The body is not declared as JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// A bearer token is required and was missing or wrong.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such route.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route does not accept this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// This member has no leader or has not caught up with it (`/readyz`).
    #[error("coordinator not ready: no leader known or not caught up")]
    NotReady {
        /// The leader's admin address, when known.
        leader: Option<String>,
    },
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Coordinator(err) => match err.code() {
                codes::INVALID_ARGUMENT => StatusCode::BAD_REQUEST,
                codes::NOT_FOUND => StatusCode::NOT_FOUND,
                codes::CONFLICT => StatusCode::CONFLICT,
                codes::NOT_LEADER | codes::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::MalformedJson(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable code carried in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Coordinator(err) => err.code(),
            Self::MalformedJson(_) => admin_codes::MALFORMED_JSON,
            Self::InvalidRequest(_) => codes::INVALID_ARGUMENT,
            Self::PayloadTooLarge { .. } => admin_codes::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => admin_codes::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => admin_codes::UNAUTHORIZED,
            Self::RouteNotFound(_) => codes::NOT_FOUND,
            Self::MethodNotAllowed => admin_codes::METHOD_NOT_ALLOWED,
            Self::NotReady { .. } => codes::UNAVAILABLE,
        }
    }

    /// The leader's admin address, for errors that should be retried there.
    fn leader_hint(&self) -> Option<&str> {
        match self {
            Self::Coordinator(CoordinatorError::NotLeader { leader_admin, .. }) => {
                leader_admin.as_deref()
            }
            Self::NotReady { leader } => leader.as_deref(),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let leader = self.leader_hint().map(str::to_owned);
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
            leader: leader.clone(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = leader.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(LEADER_HINT_HEADER, value);
        }
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BusyReason;
    use kvdb_core::{Epoch, ShardId};

    #[test]
    fn coordinator_errors_map_to_statuses_by_code() {
        let cases = [
            (
                CoordinatorError::InvalidArgument("x".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                CoordinatorError::ShardNotFound(ShardId(3)),
                StatusCode::NOT_FOUND,
            ),
            (
                CoordinatorError::EpochMismatch {
                    shard: ShardId(1),
                    expected: Epoch(1),
                    current: Epoch(2),
                },
                StatusCode::CONFLICT,
            ),
            (
                CoordinatorError::ShardBusy {
                    shard: ShardId(3),
                    reason: BusyReason::SplitChild { child: ShardId(8) },
                },
                StatusCode::CONFLICT,
            ),
            (
                CoordinatorError::Unavailable("no quorum".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                CoordinatorError::Internal("bug".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).status(), status);
        }
    }

    #[test]
    fn not_leader_names_the_leader_admin_address() {
        let response = ApiError::from(CoordinatorError::NotLeader {
            leader_id: Some(2),
            leader_grpc: Some("10.0.0.2:7000".into()),
            leader_admin: Some("10.0.0.2:8080".into()),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[LEADER_HINT_HEADER], "10.0.0.2:8080");
    }
}
