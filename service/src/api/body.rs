//! Request bodies: the API ignores them, but refuses large ones with a 413 the client
//! can actually read, and tells a client that sends one too slowly (408) apart from a
//! service that is too slow (503).
//!
//! Answering 413 and closing while a client is still uploading makes its next write
//! fail (EPIPE or a reset) before it ever reads the answer. Like nginx's lingering
//! close, the rest of an oversized body is read and thrown away first, bounded in time
//! (in all, and without any data) rather than in bytes, so an ordinary client sees the
//! 413 whatever it was uploading and a hostile one costs a few seconds of a task.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use http_body::{Body as HttpBody, Frame, SizeHint};
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

/// How far a request's body has been read (0: not at all), shared between the body
/// (which the handler owns) and the envelope (which must choose between 408 and 503 at
/// the timeout).
#[derive(Debug, Default)]
pub struct BodyProgress(AtomicU8);

impl BodyProgress {
    const READING: u8 = 1;
    const DONE: u8 = 2;

    /// Whether a handler has started reading the body and is still waiting for the rest
    /// of it: past the request timeout, the client is the slow side.
    pub fn awaiting_client(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::READING
    }

    fn mark(&self, state: u8) {
        self.0.fetch_max(state, Ordering::AcqRel);
    }
}

/// Wraps a request body that is not known to be empty, so that its reading is followed.
/// An empty one (most requests: no body at all) is left as it is, and `None` returned.
pub fn follow(body: Body) -> (Body, Option<Arc<BodyProgress>>) {
    if body.is_end_stream() {
        return (body, None);
    }
    let progress = Arc::new(BodyProgress::default());
    let followed = Body::new(FollowedBody {
        body,
        progress: Arc::clone(&progress),
    });
    (followed, Some(progress))
}

pin_project_lite::pin_project! {
    struct FollowedBody {
        #[pin]
        body: Body,
        progress: Arc<BodyProgress>,
    }
}

impl HttpBody for FollowedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let mut body = this.body;
        let polled = body.as_mut().poll_frame(cx);
        let state = match &polled {
            Poll::Ready(None | Some(Err(_))) => BodyProgress::DONE,
            Poll::Ready(Some(Ok(_))) if body.is_end_stream() => BodyProgress::DONE,
            _ => BodyProgress::READING,
        };
        this.progress.mark(state);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_awaiting_its_client_only_between_its_first_read_and_its_end() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stream = tokio_stream_from(receiver);
        let (body, progress) = follow(Body::from_stream(stream));
        let progress = progress.expect("a streamed body is followed");
        assert!(!progress.awaiting_client(), "not read yet");
        let mut data = body.into_data_stream();
        sender
            .send(Ok(Bytes::from_static(b"part")))
            .await
            .expect("send");
        data.next().await.expect("a chunk").expect("data");
        assert!(progress.awaiting_client(), "read, and more may come");
        drop(sender);
        assert!(data.next().await.is_none());
        assert!(!progress.awaiting_client(), "read to its end");

        let (_, none) = follow(Body::empty());
        assert!(none.is_none(), "an empty body is not followed");
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut receiver: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
