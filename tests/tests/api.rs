//! Every row of the HTTP API table, against the real binary, once on SQLite and once on
//! DynamoDB (moto's server).

use std::collections::BTreeSet;
use std::time::Duration;

use blackbox::{Moto, Service, ServiceBuilder, encode_segment, reference_chain};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    DynamoDb,
}

/// A started service plus what must live as long as it (its database folder).
struct Running {
    service: Service,
    _data: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Running {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl Backend {
    async fn start_with(self, customize: impl FnOnce(ServiceBuilder) -> ServiceBuilder) -> Running {
        match self {
            Backend::Sqlite => {
                let data = tempfile::tempdir().expect("temp dir");
                let builder = ServiceBuilder::sqlite(&data.path().join("db/candidates.db"));
                Running {
                    service: customize(builder).start().await,
                    _data: Some(data),
                }
            }
            Backend::DynamoDb => {
                let moto = Moto::shared();
                let table = moto.new_table().await;
                Running {
                    service: customize(ServiceBuilder::dynamodb(&moto, &table))
                        .start()
                        .await,
                    _data: None,
                }
            }
        }
    }

    async fn start(self) -> Running {
        self.start_with(|b| b).await
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "JSON body expected with status {status}"
    );
    response.json().await.expect("JSON body")
}

async fn expect_error(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body = json_of(response).await;
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error message, got {body}"))
        .to_owned()
}

// --- health -------------------------------------------------------------------------

async fn good_to_go_is_200_with_an_empty_body(backend: Backend) {
    let svc = backend.start().await;
    let response = svc.get("/gtg").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.expect("body").is_empty());
    let head = svc
        .client()
        .head(svc.url("/gtg"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
}

async fn details_report_the_store_and_the_instance(backend: Backend) {
    let svc = backend
        .start_with(|b| b.env("CANDIDATES_INSTANCE_ID", "i-0abc1234567890def"))
        .await;
    for query in ["/gtg?details", "/gtg?details=true", "/gtg?x=1&details"] {
        let response = svc.get(query).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        assert_eq!(
            json_of(response).await,
            json!({"connected": "true", "store": "ok", "instance-id": "i-0abc1234567890def"})
        );
    }
}

// --- routing and errors ---------------------------------------------------------------

async fn root_is_the_originals_invalid_request(backend: Backend) {
    let svc = backend.start().await;
    let response = svc.get("/").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await,
        json!({"status": "invalid request"})
    );
}

async fn unknown_routes_are_404_json(backend: Backend) {
    let svc = backend.start().await;
    for path in [
        "/nope",
        "/candidate",
        "/candidate/",
        "/gtg/",
        "/candidates/x",
    ] {
        let message = expect_error(svc.get(path).await, StatusCode::NOT_FOUND).await;
        assert!(!message.is_empty(), "{path}");
    }
}

async fn wrong_methods_are_405_json_with_allow(backend: Backend) {
    let svc = backend.start().await;
    let response = svc
        .client()
        .delete(svc.url("/gtg"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;

    let response = svc
        .client()
        .put(svc.url("/candidate/x"))
        .send()
        .await
        .expect("PUT");
    let allow = response.headers()["allow"]
        .to_str()
        .expect("allow")
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;

    let response = svc.post("/candidates").await;
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

async fn request_ids_are_echoed_or_generated_and_logged(backend: Backend) {
    let svc = backend.start().await;
    let response = svc
        .client()
        .get(svc.url("/candidate/nobody"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let generated = svc.get("/gtg").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let line = blackbox::eventually("the access log line", Duration::from_secs(5), || async {
        svc.logs()
            .into_iter()
            .find(|entry| entry["request_id"] == "trace-me-42")
    })
    .await;
    assert_eq!(line["message"], "request");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/candidate/{name}");
    assert_eq!(line["status"], 404);
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
}

// --- candidates ----------------------------------------------------------------------

async fn candidates_round_trip_with_encoded_and_non_ascii_names(backend: Backend) {
    let svc = backend.start().await;
    for name in [
        "John Smith",
        "Zoë Ångström-李小龙 🙂",
        "a/b?c=d&e#f",
        "O'Brien",
    ] {
        let path = format!("/candidate/{}", encode_segment(name));
        expect_error(svc.get(&path).await, StatusCode::NOT_FOUND).await;

        let created = svc.post(&path).await;
        assert_eq!(created.status(), StatusCode::OK, "{name}");
        assert_eq!(json_of(created).await, json!({"CandidateName": name}));

        let found = svc.get(&path).await;
        assert_eq!(found.status(), StatusCode::OK, "{name}");
        assert_eq!(json_of(found).await, json!([{"CandidateName": name}]));

        // Idempotent: a second insert answers the same and adds nothing.
        assert_eq!(svc.post(&path).await.status(), StatusCode::OK);
    }
    let listed: Value = svc.get("/candidates").await.json().await.expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(4));
    // The original's form: %20 and + are not the same thing in a path.
    assert_eq!(
        json_of(svc.get("/candidate/John%20Smith").await).await,
        json!([{"CandidateName": "John Smith"}])
    );
}

async fn a_post_body_is_ignored(backend: Backend) {
    let svc = backend.start().await;
    let response = svc
        .client()
        .post(svc.url("/candidate/Ada"))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"CandidateName":"somebody else"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(json_of(response).await, json!({"CandidateName": "Ada"}));
}

async fn names_of_256_characters_pass_and_257_are_refused(backend: Backend) {
    let svc = backend.start().await;
    let longest = "é".repeat(256);
    let path = format!("/candidate/{}", encode_segment(&longest));
    assert_eq!(svc.post(&path).await.status(), StatusCode::OK);
    assert_eq!(
        json_of(svc.get(&path).await).await,
        json!([{"CandidateName": longest}])
    );

    let too_long = format!("/candidate/{}", encode_segment(&"é".repeat(257)));
    let message = expect_error(svc.post(&too_long).await, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("256"), "{message}");
    expect_error(svc.get(&too_long).await, StatusCode::BAD_REQUEST).await;

    for bad in [
        "/candidate/line%0Abreak",
        "/candidate/nul%00",
        "/candidate/del%7F",
        "/candidate/c1%C2%85",
        "/candidate/%FF%FE",
        // Overlong, surrogate and truncated UTF-8.
        "/candidate/%C0%AF",
        "/candidate/%E0%80%AF",
        "/candidate/%ED%A0%80",
        "/candidate/cut%E2%82",
    ] {
        expect_error(svc.post(bad).await, StatusCode::BAD_REQUEST).await;
        expect_error(svc.get(bad).await, StatusCode::BAD_REQUEST).await;
    }
    // Nothing invalid was stored.
    let listed: Value = svc.get("/candidates").await.json().await.expect("list");
    assert_eq!(listed, json!([{"CandidateName": longest}]));
}

/// One name, however its characters are composed: NFC on the way in, for writes and
/// reads alike; answers and listings carry the NFC form.
async fn names_are_normalised_to_nfc_for_writes_and_reads(backend: Backend) {
    let svc = backend.start().await;
    let nfc = "Zo\u{00EB} \u{00C5}ngstr\u{00F6}m";
    // e + U+0308, A + U+030A, o + U+0308: the same name, decomposed.
    let nfd = "Zoe\u{0308} A\u{030A}ngstro\u{0308}m";
    let created = svc
        .post(&format!("/candidate/{}", encode_segment(nfd)))
        .await;
    assert_eq!(json_of(created).await, json!({"CandidateName": nfc}));
    for spelling in [nfc, nfd] {
        let path = format!("/candidate/{}", encode_segment(spelling));
        assert_eq!(
            json_of(svc.get(&path).await).await,
            json!([{"CandidateName": nfc}]),
            "{spelling:?}"
        );
        assert_eq!(svc.post(&path).await.status(), StatusCode::OK);
    }
    let listed: Value = svc.get("/candidates").await.json().await.expect("list");
    assert_eq!(
        listed,
        json!([{"CandidateName": nfc}]),
        "one candidate, not two"
    );
}

/// Names with nothing visible, or with characters that change how text around them is
/// shown or read (bidirectional controls, separators, a byte order mark, noncharacters)
/// are refused with a 400 that names the problem; emoji sequences keep working.
async fn blank_names_and_deceptive_characters_are_400_and_emoji_sequences_work(backend: Backend) {
    let svc = backend.start().await;
    for (bad, says) in [
        ("%20", "blank"),
        ("%20%20%20", "blank"),
        ("%E3%80%80", "blank"),
        ("%E2%80%8D", "blank"),
        ("%20%E2%80%8B", "blank"),
        ("invoice%E2%80%AEfdp.exe", "U+202E"),
        ("a%E2%81%A6b", "U+2066"),
        ("%E2%80%8Fname", "U+200F"),
        ("%D8%9Cname", "U+061C"),
        ("a%E2%80%A8b", "U+2028"),
        ("a%E2%80%A9b", "U+2029"),
        ("%EF%BB%BFbom", "U+FEFF"),
        ("x%EF%BF%BF", "U+FFFF"),
        ("x%EF%B7%90", "U+FDD0"),
        ("x%F4%8F%BF%BE", "U+10FFFE"),
    ] {
        let path = format!("/candidate/{bad}");
        let message = expect_error(svc.post(&path).await, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(says), "{bad}: {message}");
        expect_error(svc.get(&path).await, StatusCode::BAD_REQUEST).await;
    }
    expect_error(svc.get("/candidates").await, StatusCode::NOT_FOUND).await;
    for emoji in [
        "\u{1F469}\u{200D}\u{1F4BB}",
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}",
        "\u{2764}\u{FE0F}",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "\u{1F44B}\u{1F3FD}",
        "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
    ] {
        let path = format!("/candidate/{}", encode_segment(emoji));
        assert_eq!(
            json_of(svc.post(&path).await).await,
            json!({"CandidateName": emoji})
        );
        assert_eq!(
            json_of(svc.get(&path).await).await,
            json!([{"CandidateName": emoji}])
        );
    }
}

/// Percent-encoding in the path is decoded once, exactly: an encoded `/` or `%` is part
/// of the name, a double encoding stays encoded once, `+` is a plus, lowercase hex is
/// hex; what is not UTF-8 once decoded is refused.
async fn percent_encoded_names_decode_once_and_exactly(backend: Backend) {
    let svc = backend.start().await;
    for (path, name) in [
        ("a%2Fb", "a/b"),
        ("100%25", "100%"),
        ("%252F", "%2F"),
        ("a+b", "a+b"),
        ("%7e%c3%a9", "~é"),
        ("semi%3Bcolon%3Fq%23h", "semi;colon?q#h"),
    ] {
        let created = svc.post(&format!("/candidate/{path}")).await;
        assert_eq!(
            json_of(created).await,
            json!({"CandidateName": name}),
            "{path}"
        );
        let found = svc
            .get(&format!("/candidate/{}", encode_segment(name)))
            .await;
        assert_eq!(
            json_of(found).await,
            json!([{"CandidateName": name}]),
            "{path}"
        );
    }
}

async fn oversized_bodies_are_413_and_nothing_is_stored(backend: Backend) {
    let svc = backend.start().await;
    let big = vec![b'x'; 64 * 1024];
    let response = svc
        .client()
        .post(svc.url("/candidate/big"))
        .body(big.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.headers()["connection"], "close");
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;

    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures::stream::iter(
        big.chunks(4096)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = svc
        .client()
        .post(svc.url("/candidate/big"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("POST chunked");
    assert_eq!(response.headers()["connection"], "close");
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;

    expect_error(svc.get("/candidate/big").await, StatusCode::NOT_FOUND).await;

    // 16 MiB sent in full, as a plain client does: it still reads its 413 rather than
    // a broken pipe or a reset.
    let (written, response) = upload(svc.addr, 16 * 1024 * 1024, false).await;
    written.expect("the whole body is taken");
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    assert!(
        response.contains(r#"{"error":"request body is larger than 16384 bytes"}"#),
        "{response}"
    );
    // A client that waits for 100 Continue is answered at once and sends nothing.
    let (_, response) = upload(svc.addr, 16 * 1024 * 1024, true).await;
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    expect_error(svc.get("/candidate/huge").await, StatusCode::NOT_FOUND).await;
}

/// POSTs a body of `length` bytes, writing it while reading the answer, as curl does:
/// (whether everything was written, what was read until the server closed).
async fn upload(
    addr: std::net::SocketAddr,
    length: usize,
    expect_continue: bool,
) -> (std::io::Result<()>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let expect = if expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    let head = format!(
        "POST /candidate/huge HTTP/1.1\r\nHost: x\r\n{expect}Content-Length: {length}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("head");
    let writing = async move {
        // Waiting for 100 Continue means sending nothing until the answer comes.
        if !expect_continue {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..length / chunk.len() {
                writer.write_all(&chunk).await?;
            }
        }
        writer.flush().await.map(|()| writer)
    };
    let reading = async move {
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let (written, answer) = tokio::join!(writing, reading);
    (written.map(drop), answer)
}

async fn a_read_right_after_a_write_sees_it(backend: Backend) {
    let svc = backend.start().await;
    for i in 0..25 {
        let path = format!("/candidate/fresh-{i}");
        assert_eq!(svc.post(&path).await.status(), StatusCode::OK);
        assert_eq!(svc.get(&path).await.status(), StatusCode::OK, "{path}");
    }
}

async fn concurrent_writes_and_reads_all_succeed(backend: Backend) {
    // 200 requests at once queue up at moto or SQLite: on a busy machine some take
    // seconds, which is slow, not wrong (a 503 for running out of time is another test's).
    let running = backend.start_with(ServiceBuilder::patient).await;
    let svc: &Service = &running;
    let requests = (0..200).map(|i| async move {
        let path = format!("/candidate/concurrent-{}", i % 50);
        let response = if i % 2 == 0 {
            svc.post(&path).await
        } else {
            svc.get(&path).await
        };
        response.status()
    });
    for status in futures::future::join_all(requests).await {
        // A read may race its write (404); nothing may fail.
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{status}"
        );
    }
}

/// The in-memory store (`sqlite::memory:`, for demos) under reads and writes at once:
/// readers and writers of one in-memory database must not lock each other out.
#[tokio::test(flavor = "multi_thread")]
async fn the_in_memory_store_takes_concurrent_reads_and_writes() {
    let svc = ServiceBuilder::memory().patient().start().await;
    assert_eq!(svc.post("/candidate/first").await.status(), StatusCode::OK);
    let requests = (0..600).map(|i| match i % 3 {
        0 => svc.status_of(Method::POST, format!("/candidate/memory-{i}")),
        1 => svc.status_of(Method::GET, "/candidates?limit=1000".to_owned()),
        _ => svc.status_of(Method::GET, "/candidate/first".to_owned()),
    });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
    }
    let listed: Value = svc
        .get("/candidates?limit=1000")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(201));
}

// --- listing -------------------------------------------------------------------------

async fn an_empty_listing_is_404(backend: Backend) {
    let svc = backend.start().await;
    expect_error(svc.get("/candidates").await, StatusCode::NOT_FOUND).await;
}

async fn pages_cover_every_candidate_once_in_order(backend: Backend) {
    // The 254 inserts go at once: slow on a busy machine, and that is not the point.
    let running = backend.start_with(ServiceBuilder::patient).await;
    let svc: &Service = &running;
    let mut expected: Vec<String> = (0..250).map(|i| format!("Candidate {i:03}")).collect();
    // A few that sort in surprising places: upper case first, multi-byte last.
    expected.extend(["ZZ top", "aardvark", "Élodie", "李"].map(String::from));
    let inserts = expected.iter().map(|name| {
        let path = format!("/candidate/{}", encode_segment(name));
        async move { svc.post(&path).await.status() }
    });
    for status in futures::future::join_all(inserts).await {
        assert_eq!(status, StatusCode::OK);
    }
    expected.sort(); // Rust's String order is UTF-8 byte order.

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/candidates?limit=100&cursor={c}"),
            None => "/candidates?limit=100".to_owned(),
        };
        let response = svc.get(&query).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        cursor = response
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().expect("cursor").to_owned());
        let page: Vec<Value> = json_of(response).await.as_array().expect("array").clone();
        pages += 1;
        seen.extend(
            page.iter()
                .map(|c| c["CandidateName"].as_str().expect("name").to_owned()),
        );
        if cursor.is_none() {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 254);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        254,
        "no duplicates"
    );
    assert_eq!(seen, expected, "every candidate once, in byte order");

    // Without a limit: every candidate in one array, as the original answered.
    let response = svc.get("/candidates").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-next-cursor").is_none());
    let all: Vec<String> = json_of(response)
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["CandidateName"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(all, expected);
    // Every candidate after a cursor, with a cursor and no limit.
    let first = svc.get("/candidates?limit=200").await;
    let cursor = first.headers()["x-next-cursor"]
        .to_str()
        .expect("cursor")
        .to_owned();
    let rest: Value = json_of(svc.get(&format!("/candidates?cursor={cursor}")).await).await;
    assert_eq!(rest.as_array().map(Vec::len), Some(54));
}

/// More candidates than one internal page (1,000): the stream crosses page boundaries
/// without losing, repeating or reordering anyone.
async fn a_listing_without_limit_streams_every_candidate(backend: Backend) {
    // Inserted 100 at a time: slow on a busy machine, and that is not the point.
    let running = backend.start_with(ServiceBuilder::patient).await;
    let svc: &Service = &running;
    let mut expected: Vec<String> = (0..1_234).map(|i| format!("streamed {i:04}")).collect();
    for chunk in expected.chunks(100) {
        let inserts = chunk.iter().map(|name| {
            svc.status_of(Method::POST, format!("/candidate/{}", encode_segment(name)))
        });
        for status in futures::future::join_all(inserts).await {
            assert_eq!(status, StatusCode::OK);
        }
    }
    expected.sort();
    let response = svc.get("/candidates").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let listed: Vec<String> = json_of(response)
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["CandidateName"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(listed, expected);
    // HEAD answers the same status without the body.
    let head = svc
        .client()
        .head(svc.url("/candidates"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
}

async fn bad_limits_and_foreign_cursors_are_400(backend: Backend) {
    let svc = backend.start().await;
    assert_eq!(
        svc.post("/candidate/someone").await.status(),
        StatusCode::OK
    );
    for query in [
        "/candidates?limit=0",
        "/candidates?limit=1001",
        "/candidates?limit=abc",
        "/candidates?limit=-5",
        "/candidates?limit=",
        "/candidates?limit=%205",
        "/candidates?limit=5%20",
        "/candidates?limit=+5",
        "/candidates?limit=%2B5",
        "/candidates?limit=0x10",
        "/candidates?limit=1&limit=2",
        "/candidates?cursor=not-a-cursor",
        "/candidates?cursor=",
        "/candidates?cursor=AXNvbWVvbmUAAAAA",
    ] {
        expect_error(svc.get(query).await, StatusCode::BAD_REQUEST).await;
    }
    for ok in ["/candidates?limit=1", "/candidates?limit=1000"] {
        assert_eq!(svc.get(ok).await.status(), StatusCode::OK, "{ok}");
    }
}

// --- computation ---------------------------------------------------------------------

async fn computation_matches_an_independent_hash_chain(backend: Backend) {
    let svc = backend
        .start_with(|b| b.env("CANDIDATES_INSTANCE_ID", "i-0computation"))
        .await;
    let body = json_of(svc.get("/computation?seed=abc&iterations=3").await).await;
    assert_eq!(body["hash"], reference_chain("abc", 3));
    // Written down once, from Python's hashlib: md5(md5(md5("abcabc")+"abc")+"abc").
    assert_eq!(body["hash"], "a1855a25f1ce845f2cf8096d297306fe");
    assert_eq!(body["iterations"], 3);
    assert_eq!(body["instance-id"], "i-0computation");
    assert!(body["elapsed_ms"].is_u64(), "{body}");

    // Defaults: 50,000 iterations seeded with the request's RFC 3339 time.
    let body = json_of(svc.get("/computation").await).await;
    assert_eq!(body["iterations"], 50_000);
    let seed = body["seed"].as_str().expect("seed");
    assert!(
        seed.starts_with("20") && seed.ends_with('Z') && seed.contains('T'),
        "{seed}"
    );
    assert_eq!(body["hash"], reference_chain(seed, 50_000));
}

async fn computation_rejects_bad_parameters(backend: Backend) {
    let svc = backend
        .start_with(|b| b.env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 100_000))
        .await;
    for query in [
        "/computation?iterations=0",
        "/computation?iterations=abc",
        "/computation?iterations=100001",
        "/computation?iterations=-1",
        "/computation?iterations=%205",
        "/computation?iterations=%2B5",
        "/computation?iterations=1&iterations=2",
        "/computation?seed=",
        "/computation?seed=a&seed=b",
    ] {
        expect_error(svc.get(query).await, StatusCode::BAD_REQUEST).await;
    }
    // A seed is UTF-8 once decoded, or refused: never silently repaired.
    for query in [
        "/computation?seed=%FF&iterations=1",
        "/computation?seed=%C0%AF&iterations=1",
        "/computation?seed=%ED%A0%80&iterations=1",
        "/computation?seed=ab%E2%82&iterations=1",
    ] {
        let message = expect_error(svc.get(query).await, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("UTF-8"), "{query}: {message}");
    }
    // Form encoding as the original read it: + is a space, %XX a byte.
    let body = json_of(svc.get("/computation?seed=a+b%C3%A9&iterations=1").await).await;
    assert_eq!(body["seed"], "a bé");
    assert_eq!(body["hash"], reference_chain("a bé", 1));
    let long_seed = "s".repeat(1025);
    expect_error(
        svc.get(&format!("/computation?seed={long_seed}&iterations=1"))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        svc.get("/computation?iterations=100000&seed=x")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn a_full_computation_queue_is_503_with_retry_after(backend: Backend) {
    let svc = backend
        .start_with(|b| {
            b.env("CANDIDATES_COMPUTATION_WORKERS", 1)
                .env("CANDIDATES_COMPUTATION_QUEUE", 1)
                .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 10_000_000)
                // The queued job waits for the running one: on a busy machine that can
                // take a while, and this test is about the queue, not the timeout.
                .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 60)
        })
        .await;
    // One running, one queued: the rest must be refused at once.
    let long = "/computation?seed=load&iterations=600000";
    let requests = (0..4).map(|_| svc.get(long));
    let (responses, gtg) = tokio::join!(futures::future::join_all(requests), async {
        // While the worker is saturated, the health check still answers.
        tokio::time::sleep(Duration::from_millis(100)).await;
        svc.get("/gtg").await.status()
    });
    assert_eq!(gtg, StatusCode::OK);
    let mut ok = 0;
    let mut refused = 0;
    for response in responses {
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()[RETRY_AFTER], "1");
                let message = expect_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
                assert!(message.contains("queue"), "{message}");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused >= 2 && ok >= 1, "ok={ok} refused={refused}");
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("computation_rejected_total"), "{metrics}");
}

// --- metrics -------------------------------------------------------------------------

async fn metrics_are_prometheus_text_by_route_and_status(backend: Backend) {
    let svc = backend.start().await;
    svc.post("/candidate/Grace").await;
    svc.get("/candidate/Grace").await;
    svc.get("/candidate/nobody").await;
    svc.get("/made/up/path").await;
    let response = svc.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = response.text().await.expect("metrics");
    for expected in [
        "# TYPE http_requests_total counter",
        r#"http_requests_total{method="GET",route="/candidate/{name}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="/candidate/{name}",status="404"} 1"#,
        r#"http_requests_total{method="POST",route="/candidate/{name}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        "# TYPE http_request_duration_seconds histogram",
        r#"http_request_duration_seconds_bucket{method="GET",route="/candidate/{name}",status="200",le="+Inf"} 1"#,
        "computation_queue_depth 0",
        "computation_busy_workers 0",
        "# TYPE computation_workers gauge",
        "# TYPE computation_queue_capacity gauge",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("Grace"), "raw paths must not become labels");
}

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread")] async fn $case() { super::$case(super::Backend::Sqlite).await } )*
        }
        mod dynamodb {
            $( #[tokio::test(flavor = "multi_thread")] async fn $case() { super::$case(super::Backend::DynamoDb).await } )*
        }
    };
}

on_every_backend!(
    good_to_go_is_200_with_an_empty_body,
    details_report_the_store_and_the_instance,
    root_is_the_originals_invalid_request,
    unknown_routes_are_404_json,
    wrong_methods_are_405_json_with_allow,
    request_ids_are_echoed_or_generated_and_logged,
    candidates_round_trip_with_encoded_and_non_ascii_names,
    a_post_body_is_ignored,
    names_of_256_characters_pass_and_257_are_refused,
    names_are_normalised_to_nfc_for_writes_and_reads,
    blank_names_and_deceptive_characters_are_400_and_emoji_sequences_work,
    percent_encoded_names_decode_once_and_exactly,
    oversized_bodies_are_413_and_nothing_is_stored,
    a_read_right_after_a_write_sees_it,
    a_listing_without_limit_streams_every_candidate,
    concurrent_writes_and_reads_all_succeed,
    an_empty_listing_is_404,
    pages_cover_every_candidate_once_in_order,
    bad_limits_and_foreign_cursors_are_400,
    computation_matches_an_independent_hash_chain,
    computation_rejects_bad_parameters,
    a_full_computation_queue_is_503_with_retry_after,
    metrics_are_prometheus_text_by_route_and_status,
);
