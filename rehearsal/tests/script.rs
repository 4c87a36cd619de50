//! scripts/rehearse.sh end to end: its outputs, variables that change the outcome, the
//! comparison with a real run, bad usage, and a calibration against the real binary.

mod common;

use std::path::Path;

use common::{Files, repo_root, script};
use serde_json::Value;

fn summary(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

fn out_arg(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

const RAMP: [&str; 8] = [
    "--ramp",
    "200,400,600,800,1000",
    "--duration",
    "120",
    "--instance-rps",
    "150",
    "--start",
    "2026-12-07T10:00Z",
];

#[test]
fn a_rehearsal_writes_its_timeline_summary_and_chart() {
    let out = tempfile::tempdir().expect("out");
    let mut args = RAMP.to_vec();
    let out_path = out_arg(&out);
    args.extend(["--out", &out_path]);
    let (code, stdout, stderr) = script(&args, &[]);
    assert_eq!(
        code, 1,
        "the default max_size cannot hold 1,000 rps\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("SLO verdict: FAIL"), "{stdout}");
    let timeline = std::fs::read_to_string(out.path().join("timeline.csv")).expect("timeline.csv");
    let header: Vec<&str> = timeline
        .lines()
        .next()
        .expect("header")
        .split(',')
        .collect();
    for column in [
        "minute",
        "offered_rps",
        "desired",
        "in_service",
        "cpu_percent",
        "served_rps",
        "failed_rps",
        "p50_ms",
        "p99_ms",
    ] {
        assert!(
            header.contains(&column),
            "timeline.csv lacks {column}: {header:?}"
        );
    }
    assert_eq!(
        timeline.lines().count(),
        1 + 10,
        "one row per simulated minute"
    );
    let s = summary(out.path());
    for key in [
        "slo_met",
        "max_desired",
        "instance_hours",
        "cost_usd",
        "failed_fraction",
        "warnings",
        "assumptions",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(s["slo_met"], false);
    assert!(s["cost_usd"].as_f64().expect("cost") > 0.0);
    assert_eq!(s["assumptions"]["metric_delay_minutes"], 2.0);
    let chart = std::fs::read(out.path().join("chart.png")).expect("chart.png");
    assert!(
        chart.starts_with(b"\x89PNG\r\n\x1a\n") && chart.len() > 30_000,
        "{} bytes",
        chart.len()
    );
}

#[test]
fn a_variable_file_changes_the_outcome() {
    let files = Files::new();
    let bigger = files.write("bigger.tfvars", "max_size = 12\n");
    let (default_out, bigger_out) = (
        tempfile::tempdir().expect("out"),
        tempfile::tempdir().expect("out"),
    );
    let mut args = RAMP.to_vec();
    let path = out_arg(&default_out);
    args.extend(["--out", &path]);
    let (code, stdout, _) = script(&args, &[]);
    assert_eq!(code, 1, "{stdout}");
    let var_file = format!("-var-file={}", bigger.display());
    let mut args = vec!["perf1", &var_file];
    args.extend(RAMP);
    let path = out_arg(&bigger_out);
    args.extend(["--out", &path]);
    let (_, stdout, stderr) = script(&args, &[]);
    let (before, after) = (summary(default_out.path()), summary(bigger_out.path()));
    assert!(
        before["max_desired"].as_i64() < after["max_desired"].as_i64(),
        "{stdout}\n{stderr}"
    );
    assert!(after["failed_fraction"].as_f64() < before["failed_fraction"].as_f64());
    assert_eq!(after["variables"]["max_size"]["value"], 12.0);
    assert_eq!(after["environment"], "perf1");
    // The same through -var, and TF_VAR_ (the lowest precedence) losing to it.
    let out = tempfile::tempdir().expect("out");
    let mut args = vec!["-var", "max_size=6"];
    args.extend(RAMP);
    let path = out_arg(&out);
    args.extend(["--out", &path]);
    script(&args, &[("TF_VAR_max_size", "5")]);
    assert_eq!(summary(out.path())["max_desired"], 6);
}

#[test]
fn compare_lays_a_real_run_over_the_prediction() {
    let recorded = repo_root().join("tests/fixtures/loadtest-recorded.csv");
    let recorded = recorded.to_str().expect("utf-8");
    let (alone, both) = (
        tempfile::tempdir().expect("out"),
        tempfile::tempdir().expect("out"),
    );
    // The recorded run itself is the load: loadtest.sh's samples.csv is a load CSV too.
    let base = [
        "--profile",
        "mixed",
        "--load-csv",
        recorded,
        "--instance-rps",
        "150",
        "--slo-rps",
        "50",
        "--start",
        "2026-12-07T10:00Z",
    ];
    let mut args = base.to_vec();
    let path = out_arg(&alone);
    args.extend(["--out", &path]);
    let (code, stdout, stderr) = script(&args, &[]);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    let mut args = base.to_vec();
    let path = out_arg(&both);
    args.extend(["--out", &path, "--compare", recorded]);
    let (code, stdout, stderr) = script(&args, &[]);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("compare"), "{stdout}");
    let s = summary(both.path());
    assert_eq!(s["compare"]["windows"], 20);
    // 44 s of samples: one minute. Real in-service capacity, weighted by the time each
    // window covers: 2 for 11 s, 3 for 11 s, 4 for 22 s = 3.25; predicted 2 (min_size).
    let minutes = s["compare"]["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0]["in_service"]["real"], 3.25);
    assert_eq!(minutes[0]["in_service"]["predicted"], 2.0);
    assert_eq!(s["compare"]["mean_absolute_error"]["in_service"], 1.25);
    assert_eq!(s["compare"]["mean_error"]["in_service"], -1.25);
    let compare_csv =
        std::fs::read_to_string(both.path().join("compare.csv")).expect("compare.csv");
    assert_eq!(compare_csv.lines().count(), 2, "{compare_csv}");
    assert!(
        stdout.contains("mean absolute error per minute: desired 1.25, in service 1.25"),
        "{stdout}"
    );
    let (one, two) = (
        std::fs::read(alone.path().join("chart.png")).expect("chart"),
        std::fs::read(both.path().join("chart.png")).expect("chart"),
    );
    assert!(
        two.len() > one.len(),
        "the overlay adds lines: {} vs {} bytes",
        two.len(),
        one.len()
    );
}

#[test]
fn bad_usage_exits_two_with_a_clear_error() {
    let files = Files::new();
    let no_columns = files.write("bad.csv", "when,how_many\n0,1\n");
    let no_columns = no_columns.to_str().expect("utf-8");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--rate", "-5"],
            "--rate must be a positive whole number",
        ),
        (
            vec!["--profile", "bogus", "--rate", "5"],
            "unknown profile 'bogus'",
        ),
        (
            vec!["--load-csv", no_columns, "--instance-rps", "150"],
            "expected the columns minute,rps",
        ),
        (
            vec!["-var", "max_sise=4", "--rate", "5", "--instance-rps", "150"],
            "declares no variable 'max_sise'",
        ),
        (
            vec![
                "-var",
                "scale_in_cpu_threshold=70",
                "--rate",
                "5",
                "--instance-rps",
                "150",
            ],
            "must be below scale_out_cpu_threshold",
        ),
        (
            vec!["--rate", "5", "--instance-rps", "150", "--assume", "boot=1"],
            "no such assumption",
        ),
        (
            vec!["Not_An_Env", "--rate", "5"],
            "is not an environment name",
        ),
        (
            vec!["--rate", "5", "--frobnicate"],
            "unknown option --frobnicate",
        ),
    ];
    for (args, message) in cases {
        let out = tempfile::tempdir().expect("out");
        let mut all = args.clone();
        let path = out_arg(&out);
        all.extend(["--out", &path]);
        let (code, stdout, stderr) = script(&all, &[]);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains("ERROR: ") && stderr.contains(message),
            "{args:?}: {stderr}"
        );
        assert!(
            !out.path().join("timeline.csv").exists(),
            "{args:?} wrote a timeline"
        );
    }
}

#[test]
fn help_prints_the_usage_header_and_exits_two() {
    let (code, stdout, stderr) = script(&["--help"], &[]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("Scaling rehearsal:"), "{stderr}");
    assert!(
        !stderr.contains("set -euo pipefail"),
        "only the header: {stderr}"
    );
}

/// Calibration end to end, bounded: one second of load per profile against the release
/// binary (dist/candidates from scripts/build_release.sh, as scripts/test.sh builds it), into
/// an empty cache; then a second run uses the cache without measuring.
#[test]
fn calibration_measures_the_release_binary_and_caches_it() {
    let cache = tempfile::tempdir().expect("cache");
    let cache_path = cache.path().display().to_string();
    let out = tempfile::tempdir().expect("out");
    let path = out_arg(&out);
    let args = [
        "--profile",
        "gtg",
        "--rate",
        "200",
        "--duration",
        "60",
        "--calibration-secs",
        "1",
        "--out",
        &path,
        "--start",
        "2026-12-07T10:00Z",
    ];
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = script(&args, &[("REHEARSAL_CACHE_DIR", &cache_path)]);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("calibrating"), "{stderr}");
    let s = summary(out.path());
    let profiles = &s["calibration"]["profiles"];
    for profile in ["gtg", "read", "write", "mixed", "computation"] {
        let us = profiles[profile]["cpu_us_per_request"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(us > 0.0, "{profile}: {profiles}");
    }
    // A request that hashes 50,000 times costs far more CPU than a health check.
    let cost = |p: &str| profiles[p]["cpu_us_per_request"].as_f64().unwrap_or(0.0);
    assert!(cost("computation") > 20.0 * cost("gtg"), "{profiles}");
    assert!(
        s["workload"]["source"]
            .as_str()
            .unwrap_or("")
            .contains("measured now"),
        "{}",
        s["workload"]
    );
    let cached: Vec<_> = std::fs::read_dir(cache.path()).expect("cache").collect();
    assert_eq!(cached.len(), 1, "one calibration file per binary");
    eprintln!("calibration took {:?}", started.elapsed());
    // Again: the cache answers, nothing is measured.
    let (code, stdout, stderr) = script(&args, &[("REHEARSAL_CACHE_DIR", &cache_path)]);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    assert!(!stderr.contains("calibrating"), "{stderr}");
    assert!(
        summary(out.path())["workload"]["source"]
            .as_str()
            .unwrap_or("")
            .contains("cached")
    );
}
