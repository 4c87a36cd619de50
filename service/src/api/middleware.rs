//! What every request passes through: access log and metrics, the request timeout,
//! the body size limit, and panic containment.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, histogram};

use super::BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// Route label for requests that matched no route: keeps metric cardinality bounded
/// whatever paths clients make up.
const UNMATCHED_ROUTE: &str = "unmatched";

/// One access-log line and the request metrics, labelled by the matched route (never
/// the raw path, so `/candidate/{name}` is one series, not one per name).
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();

    let response = next.run(request).await;

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    counter!("http_requests_total", &labels).increment(1);
    histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        request_id = %request_id,
        "request"
    );
    response
}

/// Past the configured time the client gets 503 and the handler is dropped, which also
/// cancels whatever it was waiting for (a store call, a queued computation).
pub async fn enforce_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::retry_later("request timed out", 1).into_response(),
    }
}

/// Refuses a body declared larger than the limit before any handler runs; bodies of
/// unknown length are cut off by the handlers that read them (`body::discard`).
pub async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > BODY_LIMIT_BYTES as u64 => {
            super::body::refuse(request.into_body(), length)
                .await
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// A panic in a handler becomes a 500 for that request only, logged with its message.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal.into_response()
}
