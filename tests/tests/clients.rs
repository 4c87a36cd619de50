//! The clients users reach the service with: the Postman collection (run by newman) and
//! the OpenAPI document (fuzzed by schemathesis), both against the real binary.

use std::process::Command;

use blackbox::{ServiceBuilder, repo_root, tool};
use serde_json::Value;

const COLLECTION: &str = "docs/postman/candidates.postman_collection.json";

/// Runs the collection; returns (exit code, failed assertions, total assertions).
fn newman(base_url: &str) -> (i32, u64, u64) {
    let report = tempfile::NamedTempFile::new().expect("report file");
    let output = Command::new(tool("newman"))
        .current_dir(repo_root())
        .args(["run", COLLECTION, "--env-var"])
        .arg(format!("baseUrl={base_url}"))
        .args(["--reporters", "cli,json", "--reporter-json-export"])
        .arg(report.path())
        .args(["--timeout-request", "30000", "--disable-unicode"])
        .output()
        .expect("run newman");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(report.path()).expect("newman report"))
            .expect("JSON report");
    let assertions = &summary["run"]["stats"]["assertions"];
    (
        output.status.code().unwrap_or(-1),
        assertions["failed"].as_u64().expect("failed count"),
        assertions["total"].as_u64().expect("total count"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn newman_runs_the_postman_collection_green_twice_in_a_row() {
    let svc = ServiceBuilder::memory().start().await;
    for run in 1..=2 {
        let (code, failed, total) = newman(&svc.base_url());
        assert_eq!(
            (code, failed),
            (0, 0),
            "run {run}: {failed} of {total} assertions failed"
        );
        assert!(total >= 50, "run {run}: only {total} assertions");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn newman_fails_when_the_service_breaks_its_contract() {
    // A service that refuses the collection's computation (iterations=3 over its cap).
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_ITERATIONS", 2)
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 2)
        .start()
        .await;
    let (code, failed, _) = newman(&svc.base_url());
    assert_ne!(code, 0);
    assert!(failed >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_only_conformant_responses() {
    // A small computation cap keeps fuzzed chains short; the document allows any cap.
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_ITERATIONS", 1000)
        .env("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 1000)
        .start()
        .await;
    let output = Command::new(tool("st"))
        .current_dir(repo_root())
        .args(["run", "docs/openapi.yaml", "--url"])
        .arg(svc.base_url())
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "30",
            "--seed",
            "42",
            "--workers",
            "1",
            "--request-timeout",
            "15",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    svc.settle_logs().await;
    let errors = svc
        .logs()
        .into_iter()
        .filter(|e| e["status"].as_u64().is_some_and(|s| s >= 500 && s != 503))
        .count();
    assert_eq!(errors, 0, "the service logged server errors");
}
