//! `GET /metrics`: Prometheus text exposition.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    state.pool.record_gauges();
    state.full_listings.record_gauges();
    state.store.record_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
