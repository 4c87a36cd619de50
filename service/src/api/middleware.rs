//! What every request passes through besides the access log: its request id, the
//! request timeout, the body size limit, and panic containment.

use std::any::Any;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// The header that carries a request's id, in the request and in its response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Gives every request an id and echoes it in the response: the client's own when it is
/// 1 to 128 printable ASCII characters without spaces, otherwise (absent, empty, too
/// long, other bytes) a new UUID. A client's id ends up in logs and in responses, so
/// neither can be made to carry kilobytes or control sequences.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(REQUEST_ID_HEADER) {
        Some(id) if is_acceptable_request_id(id.as_bytes()) => id.clone(),
        _ => {
            let id = new_request_id();
            request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
            id
        }
    };
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

fn is_acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

fn new_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).expect("a UUID is a valid header value")
}

/// Past the configured time the client gets 503 and the handler is dropped, which also
/// cancels whatever it was waiting for (a store call, a queued computation).
pub async fn enforce_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::retry_later("request timed out", 1).into_response(),
    }
}

/// Refuses a body declared larger than the limit before any handler runs; bodies of
/// unknown length are cut off by the handlers that read them (`body::discard`).
pub async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > BODY_LIMIT_BYTES as u64 => {
            super::body::refuse(request.into_body(), length)
                .await
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// A panic in a handler becomes a 500 for that request only, logged with its message.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_printable_ascii() {
        assert!(is_acceptable_request_id(b"trace-me-42"));
        assert!(is_acceptable_request_id(&[b'a'; MAX_REQUEST_ID_BYTES]));
        assert!(is_acceptable_request_id(
            b"Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8"
        ));
        for bad in [
            &b""[..],
            &[b'a'; MAX_REQUEST_ID_BYTES + 1],
            b"has space",
            b"tab\there",
            "é".as_bytes(),
            b"\x1b[31mred",
        ] {
            assert!(!is_acceptable_request_id(bad), "{bad:?}");
        }
        assert_eq!(new_request_id().len(), 36);
    }
}
