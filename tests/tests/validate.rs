//! `scripts/validate.sh`, the smoke test users run after a deploy, run for real.

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
