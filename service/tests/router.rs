//! The application's router in process, through `candidates::app` and tower's `oneshot`:
//! what the black-box tests cannot arrange over a socket, a store that never answers,
//! one that panics or one that fails in the middle of a listing, with tokio's clock
//! paused where a request timeout would otherwise cost real time.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use candidates::api::{FullListings, StoreHealth};
use candidates::candidate::{Candidate, CandidateName, Page, PageLimit};
use candidates::computation::ComputationPool;
use candidates::instance::InstanceIdentity;
use candidates::lifecycle::Lifecycle;
use candidates::store::{CandidateStore, StoreError};
use candidates::{AppState, Limits, app, telemetry};
use http_body_util::BodyExt;
use tower::ServiceExt;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A store whose every call behaves as `Behaviour` says.
#[derive(Debug)]
struct FaultyStore {
    behaviour: Behaviour,
    /// Set when a call's future is dropped before it finished.
    abandoned: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Hang,
    Panic,
}

impl FaultyStore {
    async fn call<T>(&self) -> Result<T, StoreError> {
        match self.behaviour {
            Behaviour::Panic => panic!("the store exploded"),
            Behaviour::Hang => {
                let _abandoned = SetOnDrop(Arc::clone(&self.abandoned));
                std::future::pending().await
            }
        }
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl CandidateStore for FaultyStore {
    async fn put(&self, _: &CandidateName) -> Result<(), StoreError> {
        self.call().await
    }

    async fn get(&self, _: &CandidateName) -> Result<Option<Candidate>, StoreError> {
        self.call().await
    }

    async fn list(&self, _: PageLimit, _: Option<&CandidateName>) -> Result<Page, StoreError> {
        self.call().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call().await
    }

    fn backend(&self) -> &'static str {
        "faulty"
    }
}

/// A store of 2,500 names whose listing answers its first page, then (after a pause of
/// `pause`) fails.
#[derive(Debug)]
struct FailsAfterFirstPage {
    calls: AtomicUsize,
    pause: Duration,
}

#[async_trait]
impl CandidateStore for FailsAfterFirstPage {
    async fn put(&self, _: &CandidateName) -> Result<(), StoreError> {
        Err(StoreError::unavailable("put", "read-only"))
    }

    async fn get(&self, _: &CandidateName) -> Result<Option<Candidate>, StoreError> {
        Err(StoreError::unavailable("get", "not here"))
    }

    async fn list(
        &self,
        limit: PageLimit,
        after: Option<&CandidateName>,
    ) -> Result<Page, StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
            tokio::time::sleep(self.pause).await;
            return Err(StoreError::unavailable("list", "the store went away"));
        }
        assert!(after.is_none());
        let names = (0..=limit.get())
            .map(|i| CandidateName::parse(format!("name {i:05}")).expect("valid"))
            .collect();
        Ok(Page::from_sorted(names, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "fails-after-first-page"
    }
}

/// The value of one series in the Prometheus text, if present.
fn series(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn state(store: Arc<dyn CandidateStore>) -> AppState {
    AppState {
        store,
        pool: ComputationPool::start(NonZeroUsize::MIN, 1),
        full_listings: FullListings::new(2),
        instance: InstanceIdentity::resolve_in_background(Some("i-in-process".to_owned())),
        store_health: Arc::new(StoreHealth::default()),
        lifecycle: Lifecycle::default(),
        metrics: telemetry::metrics_handle(),
        limits: Limits {
            default_iterations: 10,
            max_iterations: 1_000,
            request_timeout: REQUEST_TIMEOUT,
            refusal_delay: Duration::ZERO,
        },
    }
}

fn faulty(behaviour: Behaviour) -> (AppState, Arc<AtomicBool>) {
    let abandoned = Arc::new(AtomicBool::new(false));
    let store = FaultyStore {
        behaviour,
        abandoned: Arc::clone(&abandoned),
    };
    (state(Arc::new(store)), abandoned)
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost")
        .header("x-request-id", "in-process-1")
        .body(Body::empty())
        .expect("request")
}

async fn json(response: Response) -> serde_json::Value {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("a JSON body")
}

#[tokio::test(start_paused = true)]
async fn a_store_call_that_never_answers_is_cut_at_the_request_timeout() {
    let (state, abandoned) = faulty(Behaviour::Hang);
    let started = tokio::time::Instant::now();
    let response = tokio::time::timeout(
        2 * REQUEST_TIMEOUT,
        app(state).oneshot(request("GET", "/candidate/someone")),
    )
    .await
    .expect("an answer by the request timeout")
    .expect("infallible");
    // The paused clock jumps to the first timer: the request timeout, not earlier.
    assert_eq!(started.elapsed(), REQUEST_TIMEOUT);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(response.headers()["x-request-id"], "in-process-1");
    assert_eq!(
        json(response).await,
        serde_json::json!({ "error": "request timed out" })
    );
    assert!(
        abandoned.load(Ordering::SeqCst),
        "the store call is dropped with its request"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_json_500_for_its_request_only() {
    let (state, _) = faulty(Behaviour::Panic);
    let router = app(state);
    let response = router
        .clone()
        .oneshot(request("POST", "/candidate/someone"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The layers outside the panic still ran.
    assert_eq!(response.headers()["x-request-id"], "in-process-1");
    assert_eq!(
        json(response).await,
        serde_json::json!({ "error": "internal error" })
    );
    // The same router goes on serving what does not touch the store.
    let response = router
        .oneshot(request("GET", "/computation?seed=abc&iterations=1"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await["hash"],
        "440ac85892ca43ad26d44c7ad9d47d3e"
    );
}

#[tokio::test]
async fn a_draining_process_fails_the_health_check_and_serves_the_rest() {
    let (state, _) = faulty(Behaviour::Panic);
    let lifecycle = state.lifecycle.clone();
    let router = app(state);
    let gtg = |router: axum::Router| async move {
        router
            .oneshot(request("GET", "/gtg"))
            .await
            .expect("infallible")
            .status()
    };
    assert_eq!(gtg(router.clone()).await, StatusCode::OK);
    lifecycle.start_draining();
    assert_eq!(gtg(router.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    let response = router
        .oneshot(request("GET", "/computation?seed=abc&iterations=3"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

/// The head of a full listing (200) goes out before the listing ends; when the store
/// fails part-way the access log and the metrics must not count a success, and the
/// time recorded is the time the listing really took.
#[tokio::test]
async fn a_listing_cut_off_part_way_is_recorded_as_cut_off_with_its_real_duration() {
    let pause = Duration::from_millis(300);
    let state = state(Arc::new(FailsAfterFirstPage {
        calls: AtomicUsize::new(0),
        pause,
    }));
    let metrics = state.metrics.clone();
    let response = app(state)
        .oneshot(request("GET", "/candidates"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "the head went out first");
    let cut_off = r#"{method="GET",route="/candidates",status="599"}"#;
    assert_eq!(
        series(&metrics.render(), &format!("http_requests_total{cut_off}")),
        None,
        "nothing is recorded before the body ends"
    );
    assert!(
        response.into_body().collect().await.is_err(),
        "the body ends with an error"
    );
    let text = metrics.render();
    assert_eq!(
        series(&text, &format!("http_requests_total{cut_off}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            r#"http_requests_total{method="GET",route="/candidates",status="200"}"#
        ),
        None,
        "a cut-off listing is not a success"
    );
    let seconds = series(
        &text,
        &format!("http_request_duration_seconds_sum{cut_off}"),
    )
    .expect("its duration");
    assert!(
        seconds >= pause.as_secs_f64(),
        "recorded {seconds} s, but the store alone took {pause:?}"
    );
}

/// A client that goes away in the middle of a listing is recorded as 499, like one that
/// goes away before its answer.
#[tokio::test]
async fn a_listing_abandoned_part_way_is_recorded_as_client_closed() {
    let state = state(Arc::new(FailsAfterFirstPage {
        calls: AtomicUsize::new(0),
        pause: Duration::from_secs(3600),
    }));
    let metrics = state.metrics.clone();
    let response = app(state)
        .oneshot(request("GET", "/candidates"))
        .await
        .expect("infallible");
    let mut body = response.into_body();
    body.frame().await.expect("a first chunk").expect("data");
    drop(body);
    let text = metrics.render();
    assert_eq!(
        series(
            &text,
            r#"http_requests_total{method="GET",route="/candidates",status="499"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
