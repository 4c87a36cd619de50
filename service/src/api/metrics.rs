//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::gauge;

use crate::AppState;

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    // Sampled at scrape time so the gauge is exact whatever the traffic.
    gauge!("computation_queue_depth").set(state.pool.queue_depth() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
