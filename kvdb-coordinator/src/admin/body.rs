//! Request extraction that fails with [`ApiError`] instead of axum's plain-text
//! rejections: the JSON body and the path parameters.
//!
//! The body-size limit itself is axum's `DefaultBodyLimit` layer (installed by
//! [`super::router`]); this module only turns its rejection into a JSON 413.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::routes::AdminState;

/// A JSON request body decoded into `T`. Requires `Content-Type:
/// application/json` (which also keeps browsers from posting it cross-site
/// without a preflight).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AdminState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, ApiError> {
        let bytes = read_json(req, state).await?;
        decode(&bytes).map(Self)
    }
}

/// Like [`JsonBody`], but an empty body decodes as `T::default()`, for routes
/// whose every field is optional. The JSON content type is still required,
/// even with no body: a POST without it is one a browser sends cross-site
/// without a preflight.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AdminState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, ApiError> {
        let bytes = read_json(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        decode(&bytes).map(Self)
    }
}

/// The bytes of a body declared as JSON, within the configured limit.
async fn read_json(req: Request, state: &AdminState) -> Result<Bytes, ApiError> {
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = state.config.max_body_bytes;
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::InvalidRequest(format!("cannot read the request body: {rejection}"))
        }
    })
}

fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

/// Decodes a JSON body, telling a syntax error (not JSON) from a shape
/// error (JSON, but not a `T` object).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the request body is empty".into()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    // serde would also build a struct from an array; the API takes objects only.
    if !value.is_object() {
        return Err(ApiError::InvalidRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid request body: {e}")))
}

/// The single path parameter of a route, as a string.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|rejection: PathRejection| {
                ApiError::InvalidRequest(format!("invalid path parameter: {rejection}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::ShardInitRequest;

    fn code(bytes: &str) -> &'static str {
        decode::<ShardInitRequest>(bytes.as_bytes())
            .map(|_| "ok")
            .unwrap_or_else(|e| e.code())
    }

    #[test]
    fn syntax_and_shape_errors_are_told_apart() {
        assert_eq!(code(r#"{"num_shards": 8, "replication_factor": 3}"#), "ok");
        assert_eq!(code(""), "MALFORMED_JSON");
        assert_eq!(code(r#"{"num_shards": 8,"#), "MALFORMED_JSON");
        assert_eq!(code("not json"), "MALFORMED_JSON");
        assert_eq!(code(r#"{"num_shards": 8}"#), "INVALID_ARGUMENT");
        assert_eq!(code("[8, 3]"), "INVALID_ARGUMENT");
        assert_eq!(
            code(r#"{"num_shards": "8", "replication_factor": 3}"#),
            "INVALID_ARGUMENT"
        );
        assert_eq!(
            code(r#"{"num_shards": -1, "replication_factor": 3}"#),
            "INVALID_ARGUMENT"
        );
        assert_eq!(
            code(r#"{"num_shards": 8, "replication_factor": 3, "x": 1}"#),
            "INVALID_ARGUMENT"
        );
    }
}
