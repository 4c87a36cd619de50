//! What floods and careless clients cannot do: grow the metrics, flood the logs, take
//! the CPU with refusals or full listings, stop the service by not reading its logs,
//! smuggle kilobytes through a request id, or vanish unrecorded.

use std::time::Duration;

use blackbox::raw::RawConnection;
use blackbox::{Service, ServiceBuilder, eventually, seed_sqlite};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Series of a metric family in the Prometheus text, e.g. every `http_requests_total{...}`.
fn series<'t>(metrics: &'t str, family: &str) -> Vec<&'t str> {
    let prefix = format!("{family}{{");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_do_not_grow_the_metrics() {
    let svc = ServiceBuilder::memory().start().await;
    // 3,000 distinct methods on a few kept-alive connections (404 or 405 each).
    let senders = (0..4).map(|worker| {
        let addr = svc.addr;
        async move {
            let mut connection = RawConnection::open(addr).await;
            for i in 0..750 {
                let method = format!("M{worker}X{i:04}{}", "Y".repeat(i % 300));
                let path = if i % 2 == 0 { "/gtg" } else { "/nowhere" };
                let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                connection.send(request.as_bytes()).await.expect("send");
                let status = connection.response(Duration::from_secs(10)).await.status;
                assert!(status == 404 || status == 405, "{status}");
            }
        }
    });
    join_all(senders).await;
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    let requests = series(&metrics, "http_requests_total");
    assert!(
        requests.len() <= 5,
        "{} series: {:?}",
        requests.len(),
        &requests[..requests.len().min(10)]
    );
    assert!(
        requests.contains(&r#"http_requests_total{method="other",route="/gtg",status="405"} 1500"#),
        "{requests:?}"
    );
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    // The access log names them the same way.
    svc.settle_logs().await;
    let logged: Vec<Value> = svc
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "request" && l["method"] == "other")
        .collect();
    assert_eq!(logged.len(), 3000);
}

/// Refusals from a full queue: paced (each waits the refusal delay before its 503), so
/// a flood of clients that retry at once cannot take the CPU; logged in aggregate, so
/// the flood does not become a flood of log lines; counted one by one in the metrics.
async fn start_single_worker(refusal_delay_ms: u32) -> Service {
    ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_WORKERS", 1)
        .env("CANDIDATES_COMPUTATION_QUEUE", 0)
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 10_000_000)
        .env("CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS", refusal_delay_ms)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 60)
        .start()
        .await
}

/// The flood's clients, each retrying at once.
const FLOOD_CLIENTS: u64 = 8;

/// [`FLOOD_CLIENTS`] clients that retry at once while the only worker is kept busy, for
/// 2 seconds and until they got `at_least` refusals between them (a busy machine serves
/// fewer in 2 s; the flood's size, not its speed, is the point), at most a minute: how
/// many refusals they got, and in how long.
async fn flood(svc: &Service, at_least: u64) -> (u64, Duration) {
    let keep_busy = {
        let client = svc.client().clone();
        let url = svc.url("/computation?seed=busy&iterations=10000000");
        tokio::spawn(async move {
            loop {
                let done = client.get(&url).send().await.map(|r| r.status());
                if done.ok() != Some(StatusCode::OK) {
                    // One of the flood's got the worker: wait for it, quietly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    eventually("the worker to be busy", Duration::from_secs(30), || async {
        let metrics = svc.get("/metrics").await.text().await.ok()?;
        metrics.contains("computation_busy_workers 1").then_some(())
    })
    .await;
    let started = tokio::time::Instant::now();
    let until = started + Duration::from_secs(2);
    let cap = started + Duration::from_secs(60);
    let total = std::sync::atomic::AtomicU64::new(0);
    let clients = (0..FLOOD_CLIENTS).map(|_| {
        let total = &total;
        async move {
            let mut refused = 0u64;
            // Each client sends at least once, however late it gets going.
            loop {
                // Between two busy jobs one of these may get the worker: that is fine.
                match svc.get("/computation?seed=x&iterations=1").await.status() {
                    StatusCode::SERVICE_UNAVAILABLE => {
                        refused += 1;
                        total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    StatusCode::OK => {}
                    other => panic!("unexpected {other}"),
                }
                let now = tokio::time::Instant::now();
                let enough = total.load(std::sync::atomic::Ordering::Relaxed) >= at_least;
                if now >= cap || (now >= until && enough) {
                    break;
                }
            }
            refused
        }
    });
    let refused = join_all(clients).await.into_iter().sum();
    let took = started.elapsed();
    keep_busy.abort();
    // Let the aborted request be recorded before anyone reads the metrics.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (refused, took)
}

/// Refusals from a full queue are paced: each waits the refusal delay before its 503,
/// so clients that retry at once cannot turn refusing into the CPU's main work.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_from_a_full_computation_queue_are_paced() {
    let paced = start_single_worker(250).await;
    let (refused, took) = flood(&paced, FLOOD_CLIENTS).await;
    // At least 250 ms per refusal: at most 9 per client in 2 s (72 for the 8), and in
    // proportion if a busy machine kept the flood going longer.
    let per_client = took.as_millis() as u64 / 250 + 1;
    assert!(
        refused <= FLOOD_CLIENTS * per_client,
        "{refused} refusals in {took:?}"
    );
    assert!(refused >= 8, "{refused} refusals: the queue was not full");
}

/// Refusals are counted one by one in the metrics but logged in aggregate: a flood of
/// them is a few log lines whose counts add up.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_on_a_full_computation_queue_is_logged_in_aggregate() {
    let svc = start_single_worker(0).await;
    let (refused, took) = flood(&svc, 200).await;
    assert!(refused >= 200, "a real flood: only {refused} refusals");
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    // Every refusal counted (the flood's, and the few the keeper of the busy worker got).
    let counted = series(&metrics, "http_requests_total")
        .into_iter()
        .find(|line| line.contains(r#"route="/computation",status="503""#))
        .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .expect("503s counted");
    assert!(counted >= refused, "{counted} counted, {refused} seen");
    let refused = counted;
    let logged = eventually(
        "every refusal in the log",
        Duration::from_secs(30),
        || async {
            let lines: Vec<Value> = svc
                .logs()
                .into_iter()
                .filter(|l| {
                    (l["route"] == "/computation" && l["status"] == 503)
                        || l["message"] == "requests refused"
                })
                .collect();
            let total: u64 = lines
                .iter()
                .map(|l| l["refused"].as_u64().unwrap_or(1))
                .sum();
            (total == refused).then_some(lines)
        },
    )
    .await;
    // One line a second at most (6 for the usual 2 s flood), however long it lasted.
    assert!(
        logged.len() as u64 <= took.as_secs() + 4,
        "{} lines for {refused} refusals in {took:?}",
        logged.len()
    );
    assert!(
        logged
            .iter()
            .all(|l| l["message"] == "requests refused" && l["route"] == "/computation"),
        "every line names the route its refusals were on: {logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_short_printable_request_ids_are_taken_from_the_client() {
    let svc = ServiceBuilder::memory().start().await;
    let kept = "Root=1-67891233-abcdef012345678912345678;Self=1-67891233-1234";
    let long = "x".repeat(60 * 1024);
    let cases: [(&str, bool); 6] = [
        (kept, true),
        (&"k".repeat(128), true),
        (&long, false),
        (&"k".repeat(129), false),
        ("", false),
        ("has space", false),
    ];
    for (sent, keeps) in cases {
        let response = svc
            .client()
            .get(svc.url("/gtg"))
            .header("x-request-id", sent)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        if keeps {
            assert_eq!(echoed, sent);
        } else {
            assert_eq!(
                echoed.len(),
                36,
                "a fresh UUID instead of {} bytes",
                sent.len()
            );
        }
    }
    // Bytes outside printable ASCII, sent raw.
    let mut connection = RawConnection::open(svc.addr).await;
    connection
        .send(b"GET /gtg HTTP/1.1\r\nHost: x\r\nX-Request-Id: caf\xc3\xa9\r\n\r\n")
        .await
        .expect("send");
    let response = connection.response(Duration::from_secs(5)).await;
    assert_eq!(response.header("x-request-id").map(str::len), Some(36));

    svc.settle_logs().await;
    let logs = svc.raw_logs();
    assert!(!logs.contains(&long[..1000]), "the long id reached the log");
    assert!(logs.contains(kept));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_computation_abandoned_by_its_client_is_recorded_as_499() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 10_000_000)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 60)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection
        .send(b"GET /computation?seed=gone&iterations=10000000 HTTP/1.1\r\nHost: x\r\nX-Request-Id: walked-away\r\n\r\n")
        .await
        .expect("send");
    eventually(
        "the computation to start",
        Duration::from_secs(30),
        || async {
            let metrics = svc.get("/metrics").await.text().await.ok()?;
            metrics.contains("computation_busy_workers 1").then_some(())
        },
    )
    .await;
    drop(connection);

    let line = eventually("the access log line", Duration::from_secs(30), || async {
        svc.logs()
            .into_iter()
            .find(|l| l["request_id"] == "walked-away")
    })
    .await;
    assert_eq!(line["status"], 499);
    assert_eq!(line["route"], "/computation");
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics
            .contains(r#"http_requests_total{method="GET",route="/computation",status="499"} 1"#),
        "{metrics}"
    );
    // And the worker stopped hashing for nobody.
    eventually("the worker to be idle", Duration::from_secs(30), || async {
        let metrics = svc.get("/metrics").await.text().await.ok()?;
        metrics.contains("computation_busy_workers 0").then_some(())
    })
    .await;
}

/// `workers + queue` clients, each sending its next computation as soon as it has the
/// last one's answer, are never refused.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_workers_plus_queue_closed_loop_computation_queue_clients_are_never_refused() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_WORKERS", 2)
        .env("CANDIDATES_COMPUTATION_QUEUE", 1)
        .start()
        .await;
    let clients = (0..3).map(|client| {
        let svc = &svc;
        async move {
            for i in 0..300 {
                let response = svc
                    .get(&format!("/computation?seed=c{client}r{i}&iterations=200"))
                    .await;
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "client {client}, request {i}"
                );
            }
        }
    });
    join_all(clients).await;
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(!metrics.contains("computation_rejected_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_on_known_routes_are_counted_under_their_label() {
    let svc = ServiceBuilder::memory().start().await;
    let response = svc
        .client()
        .request(
            Method::from_bytes(b"PURGE").expect("method"),
            svc.url("/gtg"),
        )
        .send()
        .await
        .expect("PURGE");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = svc
        .client()
        .patch(svc.url("/gtg"))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    for expected in [
        r#"http_requests_total{method="other",route="/gtg",status="405"} 1"#,
        r#"http_requests_total{method="PATCH",route="/gtg",status="405"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in {metrics}"
        );
    }
}

/// A service on SQLite at `db` holding `count` candidates of 100 characters (a listing
/// of them is about 115 bytes each), with at most `full_listings` full listings at once.
/// Held listings outlive the test's steps by far, however slow the machine.
async fn start_with_many_candidates(
    db: &std::path::Path,
    count: usize,
    full_listings: u32,
) -> Service {
    start_with_many_candidates_timing_out(db, count, full_listings, 60).await
}

/// The same, with listings cut off `timeout_secs` after their request arrived.
async fn start_with_many_candidates_timing_out(
    db: &std::path::Path,
    count: usize,
    full_listings: u32,
    timeout_secs: u64,
) -> Service {
    let svc = ServiceBuilder::sqlite(db)
        .env("CANDIDATES_FULL_LISTINGS", full_listings)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", timeout_secs)
        .start()
        .await;
    assert_eq!(svc.post("/candidate/first").await.status(), StatusCode::OK);
    seed_sqlite(db, "listed-", count, 100);
    svc
}

/// A full listing held open by a client that reads its head and then nothing more: with
/// about 4.6 MB to send, far beyond what socket and server buffers take, it stays in
/// flight until the client reads on or goes away.
async fn hold_a_full_listing(svc: &Service, request_id: &str) -> RawConnection {
    let mut connection = RawConnection::open_small_window(svc.addr).await;
    let request =
        format!("GET /candidates HTTP/1.1\r\nHost: x\r\nX-Request-Id: {request_id}\r\n\r\n");
    connection.send(request.as_bytes()).await.expect("send");
    let head = connection.head(Duration::from_secs(30)).await;
    assert_eq!(head.status, 200, "{request_id}");
    connection
}

/// Full listings beyond `CANDIDATES_FULL_LISTINGS` are refused at once with 503 and
/// Retry-After, before anything is read, while the admitted ones stream on; writes,
/// reads and pages are served meanwhile; a place comes back when a listing's client
/// goes away.
#[tokio::test(flavor = "multi_thread")]
async fn full_listings_beyond_the_limit_are_refused_at_once_while_the_rest_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svc = start_with_many_candidates(&dir.path().join("c.db"), 40_000, 2).await;
    let mut held = vec![
        hold_a_full_listing(&svc, "held-1").await,
        hold_a_full_listing(&svc, "held-2").await,
    ];

    let refused = svc
        .client()
        .get(svc.url("/candidates"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer while two listings are held");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.expect("JSON error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("full listings")),
        "{body}"
    );
    // Everything else is served as usual.
    assert_eq!(svc.post("/candidate/during").await.status(), StatusCode::OK);
    assert_eq!(svc.get("/candidate/during").await.status(), StatusCode::OK);
    let page = svc.get("/candidates?limit=5").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().contains_key("x-next-cursor"));
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);

    // One held listing's client goes away: its place comes back.
    drop(held.pop());
    let listed = eventually(
        "a full listing to be admitted",
        Duration::from_secs(30),
        || async {
            let response = svc.get("/candidates").await;
            if response.status() != StatusCode::OK {
                return None;
            }
            Some(response.json::<Vec<Value>>().await.expect("a whole array"))
        },
    )
    .await;
    assert_eq!(
        listed.len(),
        40_002,
        "every candidate, the listing complete"
    );
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("candidates_full_listings_max 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("candidates_full_listings_in_flight 1"),
        "the other is still held: {metrics}"
    );
    drop(held);
}

/// The listing `request_id` is in the access log as `status` on /candidates, having
/// lasted at least `at_least_ms`, and the metrics count no complete 200 listing; returns
/// the metrics text for the caller's own checks.
async fn listing_recorded_as(
    svc: &Service,
    request_id: &str,
    status: u16,
    at_least_ms: f64,
) -> String {
    let line = eventually(
        "the listing's access line",
        Duration::from_secs(15),
        || async {
            svc.logs()
                .into_iter()
                .find(|l| l["request_id"] == request_id)
        },
    )
    .await;
    assert_eq!(line["status"], status, "{line}");
    assert_eq!(line["route"], "/candidates");
    assert!(
        line["latency_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= at_least_ms),
        "the listing lasted less than {at_least_ms} ms: {line}"
    );
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(
        !metrics.contains(r#"http_requests_total{method="GET",route="/candidates",status="200"}"#),
        "{metrics}"
    );
    metrics
}

/// A client that goes away in the middle of a listing: the access log and the metrics
/// record 499 and the time it really took, not a 200.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_abandoned_part_way_is_logged_as_499_not_as_a_success() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svc = start_with_many_candidates(&dir.path().join("c.db"), 40_000, 4).await;
    let held = hold_a_full_listing(&svc, "walks-away-mid-listing").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);
    let metrics = listing_recorded_as(&svc, "walks-away-mid-listing", 499, 500.0).await;
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/candidates",status="499"} 1"#),
        "{metrics}"
    );
}

/// A listing the service cuts off part-way (here: out of time, its reader too slow) has
/// sent its 200 status line, but it is logged and counted as what it is: 599, with the
/// time it really took, never as a complete 200.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_cut_off_part_way_is_logged_as_599_not_as_a_success() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svc = start_with_many_candidates_timing_out(&dir.path().join("c.db"), 40_000, 4, 2).await;
    let mut held = hold_a_full_listing(&svc, "cut-off-mid-listing").await;
    // Past the listing's deadline (2 s after its request): the next page it fetches
    // once the client reads on is out of time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        held.closed_within(Duration::from_secs(30)).await,
        "the service closes a listing it cut off"
    );
    // At least until its deadline.
    let metrics = listing_recorded_as(&svc, "cut-off-mid-listing", 599, 2000.0).await;
    for expected in [
        r#"http_requests_total{method="GET",route="/candidates",status="599"} 1"#,
        r#"http_request_duration_seconds_count{method="GET",route="/candidates",status="599"} 1"#,
        "candidates_listing_cut_off_total 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in {metrics}"
        );
    }
}

/// A log reader that stops reading (a stalled pipe, a journal that cannot keep up) does
/// not stop the service: every request is answered while lines that do not fit are
/// dropped and counted, and once the reader is back a line says how many were lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_log_reader_does_not_stop_the_service() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_LOG_BUFFER_KIB", 64)
        .start()
        .await;
    svc.settle_logs().await;
    svc.pause_log_reader();
    // About 5 MB of access log, more than the pipe, the buffer, and the 4 MiB any buffer
    // of the service ever held: 20,000 requests with 128-character ids, sent 50 at a
    // time on each of 4 connections.
    let id = "i".repeat(128);
    let request = format!("GET /gtg HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\n\r\n");
    let batch = request.repeat(50);
    let senders = (0..4).map(|_| {
        let batch = batch.clone();
        let addr = svc.addr;
        async move {
            let mut connection = RawConnection::open(addr).await;
            for _ in 0..100 {
                connection.send(batch.as_bytes()).await.expect("send");
                for _ in 0..50 {
                    // Far longer than a request takes, however slow the machine: a
                    // service waiting for its log reader never answers.
                    let response = connection.response(Duration::from_secs(20)).await;
                    assert_eq!(response.status, 200);
                }
            }
        }
    });
    join_all(senders).await;
    let metrics = svc
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics while stalled");
    let dropped = metrics
        .lines()
        .find_map(|line| line.strip_prefix("log_lines_dropped_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .expect("log_lines_dropped_total");
    assert!(dropped >= 10_000.0, "{dropped} lines dropped");

    svc.resume_log_reader();
    let reported = eventually(
        "the dropped-lines notice",
        Duration::from_secs(20),
        || async {
            let total: u64 = svc
                .logs()
                .iter()
                .filter(|l| l["level"] == "WARN" && l["dropped"].is_u64())
                .map(|l| l["dropped"].as_u64().unwrap_or(0))
                .sum();
            (total > 0).then_some(total)
        },
    )
    .await;
    assert!(
        reported as f64 >= dropped,
        "{reported} reported, {dropped} counted at the time"
    );
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);
}
