//! The one place where failures become HTTP responses.
//!
//! Every handler and middleware returns `ApiError`; its `IntoResponse` picks the status
//! and writes the `{"error": "..."}` body. Internal causes (store errors, panics) are
//! logged where they happen and never reach the client.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::candidate::{CursorError, LimitError, NameError};
use crate::computation::{IterationsError, PoolError, SeedError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The client had not sent the whole request body by the request timeout: its fault,
    /// so a 4xx rather than a 5xx that pages someone.
    #[error("the request body did not arrive within the request timeout")]
    BodyTimeout,
    /// A dependency or a bounded resource cannot serve now. With `retry_after_secs` the
    /// client learns when to try again (`Retry-After`).
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// Load shedding: a bounded resource is full, the client should come back in a
    /// second. Marked with [`Repeated::LoadShed`] so the access log can aggregate a flood of them.
    #[error("{0}")]
    Overloaded(String),
    /// The candidate store failed (its cause logged where it happened): 503 with
    /// `Retry-After: 1`. Marked with [`Repeated::StoreDown`]: an outage fails every
    /// request, and the access log aggregates them as it does refusals.
    #[error("candidate store unavailable")]
    StoreDown,
    #[error("internal error")]
    Internal,
    /// `GET /`: the original service answered `{"status": "invalid request"}` there and its
    /// clients may read that body, so it keeps that shape, the one error body that differs.
    #[error("invalid request")]
    RootPath,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// 503 with `Retry-After`: the same request may succeed in `retry_after_secs`.
    pub fn retry_later(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// 503 with `Retry-After: 1`, marked as load shedding.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::Overloaded(message.into())
    }

    /// 503 without a hint: this process will not serve it (it is shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::RootPath => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable { .. } | Self::Overloaded(_) | Self::StoreDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self {
            Self::RootPath => json!({ "status": self.to_string() }),
            _ => json!({ "error": self.to_string() }),
        };
        let mut response = (self.status(), Json(body)).into_response();
        match self {
            Self::Unavailable {
                retry_after_secs: Some(retry_after_secs),
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::Overloaded(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(Repeated::LoadShed);
            }
            Self::StoreDown => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(Repeated::StoreDown);
            }
            // The rest of the body is never read, so the connection cannot carry another
            // request: say so, or a client may reuse it and see it reset.
            Self::PayloadTooLarge { .. } | Self::BodyTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Marks a response that a flood would repeat by the thousand, so that the access log
/// records them in aggregate: a refusal to shed load (`ApiError::Overloaded`), or a
/// failure of the store (`ApiError::StoreDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeated {
    LoadShed,
    StoreDown,
}

impl From<NameError> for ApiError {
    fn from(err: NameError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<LimitError> for ApiError {
    fn from(err: LimitError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<CursorError> for ApiError {
    fn from(err: CursorError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<IterationsError> for ApiError {
    fn from(err: IterationsError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<SeedError> for ApiError {
    fn from(err: SeedError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        match err {
            // Load shedding: every worker is busy and the queue is full.
            PoolError::QueueFull => Self::overloaded(err.to_string()),
            // The workers are gone: this process cannot compute any more.
            PoolError::Stopped => Self::Internal,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        // The cause was logged and counted by the store wrapper; the client only
        // needs to know it may retry.
        match err {
            StoreError::Unavailable { .. } => Self::StoreDown,
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(err: PathRejection) -> Self {
        Self::bad_request(format!("invalid path: {}", err.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json body")
    }

    #[tokio::test]
    async fn the_root_path_keeps_the_original_services_body() {
        let response = ApiError::RootPath.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(response).await,
            json!({ "status": "invalid request" })
        );
    }

    #[tokio::test]
    async fn every_error_maps_to_its_status_and_a_json_body() {
        let cases = [
            (ApiError::bad_request("bad"), 400, "bad"),
            (ApiError::not_found("gone"), 404, "gone"),
            (ApiError::MethodNotAllowed, 405, "method not allowed"),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                413,
                "request body is larger than 10 bytes",
            ),
            (
                ApiError::BodyTimeout,
                408,
                "the request body did not arrive within the request timeout",
            ),
            (ApiError::retry_later("busy", 1), 503, "busy"),
            (ApiError::overloaded("queue full"), 503, "queue full"),
            (ApiError::StoreDown, 503, "candidate store unavailable"),
            (ApiError::unavailable("draining"), 503, "draining"),
            (ApiError::Internal, 500, "internal error"),
        ];
        for (err, status, message) in cases {
            let response = err.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{status}"
            );
            assert_eq!(body_json(response).await, json!({ "error": message }));
        }
    }

    #[tokio::test]
    async fn unavailable_tells_the_client_when_to_retry() {
        let response = ApiError::retry_later("store down", 2).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert!(response.extensions().get::<Repeated>().is_none());
        let shed = ApiError::overloaded("queue full").into_response();
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            shed.extensions().get::<Repeated>(),
            Some(&Repeated::LoadShed)
        );
        let down = ApiError::StoreDown.into_response();
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            down.extensions().get::<Repeated>(),
            Some(&Repeated::StoreDown)
        );
        for no_hint in [
            ApiError::bad_request("x"),
            ApiError::unavailable("draining"),
        ] {
            assert!(
                no_hint
                    .into_response()
                    .headers()
                    .get(header::RETRY_AFTER)
                    .is_none()
            );
        }
    }

    #[test]
    fn a_refused_body_closes_the_connection() {
        let response = ApiError::PayloadTooLarge { limit: 1 }.into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let response = ApiError::BodyTimeout.into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let response = ApiError::bad_request("x").into_response();
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn domain_errors_are_client_errors() {
        assert_eq!(
            ApiError::from(NameError::Empty).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ApiError::from(LimitError).status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::from(CursorError).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(IterationsError { max: 5 }).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ApiError::from(SeedError).status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_full_computation_queue_sheds_load_and_stopped_workers_are_internal() {
        let full = ApiError::from(PoolError::QueueFull);
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = full.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.extensions().get::<Repeated>(),
            Some(&Repeated::LoadShed)
        );
        assert_eq!(
            ApiError::from(PoolError::Stopped).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn store_failures_are_503_not_500() {
        let err = StoreError::unavailable("get", std::io::Error::other("connection refused"));
        let api = ApiError::from(err);
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The internal cause stays in the logs.
        assert!(!api.to_string().contains("refused"));
    }
}
