//! The access log and the request metrics: one count per request, one log line per
//! served request, every label from a closed set so that no client can grow either.
//!
//! Two kinds of request are recorded differently:
//! - a request whose client went away before its response was ready (the handler's
//!   future is dropped) is recorded with status 499, nginx's "client closed request";
//! - a request refused to shed load (a [`LoadShed`] response) is counted like any other
//!   but logged in aggregate, at most one line a second, so that a flood of refusals
//!   does not become a flood of log lines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use metrics::{Counter, Histogram, SharedString, counter, histogram};

use super::middleware::REQUEST_ID_HEADER;
use crate::error::LoadShed;

/// Route label for requests that matched no route, whatever paths clients make up.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Method label for every method but the standard ones, whatever methods clients make up.
pub const OTHER_METHOD: &str = "other";
/// Status label of a request whose client went away before its response was ready.
pub const CLIENT_CLOSED_STATUS: u16 = 499;

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

/// One request being recorded: metrics by method, matched route and status, and the
/// access log line. Written when its response is ready, or with status 499 when it is
/// dropped before that.
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

    /// Records the request's outcome, and hands its id to the response.
    pub fn finish(&mut self, response: &mut Response) {
        let shed = response.extensions().get::<LoadShed>().is_some();
        self.write(response.status().as_u16(), shed);
        if let Some(id) = self.request_id.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
    }

    fn write(&mut self, status: u16, shed: bool) {
        self.written = true;
        let elapsed = self.started.elapsed();
        let route = self
            .route
            .as_ref()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        RequestMetrics::record(self.method, route, status, elapsed.as_secs_f64());
        if shed {
            REFUSALS.note(route, status);
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
            self.write(CLIENT_CLOSED_STATUS, false);
        }
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

/// Every route the router answers, as the route label spells it.
static ROUTES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| super::endpoints().into_iter().map(|e| e.path).collect());

impl RequestMetrics {
    fn record(method: &'static str, route: &str, status: u16, seconds: f64) {
        let route = ROUTES
            .iter()
            .copied()
            .find(|known| *known == route)
            .unwrap_or(UNMATCHED_ROUTE);
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

/// Writes the summary of refusals not logged yet, if their second is over. Called once
/// a second, so the last refusals of a flood are logged even when none follow.
pub fn flush_refusal_log() {
    if let Some(summary) = REFUSALS.flush_at(now_ms()) {
        summary.write();
    }
}

static REFUSALS: RefusalLog = RefusalLog::new();

/// Aggregates refusals: the first after a quiet second is logged at once, the others
/// are counted and logged as one line when their second is over. Lock-free: a refusal
/// costs an atomic add.
#[derive(Debug)]
struct RefusalLog {
    /// Refusals counted and not logged yet.
    pending: AtomicU64,
    /// When the last line was written, in milliseconds since the process's first refusal
    /// (`u64::MAX`: never).
    last_line_ms: AtomicU64,
}

/// One log line for `count` refusals.
#[derive(Debug, PartialEq, Eq)]
struct RefusalSummary {
    count: u64,
    route: Option<String>,
    status: Option<u16>,
}

impl RefusalSummary {
    fn write(&self) {
        tracing::info!(
            refused = self.count,
            route = self.route.as_deref().unwrap_or(""),
            status = self.status.unwrap_or(503),
            window_ms = RefusalLog::WINDOW_MS,
            "requests refused"
        );
    }
}

impl RefusalLog {
    const WINDOW_MS: u64 = 1000;

    const fn new() -> Self {
        Self {
            pending: AtomicU64::new(0),
            last_line_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn note(&self, route: &str, status: u16) {
        if let Some(summary) = self.note_at(now_ms(), route, status) {
            summary.write();
        }
    }

    fn note_at(&self, now: u64, route: &str, status: u16) -> Option<RefusalSummary> {
        if self.claim_line(now) {
            let earlier = self.pending.swap(0, Ordering::Relaxed);
            return Some(RefusalSummary {
                count: earlier + 1,
                route: Some(route.to_owned()),
                status: Some(status),
            });
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn flush_at(&self, now: u64) -> Option<RefusalSummary> {
        if self.pending.load(Ordering::Relaxed) == 0 || !self.claim_line(now) {
            return None;
        }
        let count = self.pending.swap(0, Ordering::Relaxed);
        (count > 0).then_some(RefusalSummary {
            count,
            route: None,
            status: None,
        })
    }

    /// Whether a line may be written at `now`; only one caller per window wins.
    fn claim_line(&self, now: u64) -> bool {
        let last = self.last_line_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= Self::WINDOW_MS;
        due && self
            .last_line_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
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

    #[test]
    fn a_lone_refusal_is_logged_at_once() {
        let log = RefusalLog::new();
        let line = log.note_at(5_000, "/computation", 503).expect("a line");
        assert_eq!(line.count, 1);
        assert_eq!(line.route.as_deref(), Some("/computation"));
        assert_eq!(log.flush_at(10_000), None, "nothing left over");
        // Another one much later is a line of its own again.
        assert_eq!(
            log.note_at(60_000, "/computation", 503).map(|l| l.count),
            Some(1)
        );
    }

    #[test]
    fn a_flood_is_one_line_a_second_and_every_refusal_is_counted() {
        let log = RefusalLog::new();
        let mut logged = 0;
        let mut lines = 0;
        // 10,000 refusals over 2.5 seconds.
        for i in 0..10_000u64 {
            if let Some(line) = log.note_at(i / 4, "/computation", 503) {
                logged += line.count;
                lines += 1;
            }
        }
        // The tail is written by the periodic flush once its second is over.
        assert_eq!(log.flush_at(2_600), None, "its second is not over yet");
        let tail = log.flush_at(3_000).expect("the tail");
        logged += tail.count;
        lines += 1;
        assert_eq!(logged, 10_000);
        assert!(lines <= 4, "{lines} lines");
        assert_eq!(log.flush_at(10_000), None);
    }
}
