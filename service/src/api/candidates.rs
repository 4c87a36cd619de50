//! `GET`/`POST /candidate/{name}` and `GET /candidates`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::listing;
use super::query::QueryParams;
use crate::candidate::{Candidate, CandidateName, Cursor, PageLimit};
use crate::error::ApiError;
use crate::state::AppState;

/// The header that carries the next page's cursor; absent on the last page.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// `GET /candidate/{name}`: a one-element array, as the original service answered.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<[Candidate; 1]>, ApiError> {
    let Path(raw) = name?;
    let name = CandidateName::parse(raw)?;
    match state.store.get(&name).await? {
        Some(candidate) => Ok(Json([candidate])),
        None => Err(ApiError::not_found("candidate not found")),
    }
}

/// `POST /candidate/{name}`: idempotent insert. The body is read (so its size limit
/// holds for bodies of unknown length) and ignored.
pub async fn put_one(
    State(state): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Candidate>, ApiError> {
    let Path(raw) = name?;
    let name = CandidateName::parse(raw)?;
    super::body::discard(body).await?;
    state.store.put(&name).await?;
    Ok(Json(Candidate::from(name)))
}

/// `GET /candidates?limit=&cursor=`: with `limit`, one page in ascending name order
/// and the next page's cursor in `X-Next-Cursor`; without it, every candidate (after
/// the cursor, when one is given) as one streamed JSON array, like the original, if
/// fewer than the configured number of such listings are streaming already.
pub async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref(), ["limit", "cursor"])?;
    let cursor = params.get("cursor").map(Cursor::decode).transpose()?;
    match params.get("limit") {
        Some(limit) => one_page(&state, PageLimit::parse(limit)?, cursor).await,
        None => {
            let place = state.full_listings.admit()?;
            let deadline = Instant::now() + state.limits.request_timeout;
            listing::everything(Arc::clone(&state.store), cursor, deadline, place).await
        }
    }
}

async fn one_page(
    state: &AppState,
    limit: PageLimit,
    cursor: Option<Cursor>,
) -> Result<Response, ApiError> {
    let page = state
        .store
        .list(limit, cursor.as_ref().map(Cursor::last_seen))
        .await?;
    // "None at all" is the original's 404; past the first page an empty one is simply
    // the end of the listing.
    if page.candidates.is_empty() && cursor.is_none() {
        return Err(ApiError::not_found("no candidates"));
    }
    let next = page.next.as_ref().map(Cursor::encode);
    let mut response = Json(page.candidates).into_response();
    if let Some(next) = next {
        let value = HeaderValue::from_str(&next).map_err(|_| ApiError::Internal)?;
        response.headers_mut().insert(NEXT_CURSOR_HEADER, value);
    }
    Ok(response)
}
