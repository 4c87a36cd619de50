//! Request bodies: the API ignores them, but refuses large ones with a 413 the client
//! can actually read.
//!
//! Answering 413 and closing while a client is still uploading makes its next write
//! fail (EPIPE or a reset) before it ever reads the answer. Like nginx's lingering
//! close, the rest of an oversized body is read and discarded first, bounded in bytes
//! and in time, so an ordinary client sees the 413 and a hostile one costs little.

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;

use super::BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// The most of an oversized body read (and thrown away) before answering.
pub const LINGER_BYTES: u64 = 1024 * 1024;
/// The longest spent reading it.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Reads a body the API ignores; refuses it with 413 once it passes the limit.
pub async fn discard(body: Body) -> Result<(), ApiError> {
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::bad_request(format!("could not read the request body: {err}"))
        })?;
        seen += chunk.len() as u64;
        if seen > BODY_LIMIT_BYTES as u64 {
            linger(stream, seen).await;
            return Err(too_large());
        }
    }
    Ok(())
}

/// Refuses a body whose declared length is over the limit, after draining it when it
/// is small enough to be worth it.
pub async fn refuse(body: Body, declared: u64) -> ApiError {
    if declared <= LINGER_BYTES {
        linger(body.into_data_stream(), 0).await;
    }
    too_large()
}

async fn linger(mut stream: axum::body::BodyDataStream, mut seen: u64) {
    let drain = async {
        while seen < LINGER_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len() as u64,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        limit: BODY_LIMIT_BYTES,
    }
}
