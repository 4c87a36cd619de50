//! The HTTP surface: routes, the middleware every request passes through, and the
//! responses for requests that match nothing.

mod candidates;
mod computation;
mod health;
mod metrics;
mod middleware;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::AppState;
use crate::error::ApiError;

/// The shallow health check the load balancer's target group calls.
pub const HEALTH_PATH: &str = "/gtg";
/// Request bodies are ignored, so anything larger than this is refused with 413.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// Every route the service answers, as the router spells them: the OpenAPI document
/// and the infrastructure tests are checked against this list.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    (HEALTH_PATH, &["GET"]),
    ("/candidate/{name}", &["GET", "POST"]),
    ("/candidates", &["GET"]),
    ("/computation", &["GET"]),
    ("/metrics", &["GET"]),
];

pub fn router(state: AppState) -> Router {
    let request_timeout = state.limits.request_timeout;
    Router::new()
        .route("/", get(invalid_request))
        .route(HEALTH_PATH, get(health::gtg))
        .route(
            "/candidate/{name}",
            get(candidates::get_one).post(candidates::put_one),
        )
        .route("/candidates", get(candidates::list))
        .route("/computation", get(computation::compute))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outermost first: the request id exists before anything logs, the access log
        // sees the final status (timeouts, panics, 413s included).
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(middleware::observe))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(axum::middleware::from_fn_with_state(
                    request_timeout,
                    middleware::enforce_timeout,
                ))
                .layer(axum::middleware::from_fn(middleware::refuse_large_bodies))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
}

/// `GET /`: the original service's answer, kept for compatibility.
async fn invalid_request() -> impl IntoResponse {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "status": "invalid request" })),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
