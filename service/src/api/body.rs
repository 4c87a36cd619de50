//! Request bodies: the API ignores them, but refuses large ones with a 413 the client
//! can actually read.
//!
//! Answering 413 and closing while a client is still uploading makes its next write
//! fail (EPIPE or a reset) before it ever reads the answer. Like nginx's lingering
//! close, the rest of an oversized body is read and thrown away first, bounded in time
//! (in all, and without any data) rather than in bytes, so an ordinary client sees the
//! 413 whatever it was uploading and a hostile one costs a few seconds of a task.

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use crate::error::ApiError;

/// Request bodies are ignored, so anything larger than this is refused with 413.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;
/// The longest spent reading an oversized body before answering (nginx's
/// `lingering_time` is the same idea).
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// The longest wait for more of it (nginx's `lingering_timeout`).
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

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
            linger(stream).await;
            return Err(too_large());
        }
    }
    Ok(())
}

/// Refuses a body whose declared length is over the limit, after draining what the
/// client sends. A client waiting for `100 Continue` has sent nothing: it is answered
/// at once.
pub async fn refuse(body: Body, waits_for_continue: bool) -> ApiError {
    if !waits_for_continue {
        linger(body.into_data_stream()).await;
    }
    too_large()
}

async fn linger(mut stream: axum::body::BodyDataStream) {
    let end = Instant::now() + LINGER_TIME;
    loop {
        let wait = end.min(Instant::now() + LINGER_IDLE);
        match timeout_at(wait, stream.next()).await {
            Ok(Some(Ok(_))) => {}
            // The end of the body, a broken connection, or no more time.
            _ => return,
        }
    }
}
fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        limit: BODY_LIMIT_BYTES,
    }
}
