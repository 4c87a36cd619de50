//! Connections as a careless or hostile client holds them: half-sent request heads,
//! silence, idle keep-alive, heads that break the rules, shutdown in the middle of it
//! all. Raw TCP, because an HTTP library will not misbehave on purpose.

use std::time::{Duration, Instant};

use blackbox::raw::{RawConnection, exchange};
use blackbox::{ServiceBuilder, allow_open_files, eventually};
use reqwest::StatusCode;
use serde_json::Value;

const GTG: &[u8] = b"GET /gtg HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// How long a test waits for what must happen (an answer, a close): a right answer
/// comes long before, so the bound only decides how late a wrong one is reported, and
/// a machine busy with other work must not turn slowness into a failure.
const UPPER_BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_HEADER_READ_TIMEOUT_SECS", 1)
        .start()
        .await;
    let mut half_line = RawConnection::open(svc.addr).await;
    half_line.send(b"GET /gtg HT").await.expect("send");
    let mut silent = RawConnection::open(svc.addr).await;
    // Bytes trickling in (slowloris) do not restart the clock.
    let mut trickle = RawConnection::open(svc.addr).await;
    let trickling = async {
        for byte in b"GET /gtg HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.send(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickle.closed_within(UPPER_BOUND).await
    };
    let (half_closed, silent_closed, trickle_closed) = tokio::join!(
        half_line.closed_within(UPPER_BOUND),
        silent.closed_within(UPPER_BOUND),
        trickling
    );
    assert!(half_closed, "a half request line stays open");
    assert!(silent_closed, "a connection that never sends stays open");
    assert!(trickle_closed, "a head trickling in stays open");
    assert!(
        svc.metric(r#"http_connections_closed_total{reason="header_timeout"}"#)
            .await
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    let svc = ServiceBuilder::memory()
        // The keep-alive timeout is ten times the header timeout, so that a stalled
        // machine cannot blur the two: a close well before 10 s is the header timeout's.
        .env("CANDIDATES_HEADER_READ_TIMEOUT_SECS", 1)
        .env("CANDIDATES_KEEPALIVE_TIMEOUT_SECS", 10)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection.send(GTG).await.expect("send");
    assert_eq!(connection.response(UPPER_BOUND).await.status, 200);
    // Idle for twice the header timeout: a load balancer's pooled connection must stay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    connection
        .send(GTG)
        .await
        .expect("reuse after an idle spell");
    assert_eq!(connection.response(UPPER_BOUND).await.status, 200);
    // Once a request head has begun, the header timeout applies again: the close comes
    // long before the keep-alive timeout would, and is counted as the header timeout's.
    let header_timeouts = r#"http_connections_closed_total{reason="header_timeout"}"#;
    let before = svc.metric(header_timeouts).await;
    connection
        .send(b"GET /gtg HTTP/1.1\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    assert!(connection.closed_within(Duration::from_secs(8)).await);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(svc.metric(header_timeouts).await, before + 1);

    // Idle past the keep-alive timeout: closed.
    let mut idle = RawConnection::open(svc.addr).await;
    idle.send(GTG).await.expect("send");
    assert_eq!(idle.response(UPPER_BOUND).await.status, 200);
    assert!(
        !idle.closed_within(Duration::from_secs(2)).await,
        "closed too early"
    );
    assert!(
        idle.closed_within(Duration::from_secs(30)).await,
        "never closed"
    );
    assert!(
        svc.metric(r#"http_connections_closed_total{reason="idle_timeout"}"#)
            .await
            >= 1
    );
}

/// Half-sent heads used to hold their file descriptors forever: with few of them
/// allowed, the instance stopped answering, health checks included.
#[tokio::test(flavor = "multi_thread")]
async fn half_sent_heads_cannot_exhaust_file_descriptors() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_HEADER_READ_TIMEOUT_SECS", 1)
        .max_open_files(96)
        .start()
        .await;
    let mut holders = Vec::new();
    for _ in 0..150 {
        let mut connection = RawConnection::open(svc.addr).await;
        let _ = connection.send(b"GET /gtg HTTP/1.1\r\nHost: x").await;
        holders.push(connection);
    }
    // The health check gets through once the header timeout has freed the descriptors.
    let status = eventually("/gtg to answer", Duration::from_secs(60), || async {
        let mut connection = RawConnection::open(svc.addr).await;
        connection.send(GTG).await.ok()?;
        let response = tokio::time::timeout(
            Duration::from_secs(2),
            connection.response(Duration::from_secs(2)),
        )
        .await
        .ok()?;
        Some(response.status)
    })
    .await;
    assert_eq!(status, 200);
    drop(holders);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_idle_and_half_sent_connections_at_once() {
    // The in-flight limit (request timeout + 1 s) is twice what the test waits, so a
    // stop that waited for it fails, and a slow stop that did not passes.
    let mut svc = ServiceBuilder::memory()
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 60)
        .start()
        .await;
    let mut connections = Vec::new();
    for i in 0..50 {
        let mut connection = RawConnection::open(svc.addr).await;
        if i % 2 == 0 {
            connection
                .send(b"GET /gtg HTTP/1.1\r\nHo")
                .await
                .expect("send");
        } else {
            connection.send(GTG).await.expect("send");
            assert_eq!(connection.response(UPPER_BOUND).await.status, 200);
        }
        connections.push(connection);
    }
    let started = Instant::now();
    svc.signal("TERM");
    // Waiting for the in-flight limit (the request timeout, 60 s) would fail this.
    let exit = svc.wait(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0), "{}", svc.raw_logs());
    assert!(started.elapsed() < Duration::from_secs(30));
    for connection in &mut connections {
        assert!(connection.closed_within(Duration::from_secs(5)).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_still_finishes_a_request_in_flight_on_a_kept_alive_connection() {
    let mut svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 10_000_000)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 60)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection.send(GTG).await.expect("send");
    assert_eq!(connection.response(UPPER_BOUND).await.status, 200);
    // Still hashing when the signal comes on an idle machine (the test signals as soon
    // as the worker is busy). The workers run at nice 10: under a load of 15 on two cores
    // 2M iterations took a minute, all of the request timeout; a quarter leaves room.
    connection
        .send(b"GET /computation?seed=late&iterations=500000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    eventually(
        "the computation to start",
        Duration::from_secs(30),
        || async { (svc.metric("computation_busy_workers").await == 1).then_some(()) },
    )
    .await;
    svc.signal("TERM");
    let response = connection.response(Duration::from_secs(60)).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json()["hash"],
        blackbox::reference_chain("late", 500_000)
    );
    // The connection is not kept for another request.
    assert!(connection.closed_within(UPPER_BOUND).await);
    assert_eq!(svc.wait(Duration::from_secs(30)).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_1_1_without_exactly_one_valid_host_is_400_json() {
    let svc = ServiceBuilder::memory().start().await;
    for request in [
        &b"GET /gtg HTTP/1.1\r\n\r\n"[..],
        b"GET /gtg HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /gtg HTTP/1.1\r\nHost: user@host\r\n\r\n",
        b"GET /gtg HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET /gtg HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let response = exchange(svc.addr, request).await;
        let shown = String::from_utf8_lossy(request);
        assert_eq!(response.status, 400, "{shown}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{shown}"
        );
        assert!(
            response.json()["error"]
                .as_str()
                .is_some_and(|m| m.contains("Host")),
            "{shown}"
        );
        assert_eq!(
            response.header("x-request-id").map(str::len),
            Some(36),
            "{shown}"
        );
    }
    // HTTP/1.0 may leave it out; HTTP/1.1 with one is fine.
    assert_eq!(
        exchange(svc.addr, b"GET /gtg HTTP/1.0\r\n\r\n")
            .await
            .status,
        200
    );
    assert_eq!(exchange(svc.addr, GTG).await.status, 200);
    svc.settle_logs().await;
    let logged = svc
        .logs()
        .into_iter()
        .filter(|line| line["message"] == "request" && line["status"] == 400)
        .count();
    assert_eq!(logged, 5, "every refusal is in the access log");
}

/// The README's table of the answers hyper gives before the router sees a request:
/// `| request | status |` rows between `<!-- BEGIN bare-errors -->` and its END.
fn bare_error_table() -> Vec<(String, u16)> {
    let readme = std::fs::read_to_string(blackbox::repo_root().join("README.md")).expect("README");
    let start = readme
        .find("<!-- BEGIN bare-errors -->")
        .expect("the bare-errors table");
    let end = readme.find("<!-- END bare-errors -->").expect("its end");
    readme[start..end]
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            // "`431`, no body": the status is the first three characters inside the quotes.
            let status = cells[1]
                .trim_start_matches('`')
                .get(..3)
                .unwrap_or_default();
            (cells[0].to_owned(), status.parse().expect("a status"))
        })
        .collect()
}

/// Sends what a row of that table describes.
fn request_for(row: &str) -> Vec<u8> {
    if row.contains("malformed request line") {
        b"GET /gtg HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_vec()
    } else if row.contains("malformed header") {
        b"GET /gtg HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec()
    } else if row.contains("unknown HTTP version") {
        b"GET /gtg HTTP/3.7\r\nHost: x\r\n\r\n".to_vec()
    } else if row.contains("head over 64 KiB") {
        let mut request = b"GET /gtg HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat_n(b'a', 70_000));
        request.extend(b"\r\n\r\n");
        request
    } else if row.contains("URI over 64 KiB") {
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes()
    } else if row.contains("more than 100 header fields") {
        let mut request = b"GET /gtg HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..101 {
            request.extend(format!("X-H{i}: v\r\n").into_bytes());
        }
        request.extend(b"\r\n");
        request
    } else {
        panic!("no request known for the README row {row:?}")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_hyper_refuses_get_the_bare_answers_the_readme_lists() {
    let svc = ServiceBuilder::memory().start().await;
    let rows = bare_error_table();
    assert!(rows.len() >= 6, "{rows:?}");
    for (row, status) in rows {
        let mut connection = RawConnection::open(svc.addr).await;
        // The server may answer and close before reading everything: ignore that.
        let _ = connection.send(&request_for(&row)).await;
        let response = connection.response(Duration::from_secs(10)).await;
        assert_eq!(response.status, status, "{row}");
        assert!(response.body.is_empty(), "{row}: a bare answer has no body");
        assert_eq!(response.header("x-request-id"), None, "{row}");
        assert!(connection.closed_within(UPPER_BOUND).await, "{row}: closed");
    }
    // Just under the limits, the router answers as usual.
    let mut request = b"GET /gtg HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..99 {
        request.extend(format!("X-H{i}: v\r\n").into_bytes());
    }
    request.extend(b"\r\n");
    assert_eq!(exchange(svc.addr, &request).await.status, 200);
}

/// Only HTTP/1.x is served: the load balancer speaks HTTP/1.1 to its targets. A client
/// that opens with HTTP/2's preface gets nothing but a closed connection, and the
/// service goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn http2_prior_knowledge_is_refused_and_the_service_goes_on() {
    let svc = ServiceBuilder::memory().start().await;
    for _ in 0..20 {
        let mut connection = RawConnection::open(svc.addr).await;
        let _ = connection
            .send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await;
        assert!(connection.closed_within(UPPER_BOUND).await);
    }
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);
    svc.settle_logs().await;
    let errors: Vec<Value> = svc
        .logs()
        .into_iter()
        .filter(|line| line["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A client that sends its request body too slowly is told so with 408, a client error,
/// rather than the 503 a slow service earns (which pages someone); nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_trickling_in_past_the_request_timeout_is_408() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 2)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection
        .send(
            b"POST /candidate/slow-body HTTP/1.1\r\nHost: x\r\nX-Request-Id: trickler\r\n\
              Content-Length: 1000\r\n\r\nab",
        )
        .await
        .expect("send");
    // One byte every quarter second: the 1,000 would take four minutes.
    let (mut reader, mut writer) = connection.split();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if writer.send(b"c").await.is_err() {
                return;
            }
        }
    });
    let response = reader.response(Duration::from_secs(30)).await;
    trickle.abort();
    assert_eq!(
        response.status,
        408,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(
        response.json()["error"],
        "the request body did not arrive within the request timeout"
    );
    assert_eq!(
        svc.get("/candidate/slow-body").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        svc.metric(r#"http_requests_total{method="POST",route="/candidate/{name}",status="408"}"#)
            .await
            == 1
    );
}

/// Idle keep-alive connections cannot keep the health check out, even with few file
/// descriptors: the connection limit is fitted under the open-file limit, and at the
/// limit a new connection closes the one idle longest.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_flood_cannot_keep_the_health_check_out() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_KEEPALIVE_TIMEOUT_SECS", 300)
        .max_open_files(128)
        .start()
        .await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut connection = RawConnection::open(svc.addr).await;
        connection.send(GTG).await.expect("send");
        // Far less than the keep-alive timeout an idle connection would otherwise hold
        // its descriptor for.
        assert_eq!(
            connection.response(Duration::from_secs(20)).await.status,
            200
        );
        idle.push(connection);
    }
    assert_eq!(exchange(svc.addr, GTG).await.status, 200);
    let max = svc.metric("http_connections_max").await;
    assert_eq!(max, 128 - 64, "fitted under the open-file limit");
    assert!(svc.metric("http_connections_open").await <= max);
    assert!(
        svc.metric(r#"http_connections_closed_total{reason="evicted"}"#)
            .await
            >= 200 - max,
    );
    // The evicted connections were closed, the newest are still served.
    let mut last = idle.pop().expect("a connection");
    last.send(GTG).await.expect("send");
    assert_eq!(last.response(Duration::from_secs(20)).await.status, 200);
    assert!(idle[0].closed_within(Duration::from_secs(5)).await);
}

/// Requests sent back to back in one write are answered in order, each in full.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let svc = ServiceBuilder::memory().start().await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection
        .send(
            b"GET /gtg HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-1\r\n\r\n\
              POST /candidate/piped HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-2\r\nContent-Length: 3\r\n\r\nabc\
              GET /candidate/piped HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-3\r\n\r\n\
              GET /candidate/nobody HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-4\r\n\r\n",
        )
        .await
        .expect("send");
    let mut answers = Vec::new();
    for _ in 0..4 {
        let response = connection.response(Duration::from_secs(10)).await;
        answers.push((
            response
                .header("x-request-id")
                .unwrap_or_default()
                .to_owned(),
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        ));
    }
    assert_eq!(
        answers,
        [
            ("pipe-1".to_owned(), 200, String::new()),
            (
                "pipe-2".to_owned(),
                200,
                r#"{"CandidateName":"piped"}"#.to_owned()
            ),
            (
                "pipe-3".to_owned(),
                200,
                r#"[{"CandidateName":"piped"}]"#.to_owned()
            ),
            (
                "pipe-4".to_owned(),
                404,
                r#"{"error":"candidate not found"}"#.to_owned()
            ),
        ]
    );
}

/// Requests whose framing is ambiguous or broken, the ways one request is smuggled inside
/// another past a front proxy: the request hidden behind each is never served. Both a
/// `Content-Length` and a `Transfer-Encoding` is read by the latter, and the connection
/// closed after the answer (RFC 9112, 6.3); every other case is refused (400) and its
/// connection closed. The service goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_or_broken_framing_never_lets_a_hidden_request_through() {
    let svc = ServiceBuilder::memory().start().await;
    let hidden = |case: usize| {
        format!("GET /gtg HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled-{case}\r\n\r\n")
    };
    let both_lengths = [
        "POST /candidate/cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /candidate/te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n",
    ];
    let refused = [
        // Two different lengths; a length that is not a plain number.
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 60\r\n\r\n",
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n",
        // A transfer coding other than chunked last: the length is unknowable; and
        // chunked in HTTP/1.0, which has no such thing.
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /candidate/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Obfuscated header names and obsolete line folding.
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // A chunk size that is not hexadecimal, or overflows.
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        "POST /candidate/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n\r\n",
    ];
    let cases = both_lengths
        .iter()
        .map(|r| (r, false))
        .chain(refused.iter().map(|r| (r, true)));
    for (case, (request, must_refuse)) in cases.enumerate() {
        let mut connection = RawConnection::open(svc.addr).await;
        let mut bytes = request.as_bytes().to_vec();
        bytes.extend(hidden(case).into_bytes());
        // The server may answer and close before reading everything: ignore that.
        let _ = connection.send(&bytes).await;
        let response = connection.response(Duration::from_secs(10)).await;
        if must_refuse {
            assert_eq!(response.status, 400, "case {case}: {request:?}");
        }
        assert!(
            connection.closed_within(Duration::from_secs(10)).await,
            "case {case}: the connection stays open after {request:?}"
        );
    }
    svc.settle_logs().await;
    let smuggled: Vec<Value> = svc
        .logs()
        .into_iter()
        .filter(|l| {
            l["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("smuggled-"))
        })
        .collect();
    assert!(
        smuggled.is_empty(),
        "hidden requests were served: {smuggled:?}"
    );
    assert_eq!(
        svc.get("/candidate/a").await.status(),
        StatusCode::NOT_FOUND,
        "none of the refused writes was stored"
    );
}

/// The memory a burst of thousands of connections took is handed back once they are
/// gone: the resident size returns near its idle size, burst after burst, instead of
/// staying at (and growing past) the peak.
#[tokio::test(flavor = "multi_thread")]
async fn memory_taken_by_a_burst_of_connections_is_handed_back() {
    const BURST: usize = 2000;
    allow_open_files(2 * BURST as u64 + 500);
    let svc = ServiceBuilder::memory().start().await;
    svc.settle_logs().await;
    let idle_kib = svc.resident_kib();
    for burst in 0..2 {
        let mut connections = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let mut connection = RawConnection::open(svc.addr).await;
            connection.send(GTG).await.expect("send");
            assert_eq!(
                connection.response(Duration::from_secs(20)).await.status,
                200
            );
            connections.push(connection);
        }
        let peak_kib = svc.resident_kib();
        drop(connections);
        // Each idle connection holds ~14 KiB: the burst took tens of MiB. Handed back,
        // what stays is a few MiB of allocator and runtime bookkeeping.
        eventually(
            &format!(
                "burst {burst}: the resident size to fall from {peak_kib} KiB back near the \
                 idle {idle_kib} KiB"
            ),
            Duration::from_secs(20),
            || async { (svc.resident_kib() <= idle_kib + 12 * 1024).then_some(()) },
        )
        .await;
    }
}
