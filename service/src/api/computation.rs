//! `GET /computation?seed=&iterations=`: the MD5 chain, run on the computation pool.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::query::{QueryParams, whole_number};
use crate::AppState;
use crate::computation::PoolError;
use crate::error::ApiError;

/// Longest accepted `?seed=`, in bytes: every step hashes the seed again.
pub const MAX_SEED_BYTES: usize = 1024;

#[derive(Debug, Serialize)]
pub struct ComputationResult {
    hash: String,
    iterations: u32,
    /// The seed used: the request's, or the timestamp chosen for it, so a client can
    /// always check the hash.
    seed: String,
    #[serde(rename = "instance-id")]
    instance_id: String,
    elapsed_ms: u64,
}

pub async fn compute(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ComputationResult>, ApiError> {
    let params = QueryParams::parse(query.as_deref(), ["seed", "iterations"])?;
    let max = state.limits.max_iterations;
    let iterations = match params.get("iterations") {
        None => state.limits.default_iterations,
        Some(raw) => match whole_number::<u32>(raw) {
            Some(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "iterations must be a whole number from 1 to {max}"
                )));
            }
        },
    };
    let seed = match params.get("seed") {
        Some(seed) if seed.is_empty() || seed.len() > MAX_SEED_BYTES => {
            return Err(ApiError::bad_request(format!(
                "seed must be 1 to {MAX_SEED_BYTES} bytes"
            )));
        }
        Some(seed) => seed.to_owned(),
        None => OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|_| ApiError::Internal)?,
    };

    let computed = match state.pool.compute(seed.clone(), iterations).await {
        Ok(computed) => computed,
        Err(err @ PoolError::QueueFull) => {
            // A refusal sent at once brings a client straight back; under a flood of
            // such clients the runtime's threads (at normal priority) would spend on
            // refusing the CPU the workers (at a lower one) need. Waiting costs a
            // timer, not CPU.
            tokio::time::sleep(state.limits.refusal_delay).await;
            return Err(ApiError::overloaded(err.to_string()));
        }
        Err(PoolError::Stopped) => return Err(ApiError::Internal),
    };
    Ok(Json(ComputationResult {
        hash: computed.hash,
        iterations,
        seed,
        instance_id: state.instance.get().await.to_owned(),
        elapsed_ms: u64::try_from(computed.elapsed.as_millis()).unwrap_or(u64::MAX),
    }))
}
