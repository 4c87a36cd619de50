//! Connections as a careless or hostile client holds them: half-sent request heads,
//! silence, idle keep-alive, heads that break the rules, shutdown in the middle of it
//! all. Raw TCP, because an HTTP library will not misbehave on purpose.

use std::time::{Duration, Instant};

use blackbox::raw::RawConnection;
use blackbox::{ServiceBuilder, eventually};
use reqwest::StatusCode;
use serde_json::Value;

const GTG: &[u8] = b"GET /gtg HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A count from `/metrics`, 0 when the series does not exist yet.
async fn metric(svc: &blackbox::Service, series: &str) -> u64 {
    let text = svc.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

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
        trickle.closed_within(Duration::from_secs(5)).await
    };
    let (half_closed, silent_closed, trickle_closed) = tokio::join!(
        half_line.closed_within(Duration::from_secs(5)),
        silent.closed_within(Duration::from_secs(5)),
        trickling
    );
    assert!(half_closed, "a half request line stays open");
    assert!(silent_closed, "a connection that never sends stays open");
    assert!(trickle_closed, "a head trickling in stays open");
    assert!(
        metric(
            &svc,
            r#"http_connections_closed_total{reason="header_timeout"}"#
        )
        .await
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_HEADER_READ_TIMEOUT_SECS", 1)
        .env("CANDIDATES_KEEPALIVE_TIMEOUT_SECS", 4)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection.send(GTG).await.expect("send");
    assert_eq!(
        connection.response(Duration::from_secs(5)).await.status,
        200
    );
    // Idle for twice the header timeout: a load balancer's pooled connection must stay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    connection
        .send(GTG)
        .await
        .expect("reuse after an idle spell");
    assert_eq!(
        connection.response(Duration::from_secs(5)).await.status,
        200
    );
    // Once a request head has begun, the header timeout applies again.
    connection
        .send(b"GET /gtg HTTP/1.1\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    assert!(connection.closed_within(Duration::from_secs(3)).await);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Idle past the keep-alive timeout: closed.
    let mut idle = RawConnection::open(svc.addr).await;
    idle.send(GTG).await.expect("send");
    assert_eq!(idle.response(Duration::from_secs(5)).await.status, 200);
    assert!(
        !idle.closed_within(Duration::from_secs(2)).await,
        "closed too early"
    );
    assert!(
        idle.closed_within(Duration::from_secs(6)).await,
        "never closed"
    );
    assert!(
        metric(
            &svc,
            r#"http_connections_closed_total{reason="idle_timeout"}"#
        )
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
    let status = eventually("/gtg to answer", Duration::from_secs(20), || async {
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
    let mut svc = ServiceBuilder::memory()
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 30)
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
            assert_eq!(
                connection.response(Duration::from_secs(5)).await.status,
                200
            );
        }
        connections.push(connection);
    }
    let started = Instant::now();
    svc.signal("TERM");
    // Waiting for the in-flight limit (the request timeout, 30 s) would fail this.
    let exit = svc.wait(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(0), "{}", svc.raw_logs());
    assert!(started.elapsed() < Duration::from_secs(10));
    for connection in &mut connections {
        assert!(connection.closed_within(Duration::from_secs(1)).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_still_finishes_a_request_in_flight_on_a_kept_alive_connection() {
    let mut svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 10_000_000)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 120)
        .start()
        .await;
    let mut connection = RawConnection::open(svc.addr).await;
    connection.send(GTG).await.expect("send");
    assert_eq!(
        connection.response(Duration::from_secs(5)).await.status,
        200
    );
    connection
        .send(b"GET /computation?seed=late&iterations=2000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    eventually(
        "the computation to start",
        Duration::from_secs(10),
        || async { (metric(&svc, "computation_busy_workers").await == 1).then_some(()) },
    )
    .await;
    svc.signal("TERM");
    let response = connection.response(Duration::from_secs(60)).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json()["hash"],
        blackbox::reference_chain("late", 2_000_000)
    );
    // The connection is not kept for another request.
    assert!(connection.closed_within(Duration::from_secs(5)).await);
    assert_eq!(svc.wait(Duration::from_secs(10)).await.code(), Some(0));
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
        assert!(connection.closed_within(Duration::from_secs(5)).await);
    }
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);
    let errors: Vec<Value> = svc
        .logs()
        .into_iter()
        .filter(|line| line["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
