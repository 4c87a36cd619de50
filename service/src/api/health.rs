//! `GET /gtg`: the load balancer's health check, shallow on purpose.
//!
//! A store outage must not make the load balancer take every instance out of service,
//! so the plain check only says whether this process is willing to serve. Store
//! connectivity is reported by `?details`, in metrics and in logs.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::{Instant, timeout_at};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::CandidateStore;

/// `?details` must answer quickly even when the store hangs: both probes fit in this.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn gtg(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    if state.lifecycle.is_draining() {
        return ApiError::unavailable("draining for shutdown").into_response();
    }
    if !wants_details(query.as_deref()) {
        return StatusCode::OK.into_response();
    }
    let store = store_state(&*state.store).await;
    Json(json!({
        "connected": if store == StoreState::Down { "false" } else { "true" },
        "store": store.as_str(),
        "instance-id": state.instance.get().await,
    }))
    .into_response()
}

/// What `?details` says about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreState {
    /// Reads and writes would succeed.
    Ok,
    /// It answers, but a write would fail (SQLite locked by another process).
    Degraded,
    /// It does not answer.
    Down,
}

impl StoreState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

async fn store_state(store: &dyn CandidateStore) -> StoreState {
    let deadline = Instant::now() + PING_TIMEOUT;
    if !matches!(timeout_at(deadline, store.ping()).await, Ok(Ok(()))) {
        return StoreState::Down;
    }
    match timeout_at(deadline, store.ping_write()).await {
        Ok(Ok(())) => StoreState::Ok,
        _ => StoreState::Degraded,
    }
}

/// `details` present as a key, with or without a value, as in the original service.
fn wants_details(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("details"))
    })
}

#[cfg(test)]
mod tests {
    use super::wants_details;

    #[test]
    fn details_is_a_flag() {
        assert!(wants_details(Some("details")));
        assert!(wants_details(Some("details=")));
        assert!(wants_details(Some("x=1&details=true")));
        assert!(!wants_details(None));
        assert!(!wants_details(Some("")));
        assert!(!wants_details(Some("detailsx")));
        assert!(!wants_details(Some("x=details")));
    }
}
