//! [`AdminError`]: why an Admin API call failed, and how an HTTP answer
//! becomes one.

use std::time::Duration;

use hyper::StatusCode;
use serde::de::DeserializeOwned;

use crate::admin::api::ErrorBody;

/// Why an Admin API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The server answered with an error status.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The server's stable error code, e.g. `CONFLICT`.
        code: String,
        /// Human-readable detail; never parse it.
        message: String,
        /// On 503: the coordinator leader's admin address, when known.
        leader: Option<String>,
    },
    /// The base URL cannot be used.
    #[error("invalid admin URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The request could not be built (e.g. a token that is not a valid
    /// header value).
    #[error("cannot build the request to {url}: {reason}")]
    InvalidRequest {
        /// The URL of the call.
        url: String,
        /// Why the request could not be built.
        reason: String,
    },
    /// The request could not be sent or the connection failed.
    #[error("cannot reach {url}: {source}")]
    Transport {
        /// The URL of the call.
        url: String,
        /// The connection or HTTP error underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No complete answer within the client's timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL of the call.
        url: String,
        /// The client's timeout that ran out.
        timeout: Duration,
    },
    /// The server answered something that is not the expected body.
    #[error("unexpected response from {url} (HTTP {status}): {reason}")]
    Decode {
        /// The URL of the call.
        url: String,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// The decode error; for an error status, the start of the body.
        reason: String,
    },
}

impl AdminError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error code, for an error answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The coordinator leader's admin address, when the server named it.
    pub fn leader(&self) -> Option<&str> {
        match self {
            Self::Api { leader, .. } => leader.as_deref(),
            _ => None,
        }
    }
}

pub(super) fn transport(
    url: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> AdminError {
    AdminError::Transport {
        url: url.to_owned(),
        source: source.into(),
    }
}

pub(super) fn decode<R: DeserializeOwned>(
    url: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<R, AdminError> {
    serde_json::from_slice(bytes).map_err(|e| AdminError::Decode {
        url: url.to_owned(),
        status,
        reason: e.to_string(),
    })
}

/// The error for a non-2xx answer: the server's JSON body when it sent one,
/// else the status alone (a proxy or another server answered).
pub(super) fn api_error(url: &str, status: StatusCode, bytes: &[u8]) -> AdminError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => AdminError::Api {
            status,
            code: body.error,
            message: body.message,
            leader: body.leader,
        },
        Err(_) => AdminError::Decode {
            url: url.to_owned(),
            status,
            reason: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_typed_errors() {
        let body = br#"{"error":"NOT_LEADER","message":"m","leader":"10.0.0.1:8080"}"#;
        let err = api_error("u", StatusCode::SERVICE_UNAVAILABLE, body);
        assert_eq!(err.code(), Some("NOT_LEADER"));
        assert_eq!(err.leader(), Some("10.0.0.1:8080"));
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        let err = api_error("u", StatusCode::BAD_GATEWAY, b"<html>");
        assert!(matches!(err, AdminError::Decode { .. }));
    }
}
