//! `GET /gtg`: the load balancer's health check, shallow on purpose.
//!
//! A store outage must not make the load balancer take every instance out of service,
//! so the plain check only says whether this process is willing to serve. Store
//! connectivity is reported by `?details`, in metrics and in logs.
//!
//! `?details` is public and may be polled hard, so it must stay cheap: one look at the
//! store answers every `?details` of the next second ([`StoreHealth`]), and a look never
//! takes SQLite's write lock while the service's own writes can tell how writes fare.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout_at};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::CandidateStore;

/// `?details` must answer quickly even when the store hangs: both probes fit in this.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one look at the store answers `?details`.
const LOOK_LASTS: Duration = Duration::from_secs(1);

pub async fn gtg(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    if state.lifecycle.is_draining() {
        return ApiError::unavailable("draining for shutdown").into_response();
    }
    if !wants_details(query.as_deref()) {
        return StatusCode::OK.into_response();
    }
    let store = state.store_health.state(&*state.store).await;
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

/// The last look at the store, shared by every `?details` while it is fresh. Callers that
/// arrive while a look is under way wait for it and share it too, so a store that hangs
/// costs one look (at most `PING_TIMEOUT`) however many callers there are.
#[derive(Debug, Default)]
pub struct StoreHealth {
    last: Mutex<Option<Look>>,
}

#[derive(Debug, Clone, Copy)]
struct Look {
    /// When the look finished.
    at: Instant,
    state: StoreState,
}

impl StoreHealth {
    async fn state(&self, store: &dyn CandidateStore) -> StoreState {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(look) = *last
            && (look.at >= asked || asked.duration_since(look.at) < LOOK_LASTS)
        {
            return look.state;
        }
        let state = look(store).await;
        *last = Some(Look {
            at: Instant::now(),
            state,
        });
        state
    }
}

async fn look(store: &dyn CandidateStore) -> StoreState {
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
