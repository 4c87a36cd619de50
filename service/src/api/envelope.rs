//! The one layer every request passes through. Outermost first, it:
//!
//! 1. gives the request its id, echoed in the response (`request_rules::request_id`);
//! 2. records it: metrics and the access log line, with the final status, 499 if the
//!    client goes away first, and for a streamed body its outcome when the body ends
//!    (`access_log`);
//! 3. turns a panic below into a 500 for this request only;
//! 4. answers 503 past the request timeout, dropping the handler (which cancels what
//!    it waited for: a store call, a queued computation), or 408 when the handler was
//!    still waiting for the client to send the request's body;
//! 5. refuses a request whose head breaks the rules (`request_rules::check_request_head`)
//!    before any handler runs.
//!
//! These were five layers, four of them `axum::middleware::from_fn`, each of which
//! boxes its future and clones and boxes the rest of the stack on every request. Here
//! they are one future of known type: nothing is boxed but the rare 413 refusal.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tokio::time::Timeout;
use tower::{Layer, Service};

use super::access_log::AccessRecord;
use super::body::{self, BodyProgress};
use super::request_rules::{self, HeadRefusal};
use crate::error::ApiError;

/// The layer, applied to every route (and the fallbacks) by the router.
#[derive(Debug, Clone, Copy)]
pub struct Envelope {
    request_timeout: Duration,
}

impl Envelope {
    pub fn new(request_timeout: Duration) -> Self {
        Self { request_timeout }
    }
}

impl<S> Layer<S> for Envelope {
    type Service = EnvelopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnvelopeService {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnvelopeService<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S> Service<Request> for EnvelopeService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let record = AccessRecord::begin(&request, request_rules::request_id(&request));
        let (parts, request_body) = request.into_parts();
        let (request_body, body_progress) = body::follow(request_body);
        let request = Request::from_parts(parts, request_body);
        let stage = match request_rules::check_request_head(&request) {
            None => match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                Ok(future) => Stage::Handler { future },
                Err(panic) => Stage::Answered {
                    response: Some(request_rules::panic_response(panic)),
                },
            },
            Some(HeadRefusal::BadHost(problem)) => Stage::Answered {
                response: Some(ApiError::bad_request(problem).into_response()),
            },
            Some(HeadRefusal::TooLarge { waits_for_continue }) => Stage::Refusing {
                refusal: Box::pin(body::refuse(request.into_body(), waits_for_continue)),
            },
        };
        EnvelopeFuture {
            stage: AssertUnwindSafe(tokio::time::timeout(self.request_timeout, stage))
                .catch_unwind(),
            record: Some(record),
            body_progress,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request on its way through the envelope. Dropping it before it is done (the
    /// client went away) drops the handler and records the request as 499.
    pub struct EnvelopeFuture<F> {
        #[pin]
        stage: CatchUnwind<AssertUnwindSafe<Timeout<Stage<F>>>>,
        // Taken when the response is ready; still here when dropped before that (499).
        record: Option<AccessRecord>,
        // Set when the request has a body: whether it was still being read at the timeout.
        body_progress: Option<Arc<BodyProgress>>,
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match ready!(this.stage.poll(cx)) {
            Ok(Ok(response)) => response,
            Ok(Err(_elapsed)) => {
                let client_is_slow = this
                    .body_progress
                    .as_ref()
                    .is_some_and(|progress| progress.awaiting_client());
                if client_is_slow {
                    ApiError::BodyTimeout.into_response()
                } else {
                    ApiError::retry_later("request timed out", 1).into_response()
                }
            }
            Err(panic) => request_rules::panic_response(panic),
        };
        if let Some(record) = this.record.take() {
            record.finish(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// What answers the request: its handler, or the envelope itself.
    #[project = StageProjection]
    enum Stage<F> {
        Handler { #[pin] future: F },
        /// A declared body over the limit: drained (bounded in time), then 413.
        Refusing { refusal: Pin<Box<dyn Future<Output = ApiError> + Send>> },
        Answered { response: Option<Response> },
    }
}

impl<F> Future for Stage<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            StageProjection::Handler { future } => future.poll(cx).map(|answered| match answered {
                Ok(response) => response,
                Err(never) => match never {},
            }),
            StageProjection::Refusing { refusal } => {
                refusal.as_mut().poll(cx).map(IntoResponse::into_response)
            }
            StageProjection::Answered { response } => Poll::Ready(
                response
                    .take()
                    .unwrap_or_else(|| ApiError::Internal.into_response()),
            ),
        }
    }
}
