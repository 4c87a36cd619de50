//! Faults degrade predictably and heal by themselves: a store that goes away or was
//! never there, signals, a crash, bad configuration.

use std::time::Duration;

use blackbox::imds::FakeImds;
use blackbox::raw::RawConnection;
use blackbox::{Moto, Service, ServiceBuilder, encode_segment, eventually, free_port};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

/// How long a test waits for what must happen (an answer, a log line): a right answer
/// comes long before, so the bound only decides how late a wrong one is reported, and a
/// machine busy with other work must not turn slowness into a failure.
const UPPER_BOUND: Duration = Duration::from_secs(20);

/// One field of `/gtg?details`.
async fn detail(svc: &Service, key: &str) -> String {
    let body: Value = svc.get("/gtg?details").await.json().await.expect("details");
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .to_owned()
}

async fn connected(svc: &Service) -> String {
    detail(svc, "connected").await
}

/// Waits until `?details` says `connected` is `expected`: one look at the store answers
/// the `?details` of the next second, so a change shows within about a second.
async fn connected_becomes(svc: &Service, expected: &str) {
    eventually(
        &format!("?details to say connected: {expected}"),
        Duration::from_secs(60),
        || async { (connected(svc).await == expected).then_some(()) },
    )
    .await;
}

/// Every store-backed call answers 503 with Retry-After, within the request timeout.
async fn assert_store_calls_fail_fast(svc: &Service, request_timeout: Duration) {
    for (method, path) in [
        ("GET", "/candidate/Ada"),
        ("POST", "/candidate/Ada"),
        ("GET", "/candidates"),
    ] {
        let request = match method {
            "GET" => svc.client().get(svc.url(path)),
            _ => svc.client().post(svc.url(path)),
        };
        // The contract is an answer within the request timeout, so that is as long as
        // the client waits, plus slack for a busy machine (a hang still shows).
        let response = request
            .timeout(request_timeout + Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: no answer within the timeout: {err}"));
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}"
        );
    }
    // The load balancer's check stays green: an outage must not empty the target group.
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dynamodb_outage_is_503_and_heals_in_the_same_process() {
    let mut moto = Moto::start_private().await;
    let table = moto.new_table().await;
    let timeout = Duration::from_secs(3);
    let svc = ServiceBuilder::dynamodb(&moto, &table)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", timeout.as_secs())
        .start()
        .await;
    let pid = svc.pid();
    assert_eq!(svc.post("/candidate/before").await.status(), StatusCode::OK);
    assert_eq!(connected(&svc).await, "true");

    moto.stop().await;
    connected_becomes(&svc, "false").await;
    assert_store_calls_fail_fast(&svc, timeout).await;
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"store_errors_total{backend="dynamodb",operation="get"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"store_up{backend="dynamodb"} 0"#),
        "{metrics}"
    );

    // The store comes back (empty, as a freshly restored table would be).
    moto.start_again().await;
    moto.create_table(&table).await;
    connected_becomes(&svc, "true").await;
    assert_eq!(svc.post("/candidate/after").await.status(), StatusCode::OK);
    assert_eq!(svc.get("/candidate/after").await.status(), StatusCode::OK);
    assert_eq!(svc.get("/candidates").await.status(), StatusCode::OK);
    assert_eq!(svc.pid(), pid, "recovered without a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_is_down_at_start_does_not_stop_the_service() {
    let port = free_port();
    let table = "candidates-late";
    let timeout = Duration::from_secs(3);
    let svc = ServiceBuilder::dynamodb_at(&format!("http://127.0.0.1:{port}"), table)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", timeout.as_secs())
        .start()
        .await;
    assert_eq!(connected(&svc).await, "false");
    assert_store_calls_fail_fast(&svc, timeout).await;

    let moto = Moto::start_on(port).await;
    moto.create_table(table).await;
    eventually(
        "the store to become usable",
        Duration::from_secs(60),
        || async { (svc.post("/candidate/late").await.status() == StatusCode::OK).then_some(()) },
    )
    .await;
    connected_becomes(&svc, "true").await;
    assert_eq!(svc.get("/candidate/late").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_database_that_cannot_be_opened_heals_once_fixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("data");
    // A plain file where the database's folder should be: opening must fail.
    std::fs::write(&folder, b"in the way").expect("blocker");
    let timeout = Duration::from_secs(3);
    let svc = ServiceBuilder::sqlite(&folder.join("candidates.db"))
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", timeout.as_secs())
        .start()
        .await;
    assert_eq!(connected(&svc).await, "false");
    assert_store_calls_fail_fast(&svc, timeout).await;

    std::fs::remove_file(&folder).expect("remove blocker");
    assert_eq!(svc.post("/candidate/healed").await.status(), StatusCode::OK);
    connected_becomes(&svc, "true").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_finishes_in_flight_requests_and_exits_zero() {
    // The test, not a clock, says when each step happens, so that how fast the machine
    // is cannot change the verdict: the requests in flight are POSTs whose bodies the test
    // holds back until the listener has closed (they are in flight then, however fast the
    // service is), and a second signal ends the drain once the test has seen it serve.
    // The drain is long enough never to end by itself first; the request timeout is the
    // longest the stop rule leaves beside it. (A computation in flight at a stop, on a
    // kept-alive connection: connections.rs.)
    let mut svc = ServiceBuilder::memory()
        .patient()
        .env("CANDIDATES_SHUTDOWN_DRAIN_SECS", 28)
        .start()
        .await;
    let base = svc.base_url();
    let mut in_flight = Vec::new();
    for i in 0..2 {
        let mut connection = RawConnection::open(svc.addr).await;
        let head = format!(
            "POST /candidate/in-flight-{i} HTTP/1.1\r\nHost: x\r\nX-Request-Id: in-flight-{i}\r\n\
             Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        );
        connection.send(head.as_bytes()).await.expect("send");
        // The handler asks for the body: the request is in flight.
        assert_eq!(connection.response(UPPER_BOUND).await.status, 100);
        in_flight.push(connection);
    }

    svc.signal("TERM");
    eventually("/gtg to turn 503", UPPER_BOUND, || async {
        (svc.get("/gtg").await.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    // Draining still serves whatever the load balancer sends meanwhile.
    assert_eq!(
        svc.post("/candidate/during-drain").await.status(),
        StatusCode::OK
    );
    // The drain's end: the listener closes, the two requests are still in flight.
    svc.signal("INT");
    let closed_message = "listener closed; finishing in-flight requests";
    eventually("the listener to close", UPPER_BOUND, || async {
        svc.logs()
            .iter()
            .any(|e| e["message"] == closed_message)
            .then_some(())
    })
    .await;

    for connection in &mut in_flight {
        connection.send(b"body").await.expect("send the body");
        assert_eq!(connection.response(UPPER_BOUND).await.status, 200);
    }
    let exit = svc.wait(Duration::from_secs(60)).await;
    assert_eq!(exit.code(), Some(0), "logs:\n{}", svc.raw_logs());

    // The requests finished after the listener closed: shutdown waited for them.
    let logs = svc.logs();
    let position = |pred: &dyn Fn(&Value) -> bool| logs.iter().position(pred);
    let closed = position(&|e| e["message"] == closed_message).expect("listener closed log");
    let last_in_flight = logs
        .iter()
        .rposition(|e| {
            e["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("in-flight-"))
                && e["status"] == 200
        })
        .expect("the in-flight requests logged");
    assert!(
        closed < last_in_flight,
        "in-flight requests should outlive the listener"
    );
    assert!(
        blackbox::service::client()
            .get(format!("{base}/gtg"))
            .send()
            .await
            .is_err(),
        "nothing listens after exit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_ends_the_drain_early() {
    let mut svc = ServiceBuilder::memory()
        .env("CANDIDATES_SHUTDOWN_DRAIN_SECS", 60)
        .start()
        .await;
    svc.signal("TERM");
    eventually("draining", Duration::from_secs(10), || async {
        (svc.get("/gtg").await.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    svc.signal("INT");
    // Well under the 60 s drain that the second signal cut short.
    let exit = svc.wait(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_acknowledged_writes_loses_none_of_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("candidates.db");
    // 300 writes at once: slow on a busy machine, and that is not the point.
    let builder = ServiceBuilder::sqlite(&db).patient();
    let mut svc = builder.start().await;
    let names: Vec<String> = (0..300).map(|i| format!("durable {i}")).collect();
    post_all_acknowledged(&svc, &names).await;
    svc.signal("KILL");
    svc.wait(Duration::from_secs(30)).await;

    let restarted = builder.start().await;
    let listed: Vec<Value> = restarted
        .get("/candidates?limit=1000")
        .await
        .json()
        .await
        .expect("list");
    let mut found: Vec<String> = listed
        .iter()
        .map(|c| c["CandidateName"].as_str().expect("name").to_owned())
        .collect();
    found.sort();
    let mut expected = names;
    expected.sort();
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_stops_the_start_and_names_the_variable() {
    let cases = [
        ("CANDIDATES_LISTEN", "nowhere"),
        ("CANDIDATES_STORE", "mysql://db/candidates"),
        ("CANDIDATES_COMPUTATION_WORKERS", "0"),
        ("CANDIDATES_COMPUTATION_QUEUE", "lots"),
        ("CANDIDATES_REQUEST_TIMEOUT_SECS", "0"),
        ("CANDIDATES_SHUTDOWN_DRAIN_SECS", "-3"),
        ("CANDIDATES_LOG_FORMAT", "xml"),
        ("CANDIDATES_COMPUTATION_ITERATIONS", "20000000"),
    ];
    for (variable, value) in cases {
        let (status, output) = ServiceBuilder::memory()
            .env(variable, value)
            .start_and_fail()
            .await;
        assert_eq!(status.code(), Some(2), "{variable}={value}: {output}");
        let named =
            output.contains(variable) || output.contains(&format!("--{}", flag_of(variable)));
        assert!(named, "{variable}={value} should be named in: {output}");
    }
    // Options that disagree with each other.
    let (status, output) = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_ITERATIONS", 5000)
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 100)
        .start_and_fail()
        .await;
    assert_eq!(status.code(), Some(2));
    assert!(
        output.contains("CANDIDATES_COMPUTATION_MAX_ITERATIONS"),
        "{output}"
    );
    // A stop (drain, then requests in flight) that systemd would kill half-way.
    let (status, output) = ServiceBuilder::memory()
        .env("CANDIDATES_SHUTDOWN_DRAIN_SECS", 60)
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 30)
        .start_and_fail()
        .await;
    assert_eq!(status.code(), Some(2));
    assert!(
        output.contains("CANDIDATES_SHUTDOWN_DRAIN_SECS")
            && output.contains("CANDIDATES_REQUEST_TIMEOUT_SECS")
            && output.contains("stop timeout"),
        "{output}"
    );

    // DynamoDB without a region can never work: say which variable to set.
    let (status, output) = ServiceBuilder::dynamodb_at("http://127.0.0.1:9", "some-table")
        .without_env("AWS_REGION")
        .start_and_fail()
        .await;
    assert_ne!(status.code(), Some(0));
    assert!(output.contains("AWS_REGION"), "{output}");

    // A port already taken is reported, not ignored.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (status, output) = ServiceBuilder::memory()
        .env("CANDIDATES_LISTEN", &addr)
        .start_and_fail()
        .await;
    assert_ne!(status.code(), Some(0));
    assert!(output.contains("CANDIDATES_LISTEN"), "{output}");
}

/// POSTs every name at once; each must be acknowledged (200) before this returns.
async fn post_all_acknowledged(svc: &Service, names: &[String]) {
    let writes = names.iter().map(|name| {
        let url = svc.url(&format!("/candidate/{}", encode_segment(name)));
        let client = svc.client().clone();
        async move { client.post(url).send().await.map(|r| r.status()) }
    });
    for status in futures::future::join_all(writes).await {
        assert_eq!(status.expect("acknowledged"), StatusCode::OK);
    }
}

/// `CANDIDATES_LOG_FORMAT` → `log-format`.
fn flag_of(variable: &str) -> String {
    variable
        .trim_start_matches("CANDIDATES_")
        .to_lowercase()
        .replace('_', "-")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instance_id_comes_from_imds_then_the_host_name() {
    let imds = FakeImds::start("i-0fake1234567890abc").await;

    let from_imds = ServiceBuilder::memory()
        .without_env("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
        .start()
        .await;
    assert_eq!(
        detail(&from_imds, "instance-id").await,
        "i-0fake1234567890abc",
        "{}",
        from_imds.raw_logs()
    );

    let overridden = ServiceBuilder::memory()
        .without_env("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
        .env("CANDIDATES_INSTANCE_ID", "i-0override")
        .start()
        .await;
    assert_eq!(detail(&overridden, "instance-id").await, "i-0override");

    // No metadata service at all (a laptop): the host name.
    let nowhere = ServiceBuilder::memory()
        .without_env("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .start()
        .await;
    let hostname = std::process::Command::new("hostname")
        .output()
        .expect("hostname");
    let hostname = String::from_utf8_lossy(&hostname.stdout).trim().to_owned();
    assert_eq!(detail(&nowhere, "instance-id").await, hostname);
}

/// Another process (Python's sqlite3, as a hand-run `sqlite3` would) takes the
/// database's write lock and keeps it until killed.
async fn lock_database(db: &std::path::Path) -> tokio::process::Child {
    let mut locker = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(120)\n",
        )
        .arg(db)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut said = String::new();
    let stdout = locker.stdout.take().expect("stdout");
    tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut said)
        .await
        .expect("read");
    assert_eq!(said.trim(), "locked");
    locker
}

/// Group commit: writes that arrive while a transaction is being written wait for the
/// next one and share it (one sync to disk for all), and none is acknowledged before the
/// transaction that holds it has committed.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_share_one_transaction_and_wait_for_its_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("candidates.db");
    let svc = ServiceBuilder::sqlite(&db)
        // The writer waits for the lock up to the store's timeout: ample time here.
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 30)
        .start()
        .await;
    assert_eq!(
        svc.post("/candidate/warm-up").await.status(),
        StatusCode::OK
    );
    let batches = svc.metric("sqlite_write_batch_size_count").await;
    let inserts = svc.metric("sqlite_write_batch_size_sum").await;
    assert_eq!((batches, inserts), (1, 1));

    let mut locker = lock_database(&db).await;
    let post = |name: String| {
        let url = svc.url(&format!("/candidate/{}", encode_segment(&name)));
        let client = svc.client().clone();
        tokio::spawn(async move { client.post(url).send().await.map(|r| r.status()) })
    };
    let first = post("first".to_owned());
    eventually(
        "the first write to wait for the lock in its transaction",
        Duration::from_secs(30),
        || async { (svc.metric("sqlite_writes_committing").await == 1).then_some(()) },
    )
    .await;
    let queued: Vec<_> = (0..20).map(|i| post(format!("queued {i}"))).collect();
    eventually(
        "20 writes to wait for the next transaction",
        Duration::from_secs(30),
        || async { (svc.metric("sqlite_writes_waiting").await == 20).then_some(()) },
    )
    .await;
    assert!(
        !first.is_finished(),
        "acknowledged before its transaction committed"
    );

    locker.kill().await.expect("kill the locker");
    assert_eq!(first.await.expect("task").expect("answer"), StatusCode::OK);
    for write in queued {
        assert_eq!(write.await.expect("task").expect("answer"), StatusCode::OK);
    }
    assert_eq!(
        svc.metric("sqlite_write_batch_size_count").await - batches,
        2,
        "one transaction for the first write, one for the 20 that waited"
    );
    assert_eq!(
        svc.metric("sqlite_write_batch_size_sum").await - inserts,
        21
    );
    let listed: Vec<Value> = svc
        .get("/candidates?limit=1000")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed.len(), 22);
}

/// A SQLite database whose write lock another process holds (a backup, a hand-run
/// `sqlite3`) still answers reads: `?details` says "degraded" rather than all is well,
/// and "ok" again once the lock is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_database_locked_by_another_process_is_reported_degraded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("candidates.db");
    let svc = ServiceBuilder::sqlite(&db).start().await;
    assert_eq!(svc.post("/candidate/before").await.status(), StatusCode::OK);
    assert_eq!(detail(&svc, "store").await, "ok");

    let mut locker = lock_database(&db).await;

    // `?details` answers from a look at most a second old, and the service's own
    // commit of a moment ago speaks for the writes for a second: degraded after that.
    eventually(
        "the store to be reported degraded",
        Duration::from_secs(10),
        || async { (detail(&svc, "store").await == "degraded").then_some(()) },
    )
    .await;
    assert_eq!(connected(&svc).await, "true", "reads still work");
    assert_eq!(svc.get("/candidate/before").await.status(), StatusCode::OK);
    // The load balancer's check is shallow on purpose: still 200.
    assert_eq!(svc.get("/gtg").await.status(), StatusCode::OK);

    locker.kill().await.expect("kill the locker");
    eventually(
        "the store to be ok again",
        Duration::from_secs(30),
        || async { (detail(&svc, "store").await == "ok").then_some(()) },
    )
    .await;
    assert_eq!(svc.post("/candidate/after").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_acknowledged_writes_loses_none_of_them_on_dynamodb() {
    let moto = Moto::shared();
    let table = moto.new_table().await;
    // 200 writes at once to moto: slow on a busy machine, and that is not the point.
    let builder = ServiceBuilder::dynamodb(&moto, &table).patient();
    let mut svc = builder.start().await;
    let names: Vec<String> = (0..200).map(|i| format!("durable {i}")).collect();
    post_all_acknowledged(&svc, &names).await;
    svc.signal("KILL");
    svc.wait(Duration::from_secs(30)).await;

    let restarted = builder.start().await;
    for name in &names {
        let path = format!("/candidate/{}", encode_segment(name));
        assert_eq!(
            restarted.get(&path).await.status(),
            StatusCode::OK,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_keep_alive_clients_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    sigterm_loses_no_acknowledged_write(ServiceBuilder::sqlite(&dir.path().join("candidates.db")))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_keep_alive_clients_loses_no_acknowledged_write_on_dynamodb() {
    let moto = Moto::shared();
    let table = moto.new_table().await;
    sigterm_loses_no_acknowledged_write(ServiceBuilder::dynamodb(&moto, &table)).await;
}

/// Clients on kept-alive connections writing while SIGTERM arrives: during the drain
/// every request is served; after it, a request is either answered in full or refused
/// without an answer (never cut); and every acknowledged write is there after restart.
async fn sigterm_loses_no_acknowledged_write(builder: ServiceBuilder) {
    // Writes slowed by a busy machine must not be answered 503 (the clients would
    // panic): the point is what a stop does to them.
    let builder = builder.patient().env("CANDIDATES_SHUTDOWN_DRAIN_SECS", 1);
    let mut svc = builder.start().await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let http = blackbox::service::client();
            let base = svc.base_url();
            let acknowledged = std::sync::Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for i in 0..10_000 {
                    let name = format!("kept-{client}-{i}");
                    match http.post(format!("{base}/candidate/{name}")).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            acknowledged.lock().expect("lock").push(name);
                        }
                        Ok(response) => panic!("{name}: {}", response.status()),
                        // The listener has closed: the run is over.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // The stop comes once enough writes are in, however long they took.
    eventually(
        "50 acknowledged writes",
        Duration::from_secs(60),
        || async { (acknowledged.lock().expect("lock").len() > 50).then_some(()) },
    )
    .await;
    svc.signal("TERM");
    assert_eq!(svc.wait(Duration::from_secs(90)).await.code(), Some(0));
    for client in clients {
        client.await.expect("no client saw an error status");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 50,
        "only {} writes",
        acknowledged.len()
    );

    let restarted = builder.start().await;
    let mut missing = Vec::new();
    for chunk in acknowledged.chunks(100) {
        let reads = chunk
            .iter()
            .map(|name| restarted.status_of(reqwest::Method::GET, format!("/candidate/{name}")));
        let statuses = futures::future::join_all(reads).await;
        missing.extend(
            chunk
                .iter()
                .zip(statuses)
                .filter(|(_, status)| *status != StatusCode::OK)
                .map(|(name, _)| name.clone()),
        );
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {missing:?}",
        missing.len()
    );
}

/// A store that is down fails every request that needs it. Each failure is counted, but
/// the log gets at most one line a second per operation, with the count and one failure's
/// cause, rather than a warning per failure; and the failed requests one line a second
/// per route with their count, rather than an access line each.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_outage_is_logged_in_aggregate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("data");
    std::fs::write(&folder, b"in the way").expect("blocker");
    let svc = ServiceBuilder::sqlite(&folder.join("candidates.db"))
        .start()
        .await;
    let started = std::time::Instant::now();
    for chunk in (0..400).collect::<Vec<_>>().chunks(20) {
        let reads = chunk
            .iter()
            .map(|i| svc.status_of(reqwest::Method::GET, format!("/candidate/down-{i}")));
        for status in futures::future::join_all(reads).await {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    let seconds = started.elapsed().as_secs();
    let counted = svc
        .metric(r#"store_errors_total{backend="sqlite",operation="get"}"#)
        .await;
    assert_eq!(counted, 400, "every failure counted");
    // The tail is written by the once-a-second flush.
    let lines = eventually(
        "every failure in the log",
        Duration::from_secs(10),
        || async {
            let lines: Vec<Value> = svc
                .logs()
                .into_iter()
                .filter(|l| l["level"] == "WARN" && l["operation"] == "get")
                .collect();
            let total: u64 = lines
                .iter()
                .map(|l| l["failed"].as_u64().unwrap_or(1))
                .sum();
            (total >= counted).then_some(lines)
        },
    )
    .await;
    assert!(
        lines.len() as u64 <= seconds + 3,
        "{} lines in about {seconds} s: {:?}",
        lines.len(),
        &lines[..lines.len().min(3)]
    );
    for line in &lines {
        assert_eq!(line["message"], "store calls failed", "{line}");
        assert!(
            line["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot create folder")),
            "one failure's cause: {line}"
        );
    }
    // The requests' own lines too: not one access line per 503, but a count a second.
    let requests = eventually(
        "every failed request in the log",
        Duration::from_secs(10),
        || async {
            let lines: Vec<Value> = svc
                .logs()
                .into_iter()
                .filter(|l| l["route"] == "/candidate/{name}" && l["status"] == 503)
                .collect();
            let total: u64 = lines
                .iter()
                .map(|l| l["failed"].as_u64().unwrap_or(1))
                .sum();
            (total >= 400).then_some(lines)
        },
    )
    .await;
    assert!(
        requests.len() as u64 <= seconds + 3,
        "{} lines in about {seconds} s: {:?}",
        requests.len(),
        &requests[..requests.len().min(3)]
    );
    for line in &requests {
        assert_eq!(
            line["message"], "requests failed, store unavailable",
            "{line}"
        );
    }
}

/// `?details` is cheap: with another process holding SQLite's write lock (so that every
/// probe of it waits, then fails), a burst of `?details` probes it at most once a second,
/// not once per call.
#[tokio::test(flavor = "multi_thread")]
async fn details_probe_the_write_lock_at_most_once_a_second() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("candidates.db");
    let svc = ServiceBuilder::sqlite(&db).start().await;
    assert_eq!(svc.post("/candidate/before").await.status(), StatusCode::OK);
    // Past the second in which the service's own write speaks for the writes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _locker = lock_database(&db).await;
    let started = std::time::Instant::now();
    let mut states = Vec::new();
    for _ in 0..30 {
        states.push(detail(&svc, "store").await);
    }
    let seconds = started.elapsed().as_secs();
    assert!(states.iter().all(|s| s == "degraded"), "{states:?}");
    let probes = svc
        .metric(r#"store_errors_total{backend="sqlite",operation="ping_write"}"#)
        .await;
    assert!(
        probes >= 1 && probes <= seconds + 2,
        "{probes} probes of the write lock in about {seconds} s"
    );
}

/// While the service writes hard, `?details` polled hard reads the writes' own health:
/// it never takes the write lock to find out, so it never reports a healthy store as
/// degraded, and every write succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn details_under_write_load_report_a_healthy_store_as_ok() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svc = ServiceBuilder::sqlite(&dir.path().join("candidates.db"))
        .start()
        .await;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let writers = (0..8).map(|writer| {
        let svc = &svc;
        async move {
            let mut written = 0;
            while tokio::time::Instant::now() < until {
                let status = svc
                    .status_of(
                        reqwest::Method::POST,
                        format!("/candidate/w{writer}-{written}"),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK);
                written += 1;
            }
        }
    });
    let pollers = (0..8).map(|_| {
        let svc = &svc;
        async move {
            let mut states = Vec::new();
            while tokio::time::Instant::now() < until {
                states.push(detail(svc, "store").await);
            }
            states
        }
    });
    let (_, states) = tokio::join!(join_all(writers), join_all(pollers));
    let states: Vec<String> = states.into_iter().flatten().collect();
    assert!(!states.is_empty());
    assert!(states.iter().all(|s| s == "ok"), "{states:?}");
}

/// A store that accepts connections and never answers (a hung endpoint, a black-holed
/// network): store calls answer 503 with Retry-After within the request timeout, the
/// health check stays fast and green, `?details` says the store is down.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_never_answers_is_503_within_the_timeout() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", hole.local_addr().expect("addr"));
    // Accepts every connection and holds it, reading nothing, answering nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hole.accept().await {
            held.push(stream);
        }
    });
    let timeout = Duration::from_secs(3);
    let svc = ServiceBuilder::dynamodb_at(&endpoint, "candidates-hung")
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", timeout.as_secs())
        .start()
        .await;
    let (_, gtg) = tokio::join!(assert_store_calls_fail_fast(&svc, timeout), async {
        svc.get("/gtg").await.status()
    });
    assert_eq!(gtg, StatusCode::OK);
    assert_eq!(connected(&svc).await, "false");
    holder.abort();
}
