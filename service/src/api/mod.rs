//! The HTTP surface: routes, the middleware every request passes through, and the
//! responses for requests that match nothing.

mod access_log;
mod body;
mod candidates;
mod computation;
mod envelope;
mod health;
mod listing;
mod metrics;
mod openapi;
mod query;
mod request_rules;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

pub use access_log::{
    CLIENT_CLOSED_STATUS, CUT_OFF_STATUS, OTHER_METHOD, UNMATCHED_ROUTE, flush_refusal_log,
};
pub use body::BODY_LIMIT_BYTES;
pub use health::StoreHealth;
pub use listing::FullListings;
pub use request_rules::MAX_REQUEST_ID_BYTES;

use crate::error::ApiError;
use crate::state::AppState;

/// The shallow health check the load balancer's target group calls.
pub const HEALTH_PATH: &str = "/gtg";

/// One route and method the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub method: &'static str,
    /// As the router spells it (`/candidate/{name}`), which is also OpenAPI's spelling.
    pub path: &'static str,
}

/// The router's single source of truth: `router` is built from this table and
/// `endpoints` lists it, so the OpenAPI document can be checked against what is served.
fn table() -> Vec<(Endpoint, MethodRouter<Arc<AppState>>)> {
    let at = |method, path| Endpoint { method, path };
    vec![
        (at("GET", "/"), get(invalid_request)),
        (at("GET", HEALTH_PATH), get(health::gtg)),
        (at("GET", "/candidate/{name}"), get(candidates::get_one)),
        (at("POST", "/candidate/{name}"), post(candidates::put_one)),
        (at("GET", "/candidates"), get(candidates::list)),
        (at("GET", "/computation"), get(computation::compute)),
        (at("GET", "/metrics"), get(metrics::render)),
        (at("GET", "/openapi.yaml"), get(openapi::document)),
    ]
}

/// Every route and method the service answers (`GET` routes also answer `HEAD`).
pub fn endpoints() -> Vec<Endpoint> {
    table().into_iter().map(|(endpoint, _)| endpoint).collect()
}

pub fn router(state: AppState) -> Router {
    let request_timeout = state.limits.request_timeout;
    table()
        .into_iter()
        // Adding a path twice merges its methods.
        .fold(Router::new(), |router, (endpoint, route)| {
            router.route(endpoint.path, route)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Every route and both fallbacks: request id, access log, panics, timeout, and
        // the checks of the request's head (see `envelope`).
        .layer(envelope::Envelope::new(request_timeout))
        .with_state(Arc::new(state))
}

/// `GET /`: the original service's answer, kept for compatibility.
async fn invalid_request() -> ApiError {
    ApiError::RootPath
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
