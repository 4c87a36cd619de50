//! `GET /computation?seed=&iterations=`: the MD5 chain, run on the computation pool.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::query::QueryParams;
use crate::computation::{Iterations, PoolError, Seed};
use crate::error::ApiError;
use crate::state::AppState;

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
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<ComputationResult>, ApiError> {
    let params = QueryParams::parse(query.as_deref(), ["seed", "iterations"])?;
    let iterations = match params.get("iterations") {
        Some(raw) => Iterations::parse(raw, state.limits.max_iterations)?.get(),
        None => state.limits.default_iterations,
    };
    let seed = match params.get("seed") {
        Some(raw) => Seed::parse(raw)?,
        None => Seed::now(),
    };

    let computed = match state
        .pool
        .compute(seed.as_str().to_owned(), iterations)
        .await
    {
        Ok(computed) => computed,
        Err(err) => {
            if err == PoolError::QueueFull {
                // A refusal sent at once brings a client straight back; under a flood
                // of such clients the runtime's threads (at normal priority) would
                // spend on refusing the CPU the workers (at a lower one) need. Waiting
                // costs a timer, not CPU.
                tokio::time::sleep(state.limits.refusal_delay).await;
            }
            return Err(err.into());
        }
    };
    Ok(Json(ComputationResult {
        hash: computed.hash,
        iterations,
        seed: seed.into_string(),
        instance_id: state.instance.get().await.to_owned(),
        elapsed_ms: u64::try_from(computed.elapsed.as_millis()).unwrap_or(u64::MAX),
    }))
}
