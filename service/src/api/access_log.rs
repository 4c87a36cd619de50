//! The access log and the request metrics: one count per request, one log line per
//! served request, every label from a closed set so that no client can grow either.
//!
//! Some requests are recorded differently:
//! - a request whose client went away before its response was ready (the handler's
//!   future is dropped) is recorded with status 499, nginx's "client closed request";
//! - a response whose body is streamed (`GET /candidates` without `limit`) is recorded
//!   when its body ends, with the time it really took: with its status once sent in
//!   full, 599 when the service cut it off part-way (out of time, or the store failed),
//!   499 when the client went away before the end. Its status line had already gone
//!   out as 200, but a cut-off listing is not a success, and the metrics say so;
//! - a request refused to shed load, or failed because the store is down (a
//!   [`Repeated`] response), is counted like any other but logged in aggregate, at most
//!   one line a second per route and kind, so that a flood of refusals or an outage
//!   does not become a flood of log lines (the store's failures themselves, with their
//!   cause, are aggregated by the store wrapper).

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use metrics::{Counter, Histogram, SharedString, counter, histogram};

use super::request_rules::REQUEST_ID_HEADER;
use crate::error::Repeated;
use crate::telemetry::aggregate::{self, Window};

/// Route label for requests that matched no route, whatever paths clients make up.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Method label for every method but the standard ones, whatever methods clients make up.
pub const OTHER_METHOD: &str = "other";
/// Status label of a request whose client went away before its response was complete.
pub const CLIENT_CLOSED_STATUS: u16 = 499;
/// Status label of a streamed response the service cut off after its head had gone: a
/// server-side failure, in the 5xx class so that error rates count it.
pub const CUT_OFF_STATUS: u16 = 599;

const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// The method's label: its name for a standard method, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|standard| *standard == method)
        .map_or(OTHER_METHOD, Method::as_str)
}

/// Every route label: the routes the router answers, then `unmatched`.
static ROUTE_LABELS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut labels: Vec<&'static str> = Vec::new();
    for endpoint in super::endpoints() {
        if !labels.contains(&endpoint.path) {
            labels.push(endpoint.path);
        }
    }
    labels.push(UNMATCHED_ROUTE);
    labels
});

/// The label of a matched route (`unmatched` for none), and its place in
/// [`ROUTE_LABELS`].
fn route_label(route: Option<&MatchedPath>) -> (usize, &'static str) {
    let labels = &*ROUTE_LABELS;
    let unmatched = labels.len() - 1;
    let index = route
        .and_then(|route| labels.iter().position(|known| *known == route.as_str()))
        .unwrap_or(unmatched);
    (index, labels[index])
}

/// One request being recorded: metrics by method, matched route and status, and the
/// access log line. Written when its response is ready (for a streamed body, when the
/// body ends), or with status 499 when it is dropped before that.
#[derive(Debug)]
pub struct AccessRecord {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    request_id: Option<HeaderValue>,
    written: bool,
}

impl AccessRecord {
    /// Starts recording `request`, whose id is `request_id`.
    pub fn begin(request: &Request, request_id: HeaderValue) -> Self {
        Self {
            started: Instant::now(),
            method: method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            request_id: Some(request_id),
            written: false,
        }
    }

    /// Records the request's outcome, and hands its id to the response. A body of
    /// unknown length (streamed) carries the record until it ends.
    pub fn finish(mut self, response: &mut Response) {
        let status = response.status();
        let streamed =
            self.method != Method::HEAD.as_str() && response.body().size_hint().exact().is_none();
        if streamed {
            if let Some(id) = self.request_id.clone() {
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            let body = std::mem::take(response.body_mut());
            *response.body_mut() = Body::new(RecordedBody {
                body,
                status,
                record: Some(self),
            });
            return;
        }
        let repeated = response.extensions().get::<Repeated>().copied();
        self.write(status.as_u16(), repeated);
        if let Some(id) = self.request_id.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
    }

    fn write(&mut self, status: u16, repeated: Option<Repeated>) {
        self.written = true;
        let elapsed = self.started.elapsed();
        let (route_index, route) = route_label(self.route.as_ref());
        RequestMetrics::record(self.method, route, status, elapsed.as_secs_f64());
        if let Some(kind) = repeated {
            note_repeated(kind, route_index, route);
            return;
        }
        let request_id = self
            .request_id
            .as_ref()
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default();
        tracing::info!(
            method = self.method,
            route,
            status,
            latency_ms = elapsed.as_micros() as f64 / 1000.0,
            request_id,
            "request"
        );
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        if !self.written {
            self.write(CLIENT_CLOSED_STATUS, None);
        }
    }
}

pin_project_lite::pin_project! {
    /// A streamed response body that writes its request's record when it ends: its
    /// status once the last frame is out, [`CUT_OFF_STATUS`] when the body fails, and
    /// (dropped unfinished, the connection gone) [`CLIENT_CLOSED_STATUS`].
    struct RecordedBody {
        #[pin]
        body: Body,
        status: StatusCode,
        record: Option<AccessRecord>,
    }
}

impl HttpBody for RecordedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let mut body = this.body;
        let polled = body.as_mut().poll_frame(cx);
        let outcome = match &polled {
            Poll::Ready(None) => Some(this.status.as_u16()),
            // hyper stops polling a body that says it has ended.
            Poll::Ready(Some(Ok(_))) if body.is_end_stream() => Some(this.status.as_u16()),
            Poll::Ready(Some(Err(_))) => Some(CUT_OFF_STATUS),
            _ => None,
        };
        if let Some(status) = outcome
            && let Some(mut record) = this.record.take()
        {
            record.write(status, None);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The metrics of one label set, registered once per thread and reused: building a
/// metric's key (label strings, a hash, a registry look-up) on every request cost more
/// than serving `/gtg` itself. Every label comes from a closed set, so these stay few.
struct RequestMetrics {
    requests: Counter,
    duration: Histogram,
}

thread_local! {
    static REQUEST_METRICS: RefCell<HashMap<(&'static str, &'static str, u16), RequestMetrics>> =
        RefCell::new(HashMap::new());
}

impl RequestMetrics {
    /// `route` is a label of [`ROUTE_LABELS`].
    fn record(method: &'static str, route: &'static str, status: u16, seconds: f64) {
        REQUEST_METRICS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let metrics = cache.entry((method, route, status)).or_insert_with(|| {
                let labels = [
                    ("method", SharedString::const_str(method)),
                    ("route", SharedString::const_str(route)),
                    ("status", SharedString::from(status.to_string())),
                ];
                Self {
                    requests: counter!("http_requests_total", &labels),
                    duration: histogram!("http_request_duration_seconds", &labels),
                }
            });
            metrics.requests.increment(1);
            metrics.duration.record(seconds);
        });
    }
}

/// Refused requests not logged yet, one window per route label.
static REFUSALS: LazyLock<Vec<Window>> =
    LazyLock::new(|| ROUTE_LABELS.iter().map(|_| Window::new()).collect());
/// Requests failed by the store not logged yet, one window per route label.
static STORE_DOWN: LazyLock<Vec<Window>> =
    LazyLock::new(|| ROUTE_LABELS.iter().map(|_| Window::new()).collect());

fn windows(kind: Repeated) -> &'static [Window] {
    match kind {
        Repeated::LoadShed => &REFUSALS,
        Repeated::StoreDown => &STORE_DOWN,
    }
}

/// Counts a repeated answer; the first after a quiet second is logged at once, the rest
/// in one line when their second is over.
fn note_repeated(kind: Repeated, route_index: usize, route: &'static str) {
    if let Some(count) = windows(kind)[route_index].note_at(aggregate::now_ms()) {
        write_repeated(kind, count, route);
    }
}

/// Writes the summaries of refusals and store failures not logged yet, if their second
/// is over. Called once a second, so the last ones of a flood are logged even when none
/// follow.
pub fn flush_refusal_log() {
    let now = aggregate::now_ms();
    for kind in [Repeated::LoadShed, Repeated::StoreDown] {
        for (window, route) in windows(kind).iter().zip(ROUTE_LABELS.iter()) {
            if let Some(count) = window.flush_at(now) {
                write_repeated(kind, count, route);
            }
        }
    }
}

/// One line for `count` answers of one kind on `route` (always 503: see
/// `ApiError::Overloaded` and `ApiError::StoreDown`).
fn write_repeated(kind: Repeated, count: u64, route: &str) {
    let status = StatusCode::SERVICE_UNAVAILABLE.as_u16();
    match kind {
        Repeated::LoadShed => tracing::info!(
            refused = count,
            route,
            status,
            window_ms = aggregate::WINDOW_MS,
            "requests refused"
        ),
        Repeated::StoreDown => tracing::info!(
            failed = count,
            route,
            status,
            window_ms = aggregate::WINDOW_MS,
            "requests failed, store unavailable"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_the_rest_are_other() {
        for method in STANDARD_METHODS {
            assert_eq!(method_label(&method), method.as_str());
        }
        for made_up in ["FOO", "get", "X-METHOD-0001", &"M".repeat(1000)] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a valid token");
            assert_eq!(method_label(&method), OTHER_METHOD, "{made_up}");
        }
    }
}
