//! `GET /openapi.yaml`: the API description, compiled into the binary so the document a
//! client downloads always matches the service that serves it.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../../docs/openapi.yaml");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], DOCUMENT)
}
