//! `scripts/validate.sh`, the smoke test users run after a deploy, run for real.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use blackbox::{ServiceBuilder, VALIDATE_CHECKS, free_port, run_script};

#[tokio::test(flavor = "multi_thread")]
async fn validate_passes_every_check_against_a_healthy_service() {
    let svc = ServiceBuilder::memory().start().await;
    let (code, stdout, stderr) = run_script("scripts/validate.sh", &[&svc.base_url()], &[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for check in VALIDATE_CHECKS {
        assert!(
            stdout.contains(&format!("✓ {check} passed")),
            "{check}:\n{stdout}"
        );
    }
    assert!(!stdout.contains('✗'), "{stdout}");
    // It really inserted and read back a candidate.
    let listed: serde_json::Value = svc.get("/candidates").await.json().await.expect("list");
    let name = listed[0]["CandidateName"].as_str().expect("a candidate");
    assert!(name.starts_with("validate-"), "{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_fails_when_the_store_is_down() {
    // Healthy process, unreachable DynamoDB: /gtg passes, every store check must fail.
    let svc = ServiceBuilder::dynamodb_at(&format!("http://127.0.0.1:{}", free_port()), "absent")
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 2)
        .start()
        .await;
    let (code, stdout, stderr) = run_script("scripts/validate.sh", &[&svc.base_url()], &[]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("✓ Good to go passed"), "{stdout}");
    for check in ["Insert", "Verification", "Candidate list"] {
        assert!(
            stdout.contains(&format!("✗ {check} failed")),
            "{check}:\n{stdout}"
        );
    }
    assert!(stdout.contains("✓ Computation passed"), "{stdout}");
    assert!(stderr.contains("ERROR: 3 check(s) failed"), "{stderr}");
}

#[test]
fn validate_fails_when_nothing_answers() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, stdout, _) = run_script("scripts/validate.sh", &[&url], &[]);
    assert_eq!(code, 1);
    for check in VALIDATE_CHECKS {
        assert!(
            stdout.contains(&format!("✗ {check} failed")),
            "{check}:\n{stdout}"
        );
    }
}

#[test]
fn validate_refuses_unknown_options() {
    let (code, _, stderr) = run_script("scripts/validate.sh", &["--bogus"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown option --bogus"), "{stderr}");
}

#[test]
fn validate_refuses_a_wait_that_is_not_whole_seconds() {
    for wait in ["5m", "0", "-1", ""] {
        let (code, _, stderr) = run_script(
            "scripts/validate.sh",
            &["--wait", wait, "http://127.0.0.1:9"],
            &[],
        );
        assert_ne!(code, 0, "--wait {wait:?}");
        assert!(stderr.contains("ERROR:"), "--wait {wait:?}: {stderr}");
    }
}

/// The real service behind a proxy whose listing lags: the first `lagging` listings answer
/// what the service answers on an empty table (404), as DynamoDB's eventually consistent
/// ByName index may right after the first insert; everything else goes through.
struct LaggingListing {
    url: String,
    listings: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Lag {
    backend: String,
    lagging: usize,
    listings: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl LaggingListing {
    async fn start(backend: String, lagging: usize) -> Self {
        let listings = Arc::new(AtomicUsize::new(0));
        let lag = Lag {
            backend,
            lagging,
            listings: Arc::clone(&listings),
            client: blackbox::service::client(),
        };
        let app = Router::new().fallback(forward).with_state(lag);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the proxy");
        });
        Self {
            url,
            listings,
            server,
        }
    }
}

impl Drop for LaggingListing {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// validate.sh on its own thread, so the proxy keeps every runtime thread it may need.
async fn validate_in_background(url: &str) -> (i32, String, String) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || run_script("scripts/validate.sh", &[&url], &[]))
        .await
        .expect("validate.sh ran")
}

async fn forward(State(lag): State<Lag>, method: Method, uri: Uri) -> (StatusCode, String) {
    if method == Method::GET
        && uri.path() == "/candidates"
        && lag.listings.fetch_add(1, Ordering::SeqCst) < lag.lagging
    {
        return (
            StatusCode::NOT_FOUND,
            r#"{"error":"no candidates"}"#.to_owned(),
        );
    }
    let response = lag
        .client
        .request(method, format!("{}{uri}", lag.backend))
        .send()
        .await
        .expect("the service answers");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    (status, response.text().await.expect("a body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_reads_the_list_again_while_the_index_catches_up() {
    let svc = ServiceBuilder::memory().start().await;
    let proxy = LaggingListing::start(svc.base_url(), 2).await;
    let (code, stdout, stderr) = validate_in_background(&proxy.url).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("✓ Candidate list passed"), "{stdout}");
    assert_eq!(
        proxy.listings.load(Ordering::SeqCst),
        3,
        "two lagging answers, then the list"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_gives_up_on_a_list_that_never_shows_the_candidate() {
    let svc = ServiceBuilder::memory().start().await;
    let proxy = LaggingListing::start(svc.base_url(), usize::MAX).await;
    let (code, stdout, stderr) = validate_in_background(&proxy.url).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(
            "✗ Candidate list failed: HTTP 404 {\"error\":\"no candidates\"} (after 10 tries)"
        ),
        "{stdout}"
    );
    assert_eq!(
        proxy.listings.load(Ordering::SeqCst),
        10,
        "bounded: ten tries"
    );
    for check in ["Good to go", "Insert", "Verification", "Computation"] {
        assert!(stdout.contains(&format!("✓ {check} passed")), "{stdout}");
    }
}
